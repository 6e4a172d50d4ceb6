// Webhooks per jurisdiction and their durable outbox. Every alert change for a jurisdiction is
// written to the outbox in the same transaction as the alert, and delivered from there: POST with
// the JSON body, an Idempotency-Key (the alert id for the raise; alert id and version for a later
// change) and a signature over the timestamp and body,
//   Waste-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>
// (receivers recompute it and refuse stale timestamps, as with Stripe's scheme). Failures are
// retried with doubling delays, across restarts, until alerts.webhookGiveUpH.
//
// A webhook URL is chosen by whoever holds an admin token, and the service sits next to things it
// must never call: its own InfluxDB (whose /query runs any statement, DROP included), cloud
// metadata endpoints, a bureau's intranet. So a target is checked when the webhook is created and
// again at every delivery (DNS may answer differently by then, and the configuration may have
// changed): its host is resolved and every address must be public, unless
// alerts.webhookAllowTargets names the host or a range the address lies in; the service's own
// ports are refused whatever that says. The request then goes to the very address that was
// checked (pinned, so a second DNS answer cannot swap it), redirects are not followed, and the
// answer is waited for at most alerts.webhookTimeoutMs and read for at most
// WEBHOOK_RESPONSE_MAX_BYTES.
import crypto from 'node:crypto';
import dns from 'node:dns';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import type { Logger } from 'pino';
import { parseAllowTargets, type AlertsConfig } from '../config/schema.ts';
import type { RegistryDb } from '../registry/db.ts';
import { RegistryError } from '../registry/devices.ts';
import { write, type Step } from '../registry/steps.ts';
import type { AlertChange, AlertView } from './alert-store.ts';

export interface Webhook {
  id: string;
  jurisdiction_id: string;
  url: string;
  enabled: boolean;
  created_at: string;
  /** Deliveries waiting (not yet delivered, not given up). */
  pending: number;
  /** Why the latest message not delivered did not go through (a refused target, an HTTP status, a timeout). */
  last_error: string | null;
}

export function signature(secret: string, timestamp: number, body: string): string {
  return crypto.createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex');
}

/** Most of a receiver's answer that is read; its body is not used, only its status. */
export const WEBHOOK_RESPONSE_MAX_BYTES = 64 * 1024;

/** A webhook target that may not be called, with the reason in words an admin can act on. */
export class WebhookTargetError extends Error {}

/** A target that passed the check: the URL, and the one address the request must go to. */
export interface CheckedTarget {
  url: URL;
  address: string;
  family: 4 | 6;
}

interface IpValue {
  family: 4 | 6;
  value: bigint;
}

const ALLOW_KEY = 'alerts.webhookAllowTargets (WASTE_ALERTS_WEBHOOK_ALLOW_TARGETS)';

/** An IP address as the number it is (32 bits for IPv4, 128 for IPv6); null if it is not one. */
function ipValue(text: string): IpValue | null {
  const address = text.replace(/^\[(.*)\]$/, '$1').replace(/%.*$/, '');
  const family = net.isIP(address);
  if (family === 4) return { family, value: address.split('.').reduce((acc, part) => (acc << 8n) | BigInt(Number(part)), 0n) };
  if (family !== 6) return null;
  // The WHATWG form has no dotted tail and at most one "::"; expand that to eight groups.
  const canonical = new URL(`http://[${address}]/`).hostname.slice(1, -1);
  const [head = '', tail] = canonical.split('::');
  const headGroups = head ? head.split(':') : [];
  const tailGroups = tail ? tail.split(':') : [];
  const groups = tail === undefined ? headGroups : [...headGroups, ...Array<string>(8 - headGroups.length - tailGroups.length).fill('0'), ...tailGroups];
  return { family, value: groups.reduce((acc, group) => (acc << 16n) | BigInt(parseInt(group, 16)), 0n) };
}

interface Range extends IpValue {
  prefix: number;
}

function range(cidr: string): Range {
  const [base, bits] = cidr.split('/');
  const ip = ipValue(base!)!;
  return { ...ip, prefix: bits === undefined ? (ip.family === 4 ? 32 : 128) : Number(bits) };
}

function inRange(ip: IpValue, r: Range): boolean {
  if (ip.family !== r.family) return false;
  const shift = BigInt((ip.family === 4 ? 32 : 128) - r.prefix);
  return ip.value >> shift === r.value >> shift;
}

const fromIpv4 = (value: bigint): IpValue => ({ family: 4, value: value & 0xffffffffn });
const same = (a: IpValue, b: IpValue): boolean => a.family === b.family && a.value === b.value;
const ipv4Text = (value: bigint): string => [24n, 16n, 8n, 0n].map((shift) => String((value >> shift) & 255n)).join('.');

/**
 * IPv6 forms that carry an IPv4 address and reach it (mapped, compatible, NAT64, 6to4): judged as
 * that IPv4 address, so ::ffff:127.0.0.1 is loopback like 127.0.0.1.
 */
const EMBEDDING: { range: Range; v4: (value: bigint) => bigint }[] = [
  { range: range('::ffff:0:0/96'), v4: (v) => v },
  // SIIT (RFC 6052 §2.1's IPv4-translated form) and local-use NAT64 (RFC 8215), as 64:ff9b::/96.
  { range: range('::ffff:0:0:0/96'), v4: (v) => v },
  { range: range('64:ff9b::/96'), v4: (v) => v },
  { range: range('64:ff9b:1::/48'), v4: (v) => v },
  { range: range('2002::/16'), v4: (v) => v >> 80n },
];

/** The IPv4 address behind an IPv6 form that embeds one, else the address itself. */
function unwrap(ip: IpValue): IpValue {
  if (ip.family === 4) return ip;
  for (const { range: r, v4 } of EMBEDDING) if (inRange(ip, r)) return fromIpv4(v4(ip.value));
  // IPv4-compatible ::a.b.c.d (deprecated), but not :: and ::1, which are IPv6's own.
  if (ip.value >> 32n === 0n && ip.value > 1n) return fromIpv4(ip.value);
  return ip;
}

/** Address ranges no webhook goes to unless allowed: what they are, for the refusal. */
const NOT_PUBLIC: { range: Range; what: string }[] = [
  ['0.0.0.0/8', 'an unspecified address (it reaches this host)'],
  ['10.0.0.0/8', 'a private address'],
  ['100.64.0.0/10', 'a shared (carrier-grade NAT) address'],
  ['127.0.0.0/8', 'a loopback address'],
  ['169.254.0.0/16', 'a link-local address (cloud metadata lives there)'],
  ['172.16.0.0/12', 'a private address'],
  ['192.0.0.0/24', 'a reserved address'],
  ['192.0.2.0/24', 'a documentation address'],
  ['198.51.100.0/24', 'a documentation address'],
  ['203.0.113.0/24', 'a documentation address'],
  ['192.168.0.0/16', 'a private address'],
  ['198.18.0.0/15', 'a reserved (benchmarking) address'],
  ['224.0.0.0/4', 'a multicast address'],
  ['240.0.0.0/4', 'a reserved address'],
  ['::/128', 'an unspecified address (it reaches this host)'],
  ['::1/128', 'a loopback address'],
  ['100::/64', 'a discard address'],
  ['2001::/32', 'a Teredo tunnel address (it reaches an IPv4 host chosen by whoever sends it)'],
  ['2001:db8::/32', 'a documentation address'],
  ['fc00::/7', 'a unique-local (private) address'],
  ['fe80::/10', 'a link-local address'],
  ['fec0::/10', 'a site-local (private) address'],
  ['ff00::/8', 'a multicast address'],
].map(([cidr, what]) => ({ range: range(cidr!), what: what! }));

const LOCAL = [range('0.0.0.0/8'), range('127.0.0.0/8'), range('::/128'), range('::1/128')];

/** Whether a connection to the address ends on this host: loopback, unspecified, or an address of one of its interfaces. */
function onThisHost(ip: IpValue): boolean {
  if (LOCAL.some((r) => inRange(ip, r))) return true;
  return Object.values(os.networkInterfaces())
    .flatMap((addresses) => addresses ?? [])
    .some((a) => {
      const own = ipValue(a.address);
      return own !== null && same(unwrap(own), ip);
    });
}

/** A host name that is this host: localhost, or an address of its own. */
function onThisHostName(host: string): boolean {
  if (host === 'localhost') return true;
  const ip = ipValue(host);
  return ip !== null && onThisHost(unwrap(ip));
}

export type Resolver = (host: string) => Promise<{ address: string; family: number }[]>;

const systemResolver: Resolver = (host) => dns.promises.lookup(host, { all: true, verbatim: true });

interface Reserved {
  port: number;
  /** A host elsewhere (InfluxDB); none: any address of this host. */
  host?: string | undefined;
  what: string;
}

/** Decides which webhook targets may be called: alerts.webhookAllowTargets and the service's own endpoints. */
export class WebhookTargets {
  private readonly names: Set<string>;
  private readonly ranges: Range[];
  private readonly reserved: Reserved[] = [];

  constructor(
    allow: string,
    private readonly resolve: Resolver = systemResolver,
  ) {
    const parsed = parseAllowTargets(allow);
    if (!parsed) throw new Error(`${ALLOW_KEY} is malformed: ${allow}`);
    this.names = parsed.names;
    this.ranges = parsed.ranges.map((r) => range(`${r.address}/${r.prefix}`));
  }

  /**
   * Refuses webhooks to a port of this service (its HTTP API, MQTT listeners) on any address of
   * this host, or to a host and port it depends on (its InfluxDB), even where allowed otherwise.
   */
  reserve(port: number | null, what: string, host?: string): void {
    if (port) this.reserved.push({ port, host, what });
  }

  /** The address to send to, or a WebhookTargetError saying why the URL may not be called. */
  async check(raw: string): Promise<CheckedTarget> {
    let url: URL;
    try {
      url = new URL(raw);
    } catch {
      throw new WebhookTargetError(`url ${raw} is not a URL`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new WebhookTargetError(`url must be http or https, not ${url.protocol}`);
    const host = url.hostname.replace(/^\[(.*)\]$/, '$1').toLowerCase();
    const port = Number(url.port || (url.protocol === 'https:' ? 443 : 80));
    const literal = ipValue(host);
    let answers: { address: string; family: number }[];
    if (literal) {
      answers = [{ address: host, family: literal.family }];
    } else {
      try {
        answers = await this.resolve(host);
      } catch (error) {
        throw new WebhookTargetError(`host ${host} of the webhook url does not resolve (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}); check its spelling and this host's DNS`);
      }
      if (answers.length === 0) throw new WebhookTargetError(`host ${host} of the webhook url resolves to no address`);
    }
    const named = this.names.has(host.replace(/\.$/, ''));
    const said = (address: string) => (literal ? address : `${host} resolves to ${address}, which`);
    // Every address the name has must pass, not only the one connected to: a name that resolves to
    // a public and a private address is refused rather than connected by chance to either.
    for (const { address } of answers) {
      const raw = ipValue(address)!;
      const ip = unwrap(raw);
      const own = await this.reservedFor(ip, port);
      if (own) throw new WebhookTargetError(`${said(address)} is ${own} (port ${port}); a webhook may not call the service or its database, whatever ${ALLOW_KEY} says`);
      if (named || this.ranges.some((r) => inRange(ip, r) || inRange(raw, r))) continue;
      const blocked = NOT_PUBLIC.find(({ range: r }) => inRange(ip, r));
      if (blocked) {
        const carried = ip === raw ? '' : ` (it carries the IPv4 address ${ipv4Text(ip.value)})`;
        throw new WebhookTargetError(
          `${said(address)}${carried} is ${blocked.what}; webhooks go to public addresses only. If this receiver is meant to be reached on your own network, ` +
            `add "${literal ? address : host}" (or a CIDR range holding it) to ${ALLOW_KEY}`,
        );
      }
    }
    const first = answers[0]!;
    return { url, address: first.address, family: first.family === 6 ? 6 : 4 };
  }

  private async reservedFor(ip: IpValue, port: number): Promise<string | null> {
    for (const r of this.reserved) {
      // An InfluxDB elsewhere is reserved whole: its other ports (8088 for backups, 8086 behind
      // TLS on 443) are the same database.
      if (r.port !== port && (r.host === undefined || onThisHostName(r.host))) continue;
      if (r.host === undefined) {
        if (onThisHost(ip)) return r.what;
        continue;
      }
      const literal = ipValue(r.host);
      const hostIps = literal ? [unwrap(literal)] : (await this.resolve(r.host).catch(() => [])).map((a) => unwrap(ipValue(a.address)!));
      // The same address, or both on this host (127.0.0.1 and this host's LAN address reach one influxd).
      if (hostIps.some((h) => same(h, ip) || (onThisHost(h) && onThisHost(ip)))) return r.what;
    }
    return null;
  }
}

/** A POST to the checked address only, without following redirects; resolves with the status. */
function post(target: CheckedTarget, headers: Record<string, string>, body: string, signal: AbortSignal): Promise<number> {
  // Name resolution is answered with the address that was checked: the URL's host still goes in
  // the Host header and in TLS (SNI and certificate), but no second lookup can change where it goes.
  const lookup: net.LookupFunction = (_hostname, options, callback) => {
    if (options.all) callback(null, [{ address: target.address, family: target.family }]);
    else callback(null, target.address, target.family);
  };
  return new Promise((resolve, reject) => {
    const client = target.url.protocol === 'https:' ? https : http;
    const request = client.request(target.url, { method: 'POST', headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) }, agent: false, lookup, signal }, (response) => {
      const status = response.statusCode ?? 0;
      let received = 0;
      response.on('data', (chunk: Buffer) => {
        received += chunk.length;
        if (received > WEBHOOK_RESPONSE_MAX_BYTES) {
          response.destroy();
          resolve(status);
        }
      });
      response.on('end', () => resolve(status));
      response.on('error', reject);
    });
    request.on('error', reject);
    request.end(body);
  });
}

/** Rejects when the signal aborts, without waiting for the promise (a DNS lookup cannot be cancelled). */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise((resolve, reject) => {
    const abort = () => reject(signal.reason as Error);
    if (signal.aborted) return abort();
    signal.addEventListener('abort', abort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', abort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', abort);
        reject(error as Error);
      },
    );
  });
}

export class WebhookStore {
  constructor(
    private readonly db: RegistryDb,
    private readonly clock: () => number = Date.now,
  ) {}

  /**
   * Adds a webhook once `targets` allows its URL (a WebhookTargetError otherwise); the secret is
   * generated unless given, and returned this once.
   */
  async create(input: { jurisdiction_id: string; url: string; secret?: string | undefined }, targets: WebhookTargets): Promise<Webhook & { secret: string }> {
    if (!this.db.statement('SELECT 1 FROM jurisdictions WHERE id = ?').get(input.jurisdiction_id)) throw new RegistryError('invalid', `no jurisdiction ${input.jurisdiction_id}`);
    const { url } = await targets.check(input.url);
    const id = crypto.randomUUID();
    const secret = input.secret ?? crypto.randomBytes(32).toString('base64url');
    const now = new Date(this.clock()).toISOString();
    this.db.statement('INSERT INTO webhooks (id, jurisdiction_id, url, secret, enabled, created_at, updated_at) VALUES (?, ?, ?, ?, 1, ?, ?)').run(id, input.jurisdiction_id, url.toString(), secret, now, now);
    return { ...this.get(id)!, secret };
  }

  get(id: string): Webhook | undefined {
    return this.list().find((w) => w.id === id);
  }

  /** Deliveries waiting in the outbox, all webhooks together. */
  pendingCount(): number {
    return (this.db.statement('SELECT COUNT(*) AS n FROM webhook_outbox WHERE delivered_at IS NULL AND failed_at IS NULL').get() as { n: number }).n;
  }

  list(): Webhook[] {
    const rows = this.db.statement(
        `SELECT w.id, w.jurisdiction_id, w.url, w.enabled, w.created_at,
           (SELECT COUNT(*) FROM webhook_outbox o WHERE o.webhook_id = w.id AND o.delivered_at IS NULL AND o.failed_at IS NULL) AS pending,
           (SELECT o.last_error FROM webhook_outbox o WHERE o.webhook_id = w.id AND o.delivered_at IS NULL AND o.last_error IS NOT NULL ORDER BY o.seq DESC LIMIT 1) AS last_error
         FROM webhooks w ORDER BY w.created_at, w.id`,
      )
      .all() as (Omit<Webhook, 'enabled'> & { enabled: number })[];
    return rows.map((r) => ({ ...r, enabled: r.enabled === 1 }));
  }

  remove(id: string): void {
    if (this.db.statement('DELETE FROM webhooks WHERE id = ?').run(id).changes === 0) throw new RegistryError('not_found', `no webhook ${id}`);
  }

  /** Queues the change for every webhook of the alert's jurisdictions (call inside the alert's transaction). */
  enqueue(alert: AlertView, change: AlertChange): void {
    this.db.run(this.enqueuing(alert, change));
  }

  /**
   * enqueue() as steps (registry/steps.ts): one delivery per enabled webhook of the alert's
   * jurisdictions, in one statement whose outcome is not read, so on PostgreSQL it goes with the
   * transaction's next.
   */
  *enqueuing(alert: AlertView, change: AlertChange): Generator<Step, void> {
    if (alert.jurisdictions.length === 0) return;
    const key = change === 'raised' ? alert.id : `${alert.id}:${alert.version}`;
    const body = JSON.stringify({ event: `alert.${change}`, alert });
    const now = this.clock();
    yield write(
      `INSERT INTO webhook_outbox (webhook_id, idempotency_key, alert_id, body, created_at, next_attempt_at)
       SELECT id, ?, ?, ?, ?, ? FROM webhooks WHERE enabled = 1 AND jurisdiction_id IN (${alert.jurisdictions.map(() => '?').join(', ')})
       ON CONFLICT (webhook_id, idempotency_key) DO NOTHING`,
      key, alert.id, body, now, now, ...alert.jurisdictions,
    );
  }

  /** Deliveries waiting, over all webhooks. */
  depth(): number {
    return (this.db.statement('SELECT COUNT(*) AS n FROM webhook_outbox WHERE delivered_at IS NULL AND failed_at IS NULL').get() as { n: number }).n;
  }
}

interface Due {
  seq: number;
  next_attempt_at: number;
  webhook_id: string;
  idempotency_key: string;
  alert_id: string;
  body: string;
  created_at: number;
  attempts: number;
  url: string;
  secret: string;
}

const POLL_MS = 200;
const BATCH = 32;
/** How much longer than a delivery may take (alerts.webhookTimeoutMs) a claim holds a message. */
const CLAIM_MARGIN_MS = 30_000;

/**
 * Works through the outbox: due deliveries in order of queueing, a few at a time. Several
 * processes may deliver from one outbox (on PostgreSQL; or a standby scheduler taking over): each
 * message is claimed before it is sent, by moving its next attempt past the time its delivery
 * may take, on the condition that it is still as it was read (compare-and-set, one statement,
 * on either backend). A process that lost the race to another sends nothing; one that dies while
 * sending leaves the message to be sent again once its claim runs out.
 */
export class WebhookDeliverer {
  private timer: NodeJS.Timeout | null = null;
  private readonly inFlight = new Set<number>();
  private running = false;
  /** Which targets may be called; the webhook API checks new webhooks with the same. */
  readonly targets: WebhookTargets;
  delivered = 0;
  failedAttempts = 0;

  constructor(
    private readonly db: RegistryDb,
    private readonly config: AlertsConfig,
    private readonly log: Logger,
    private readonly clock: () => number = Date.now,
  ) {
    this.targets = new WebhookTargets(config.webhookAllowTargets);
  }

  start(): void {
    this.timer = setInterval(() => void this.tick(), POLL_MS);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    const deadline = Date.now() + this.config.webhookTimeoutMs;
    while ((this.inFlight.size > 0 || this.running) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  }

  private async tick(): Promise<void> {
    if (this.running || !this.timer) return;
    this.running = true;
    try {
      const now = this.clock();
      const due = this.db.statement(
          `SELECT o.seq, o.next_attempt_at, o.webhook_id, o.idempotency_key, o.alert_id, o.body, o.created_at, o.attempts, w.url, w.secret
           FROM webhook_outbox o JOIN webhooks w ON w.id = o.webhook_id
           WHERE o.delivered_at IS NULL AND o.failed_at IS NULL AND o.next_attempt_at <= ? AND w.enabled = 1
           ORDER BY o.next_attempt_at, o.seq LIMIT ?`,
        )
        .all(now, BATCH) as Due[];
      // Only what this process claims is sent: another may have read the same messages.
      const claim = this.db.statement('UPDATE webhook_outbox SET next_attempt_at = ? WHERE seq = ? AND next_attempt_at = ? AND delivered_at IS NULL AND failed_at IS NULL');
      const until = now + this.config.webhookTimeoutMs + CLAIM_MARGIN_MS;
      const claimed = due.filter((d) => !this.inFlight.has(d.seq) && claim.run(until, d.seq, d.next_attempt_at).changes === 1);
      await Promise.all(claimed.map((d) => this.deliver(d)));
    } catch (error) {
      this.log.error({ error: (error as Error).message }, 'webhook outbox could not be read');
    } finally {
      this.running = false;
    }
  }

  private async deliver(d: Due): Promise<void> {
    this.inFlight.add(d.seq);
    const timestamp = Math.floor(this.clock() / 1000);
    let problem: string | null = null;
    const signal = AbortSignal.timeout(this.config.webhookTimeoutMs);
    try {
      const target = await untilAborted(this.targets.check(d.url), signal);
      const status = await post(target, {
        'content-type': 'application/json',
        'idempotency-key': d.idempotency_key,
        'waste-signature': `t=${timestamp},v1=${signature(d.secret, timestamp, d.body)}`,
        'waste-event': (JSON.parse(d.body) as { event: string }).event,
      }, d.body, signal);
      if (status >= 300 && status < 400) problem = `HTTP ${status}: redirects are not followed; point the webhook at the URL that answers`;
      else if (status < 200 || status >= 300) problem = `HTTP ${status}`;
    } catch (error) {
      if (error instanceof WebhookTargetError) problem = `refused: ${error.message}`;
      else if (signal.aborted) problem = `no answer within ${this.config.webhookTimeoutMs} ms (alerts.webhookTimeoutMs)`;
      else problem = (error as Error).message;
    } finally {
      this.inFlight.delete(d.seq);
    }
    const now = this.clock();
    if (problem === null) {
      this.delivered++;
      this.db.statement('UPDATE webhook_outbox SET delivered_at = ?, attempts = attempts + 1, last_error = NULL WHERE seq = ?').run(now, d.seq);
      return;
    }
    this.failedAttempts++;
    const attempts = d.attempts + 1;
    if (now - d.created_at > this.config.webhookGiveUpH * 3_600_000) {
      this.db.statement('UPDATE webhook_outbox SET failed_at = ?, attempts = ?, last_error = ? WHERE seq = ? AND delivered_at IS NULL').run(now, attempts, problem, d.seq);
      this.log.error({ webhook: d.webhook_id, url: d.url, alert: d.alert_id, attempts, error: problem }, `webhook delivery given up after ${this.config.webhookGiveUpH} h`);
      return;
    }
    // A refused target stays queued like any failure: once the operator allows it (or its DNS
    // points somewhere public again) and restarts, what waited is delivered.
    const delay = Math.min(this.config.webhookRetryMaxMs, this.config.webhookRetryMinMs * 2 ** Math.min(attempts - 1, 30));
    // Not over a delivery another process made after this one's claim ran out.
    this.db.statement('UPDATE webhook_outbox SET attempts = ?, next_attempt_at = ?, last_error = ? WHERE seq = ? AND delivered_at IS NULL').run(attempts, now + delay, problem, d.seq);
    if (attempts === 1 || attempts % 10 === 0) this.log.warn({ webhook: d.webhook_id, url: d.url, alert: d.alert_id, attempts, retryInMs: delay, error: problem }, `webhook ${d.url} did not take an alert; retrying`);
  }
}

// Webhooks: signed bodies, the alert id as idempotency key, routing by jurisdiction, retries while
// the receiver is down, and every alert delivered once after the service restarts. Targets: no
// loopback, private, link-local or own address is called (checked when created and again at each
// delivery) unless alerts.webhookAllowTargets allows it; no redirect is followed, no answer read
// past its bound. The outbox on SQLite and on PostgreSQL, where several processes deliver from it.
import crypto from 'node:crypto';
import http from 'node:http';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { AlertService } from '../../../services/alerts/alert-service.ts';
import { WebhookTargetError, WebhookTargets } from '../../../services/alerts/webhooks.ts';
import { alertsSchema, type AlertsConfig } from '../../../services/config/schema.ts';
import type { Finding } from '../../../services/contract/findings.ts';
import { createLogger } from '../../../services/log.ts';
import { RegistryDb } from '../../../services/registry/db.ts';
import { startTestInfluxd, type TestInfluxd } from '../../helpers/influxd.ts';
import { freePort } from '../../helpers/ports.ts';
import { BACKENDS, registryLocations } from '../../helpers/registry-backends.ts';
import { NIGHT, worldRegistry, writeWorld } from '../../helpers/rules-world.ts';
import { eventually, sleep, startTestService, tempDir, testConfig, type TestService } from '../../helpers/service.ts';

interface Delivery {
  key: string;
  event: string;
  signature: string;
  body: string;
  status: number;
}

/** A webhook receiver on a fixed port that can be taken down and brought back. */
class Receiver {
  readonly deliveries: Delivery[] = [];
  /** Every request that arrived, whatever became of it. */
  requests = 0;
  private server: http.Server | null = null;
  failNext = 0;
  /** How long each answer is held back. */
  delayMs = 0;
  constructor(
    readonly port: number,
    readonly host = '127.0.0.1',
  ) {}
  get url() {
    return `http://${this.host.includes(':') ? `[${this.host}]` : this.host}:${this.port}/hook`;
  }
  async up(): Promise<void> {
    this.server = http.createServer((req, res) => {
      this.requests++;
      let body = '';
      req.on('data', (chunk: Buffer) => (body += chunk.toString()));
      req.on('end', () => {
        const status = this.failNext > 0 ? 500 : 200;
        if (this.failNext > 0) this.failNext--;
        this.deliveries.push({ key: String(req.headers['idempotency-key']), event: String(req.headers['waste-event']), signature: String(req.headers['waste-signature']), body, status });
        setTimeout(() => res.writeHead(status).end(), this.delayMs);
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(this.port, this.host, resolve));
  }
  async down(): Promise<void> {
    const server = this.server;
    this.server = null;
    if (server) await new Promise((resolve) => server.close(resolve));
  }
  accepted(): string[] {
    return this.deliveries.filter((d) => d.status === 200).map((d) => d.key);
  }
}

// The receivers of these tests listen on loopback, which webhooks reach only when allowed.
const config = alertsSchema.parse({ webhookRetryMinMs: 50, webhookRetryMaxMs: 200, webhookAllowTargets: '127.0.0.1' });
const subject = { kind: 'truck' as const, id: 'T1', plate: '苏E·00001', deviceId: 'GPS-1' };
const finding = (startedAt: number, jurisdictions: string[]): Finding => ({
  type: 'illegal_dump',
  severity: 'critical',
  subject,
  startedAt,
  endedAt: startedAt + 60_000,
  location: [120.58, 31.3],
  jurisdictions,
  evidence: [{ kind: 'fix', ts: startedAt, device_id: 'GPS-1', lon: 120.58, lat: 31.3, speed_kmh: 0, tipper_up: true }],
  permit: null,
  detail: {},
});

let receiver: Receiver;
let service: AlertService | null = null;
let db: RegistryDb | null = null;
/** Services and connections of other processes, stopped and closed after each test. */
const others: { service: AlertService; db: RegistryDb }[] = [];
afterEach(async () => {
  await service?.stop();
  db?.close();
  for (const other of others.splice(0)) {
    await other.service.stop();
    other.db.close();
  }
  await receiver?.down();
});

function alertService(registry: RegistryDb, alertsConfig: AlertsConfig = config): AlertService {
  const started = new AlertService({ db: registry, config: alertsConfig, evidenceMax: 40, outputs: [], writeLines: async () => {}, log: createLogger('silent') });
  started.start();
  return started;
}

function startAlerts(registry: RegistryDb, alertsConfig: AlertsConfig = config): AlertService {
  service = alertService(registry, alertsConfig);
  return service;
}

describe.each(BACKENDS)('webhooks on %s', (backend) => {
  const location = registryLocations(backend);

  it('posts each raised alert of its jurisdiction, signed, with the alert id as idempotency key', async () => {
    receiver = new Receiver(await freePort());
    await receiver.up();
    ({ db } = await worldRegistry({}, await location()));
    const alerts = startAlerts(db);
    const secret = 'a-shared-secret-of-the-bureau';
    await alerts.webhooks.create({ jurisdiction_id: 'WEST', url: receiver.url, secret }, alerts.deliverer.targets);
    alerts.onFinding(finding(NIGHT, ['WEST']));
    alerts.onFinding(finding(NIGHT + 3_600_000, ['EAST']));
    await eventually(async () => receiver.deliveries.length, (n) => n >= 1);
    await sleep(300);
    expect(receiver.deliveries).toHaveLength(1);
    const [delivery] = receiver.deliveries;
    const body = JSON.parse(delivery!.body) as { event: string; alert: { id: string; jurisdictions: string[] } };
    expect(delivery!.key).toBe(body.alert.id);
    expect(delivery!.event).toBe('alert.raised');
    expect(body.alert.jurisdictions).toEqual(['WEST']);
    const [, t, v1] = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(delivery!.signature)!;
    expect(v1).toBe(crypto.createHmac('sha256', secret).update(`${t}.${delivery!.body}`).digest('hex'));
    expect(Math.abs(Number(t) - Date.now() / 1000)).toBeLessThan(5);
  });

  it('retries after failures and delivers once', async () => {
    receiver = new Receiver(await freePort());
    await receiver.up();
    receiver.failNext = 2;
    ({ db } = await worldRegistry({}, await location()));
    const alerts = startAlerts(db);
    await alerts.webhooks.create({ jurisdiction_id: 'WEST', url: receiver.url }, alerts.deliverer.targets);
    alerts.onFinding(finding(NIGHT, ['WEST']));
    await eventually(async () => receiver.accepted().length, (n) => n >= 1);
    await sleep(300);
    expect(receiver.deliveries.map((d) => d.status)).toEqual([500, 500, 200]);
    expect(new Set(receiver.deliveries.map((d) => d.key)).size).toBe(1);
    expect(alerts.webhooks.depth()).toBe(0);
  });

  it('delivers every alert exactly once to a receiver that was down across a service restart', async () => {
    receiver = new Receiver(await freePort());
    ({ db } = await worldRegistry({}, await location()));
    const where = db.location;
    let alerts = startAlerts(db);
    await alerts.webhooks.create({ jurisdiction_id: 'WEST', url: receiver.url }, alerts.deliverer.targets);
    const ids: string[] = [];
    for (const i of [0, 1, 2]) {
      alerts.onFinding(finding(NIGHT + i * 3_600_000, ['WEST', 'EAST']));
      await alerts.recorded();
      ids.push(alerts.store.list({ limit: 1, offset: 0 }).items[0]!.id);
    }
    await alerts.acknowledge(ids[0]!, 'officer-li');
    await sleep(400);
    expect(alerts.webhooks.list()[0]!.pending).toBe(4);
    await alerts.stop();
    db.close();

    db = new RegistryDb(where);
    db.open();
    alerts = startAlerts(db);
    await receiver.up();
    await eventually(async () => receiver.accepted().length, (n) => n >= 4);
    await sleep(500);
    expect(receiver.accepted().sort()).toEqual([...ids, `${ids[0]}:2`].sort());
    expect(receiver.deliveries.every((d) => d.status === 200)).toBe(true);
    expect(alerts.webhooks.depth()).toBe(0);
  });

  it('delivers each message once when two processes work through one outbox', async () => {
    receiver = new Receiver(await freePort());
    // Answers held back, so that each process reads the outbox while the other's deliveries are
    // under way: without claims, both would send what both read.
    receiver.delayMs = 300;
    await receiver.up();
    ({ db } = await worldRegistry({}, await location()));
    const alerts = startAlerts(db);
    const second = new RegistryDb(db.location).open();
    others.push({ service: alertService(second), db: second });
    await alerts.webhooks.create({ jurisdiction_id: 'WEST', url: receiver.url }, alerts.deliverer.targets);
    const ids: string[] = [];
    for (let i = 0; i < 6; i++) {
      alerts.onFinding(finding(NIGHT + i * 3_600_000, ['WEST']));
      await alerts.recorded();
      ids.push(alerts.store.list({ limit: 1, offset: 0 }).items[0]!.id);
    }
    await eventually(async () => alerts.webhooks.depth(), (n) => n === 0, 10_000);
    await sleep(600);
    expect(receiver.deliveries.map((d) => d.key).sort()).toEqual([...ids].sort());
    expect(receiver.requests).toBe(ids.length);
    // Between them, the two processes delivered each message once.
    expect(alerts.deliverer.delivered + others[0]!.service.deliverer.delivered).toBe(ids.length);
  });
});

/** A plain HTTP server for a test; counts what reaches it. */
async function listen(handler: http.RequestListener, host = '127.0.0.1'): Promise<{ server: http.Server; port: number; requests: () => number }> {
  let requests = 0;
  const server = http.createServer((req, res) => {
    requests++;
    handler(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const { port } = server.address() as { port: number };
  return { server, port, requests: () => requests };
}

// On SQLite only: these are about which targets may be called and how a delivery is made, through
// the real service (its database is the service tests' to vary) or a registry of their own; the
// outbox itself is tested on both backends above.
describe('webhook targets', () => {
  let influxd: TestInfluxd;
  let running: TestService | null = null;
  const servers: http.Server[] = [];
  beforeAll(async () => {
    influxd = await startTestInfluxd();
  });
  afterAll(async () => {
    await influxd?.cleanup();
  });
  afterEach(async () => {
    await running?.stop();
    running = null;
    for (const server of servers.splice(0)) {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
    await receiver?.down();
  });

  /** The real service with its API on a free port, an admin token, and a fetch for the API. */
  async function startService(overrides: Record<string, unknown>, dataDir: string) {
    const config = await testConfig(influxd.url, { 'api.host': '127.0.0.1', 'api.port': await freePort(), 'alerts.webhookRetryMinMs': 50, 'alerts.webhookRetryMaxMs': 200, ...overrides }, dataDir);
    const started = await startTestService(config);
    running = started;
    const token = started.service.tokens.create({ name: 'ops', role: 'admin' }).token;
    const api = async (method: 'GET' | 'POST', route: string, body?: object) => {
      const response = await fetch(`http://127.0.0.1:${started.ports.apiPort}/api/v1${route}`, {
        method,
        headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
        ...(body ? { body: JSON.stringify(body) } : {}),
      });
      return { status: response.status, body: (await response.json()) as Record<string, any> }; // eslint-disable-line @typescript-eslint/no-explicit-any
    };
    return { started, api };
  }

  it('refuses a webhook to loopback in any spelling, to private and link-local addresses and to the service\'s InfluxDB, saying why; none is called', async () => {
    const v4 = await listen((_req, res) => res.end('ok'));
    const v6 = await listen((_req, res) => res.end('ok'), '::1');
    servers.push(v4.server, v6.server);
    const { started, api } = await startService({}, await tempDir('waste-hooks-'));
    writeWorld(started.service.entities);
    const refused: [string, RegExp][] = [
      [`http://127.0.0.1:${v4.port}/hook`, /^127\.0\.0\.1 is a loopback address/],
      [`http://localhost:${v4.port}/hook`, /^localhost resolves to (127\.0\.0\.1|::1), which is a loopback address/],
      [`http://[::1]:${v6.port}/hook`, /^::1 is a loopback address/],
      [`http://2130706433:${v4.port}/hook`, /^127\.0\.0\.1 is a loopback address/],
      [`http://0x7f.1:${v4.port}/hook`, /^127\.0\.0\.1 is a loopback address/],
      [`http://[::ffff:127.0.0.1]:${v4.port}/hook`, /^::ffff:7f00:1 \(it carries the IPv4 address 127\.0\.0\.1\) is a loopback address/],
      [`http://[::ffff:7f00:1]:${v6.port}/hook`, /^::ffff:7f00:1 \(it carries the IPv4 address 127\.0\.0\.1\) is a loopback address/],
      [`http://0.0.0.0:${v4.port}/hook`, /^0\.0\.0\.0 is an unspecified address/],
      [`http://[::]:${v6.port}/hook`, /^:: is an unspecified address/],
      [`${influxd.url}/query?q=CREATE%20DATABASE%20pwned`, /^127\.0\.0\.1 is the InfluxDB of this service/],
      ['http://10.20.0.5/cases', /^10\.20\.0\.5 is a private address/],
      ['http://172.16.3.4/cases', /^172\.16\.3\.4 is a private address/],
      ['http://192.168.1.10/cases', /^192\.168\.1\.10 is a private address/],
      ['http://169.254.169.254/latest/meta-data/', /^169\.254\.169\.254 is a link-local address/],
      ['http://[fd00::2]/cases', /^fd00::2 is a unique-local \(private\) address/],
      ['http://[fe80::1]/cases', /^fe80::1 is a link-local address/],
      ['http://224.0.0.1/cases', /^224\.0\.0\.1 is a multicast address/],
      ['http://[64:ff9b::a00:1]/cases', /^64:ff9b::a00:1 \(it carries the IPv4 address 10\.0\.0\.1\) is a private address/],
      ['http://[2002:7f00:1::]/cases', /^2002:7f00:1:: \(it carries the IPv4 address 127\.0\.0\.1\) is a loopback address/],
    ];
    for (const [url, reason] of refused) {
      const response = await api('POST', '/webhooks', { jurisdiction_id: 'WEST', url });
      expect(response.status, url).toBe(400);
      expect(response.body.error, url).toMatchObject({ code: 'target_refused', path: ['body', 'url'], message: expect.stringMatching(reason) });
      expect(response.body.error.message, url).toContain('alerts.webhookAllowTargets');
    }
    expect((await api('GET', '/webhooks')).body.items).toEqual([]);
    started.service.alerts.onFinding(finding(NIGHT, ['WEST']));
    await sleep(500);
    expect([v4.requests(), v6.requests()]).toEqual([0, 0]);
    const databases = await influxd.store().query('SHOW DATABASES', {});
    expect(databases[0]!.values.flat()).not.toContain('pwned');
  });

  it('checks the target again at every delivery: once its allowance is gone it is not called; allowed again, what waited is delivered', async () => {
    receiver = new Receiver(await freePort());
    await receiver.up();
    const dir = await tempDir('waste-hooks-');
    let { started, api } = await startService({ 'alerts.webhookAllowTargets': '127.0.0.1' }, dir);
    writeWorld(started.service.entities);
    expect((await api('POST', '/webhooks', { jurisdiction_id: 'WEST', url: receiver.url })).status).toBe(201);
    await started.stop();

    ({ started, api } = await startService({}, dir));
    started.service.alerts.onFinding(finding(NIGHT, ['WEST']));
    const refused = await eventually(async () => (await api('GET', '/webhooks')).body.items[0], (hook) => hook?.last_error !== null);
    expect(refused).toMatchObject({ pending: 1, last_error: expect.stringMatching(/^refused: 127\.0\.0\.1 is a loopback address; .*alerts\.webhookAllowTargets/) });
    await sleep(500);
    expect(receiver.requests).toBe(0);
    await started.stop();

    ({ started, api } = await startService({ 'alerts.webhookAllowTargets': '127.0.0.0/8' }, dir));
    await eventually(async () => receiver.accepted().length, (n) => n >= 1);
    expect(receiver.deliveries).toHaveLength(1);
    expect((await api('GET', '/webhooks')).body.items[0]).toMatchObject({ pending: 0, last_error: null });
  });

  it('never calls the service itself or its InfluxDB, even where loopback is allowed', async () => {
    const { started, api } = await startService({ 'alerts.webhookAllowTargets': '127.0.0.0/8,localhost' }, await tempDir('waste-hooks-'));
    writeWorld(started.service.entities);
    for (const url of [`http://127.0.0.1:${started.ports.apiPort}/api/v1/tokens`, `http://localhost:${started.ports.apiPort}/api/v1/tokens`, `http://127.0.0.2:${started.ports.apiPort}/`]) {
      const response = await api('POST', '/webhooks', { jurisdiction_id: 'WEST', url });
      expect([response.status, response.body.error?.message], url).toEqual([400, expect.stringMatching(/is the HTTP API of this service \(port \d+\); a webhook may not call the service or its database/)]);
    }
    // As `npm start` reserves it (services/main.ts): the InfluxDB where the configuration says.
    const targets = new WebhookTargets('127.0.0.0/8');
    const influxPort = Number(new URL(influxd.url).port);
    targets.reserve(influxPort, 'the InfluxDB of this service', '127.0.0.1');
    await expect(targets.check(`${influxd.url}/query?q=DROP%20DATABASE%20waste`)).rejects.toThrow(/^127\.0\.0\.1 is the InfluxDB of this service/);
    await expect(targets.check(`http://127.0.0.9:${influxPort}/query`)).rejects.toThrow(WebhookTargetError);
    await expect(targets.check(`http://127.0.0.1:${influxPort + 1}/hook`)).resolves.toMatchObject({ address: '127.0.0.1' });
  });

  it('lets public addresses through, and others only as far as alerts.webhookAllowTargets reaches', async () => {
    const none = new WebhookTargets('');
    await expect(none.check('https://203.0.114.9/hooks/alerts')).resolves.toMatchObject({ address: '203.0.114.9', family: 4 });
    await expect(none.check('http://[2400:cb00::1]/hook')).resolves.toMatchObject({ address: '2400:cb00::1', family: 6 });
    await expect(none.check('ftp://203.0.114.9/')).rejects.toThrow(/^url must be http or https, not ftp:/);
    await expect(none.check('http://no-such-host.invalid/')).rejects.toThrow(/^host no-such-host\.invalid of the webhook url does not resolve/);
    const bureau = new WebhookTargets('10.20.0.0/16, fd00:20::/32');
    await expect(bureau.check('http://10.20.3.4:8443/cases')).resolves.toMatchObject({ address: '10.20.3.4' });
    await expect(bureau.check('http://[::ffff:10.20.3.4]/cases')).resolves.toMatchObject({ address: '::ffff:a14:304' });
    await expect(bureau.check('http://[fd00:20::7]/cases')).resolves.toMatchObject({ address: 'fd00:20::7' });
    await expect(bureau.check('http://10.21.0.1/cases')).rejects.toThrow(/^10\.21\.0\.1 is a private address/);
    await expect(bureau.check('http://127.0.0.1/cases')).rejects.toThrow(/^127\.0\.0\.1 is a loopback address/);
    expect(() => new WebhookTargets('10.0.0.0/33')).toThrow(/alerts\.webhookAllowTargets/);
    expect(() => alertsSchema.parse({ webhookAllowTargets: 'cases.bureau.local, 10.20.0.0/16' })).not.toThrow();
    expect(() => alertsSchema.parse({ webhookAllowTargets: 'http://cases.bureau.local/' })).toThrow(/host names, IP addresses and CIDR ranges/);
  });

  it('refuses the IPv6 forms that reach an IPv4 host (SIIT, local-use NAT64, Teredo), documentation ranges, and a remote InfluxDB on any port', async () => {
    const none = new WebhookTargets('');
    await expect(none.check('http://[::ffff:0:7f00:1]/hook')).rejects.toThrow(/carries the IPv4 address 127\.0\.0\.1\) is a loopback address/);
    await expect(none.check('http://[64:ff9b:1::a9fe:a9fe]/hook')).rejects.toThrow(/carries the IPv4 address 169\.254\.169\.254\) is a link-local address/);
    await expect(none.check('http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/hook')).rejects.toThrow(/is a Teredo tunnel address/);
    await expect(none.check('http://192.0.2.10/hook')).rejects.toThrow(/is a documentation address/);
    await expect(none.check('http://[2001:db8::1]/hook')).rejects.toThrow(/is a documentation address/);
    // InfluxDB at https://203.0.114.20 (port 443): its 8086 is the same database.
    const resolver = async () => [{ address: '203.0.114.20', family: 4 }];
    const targets = new WebhookTargets('', resolver);
    targets.reserve(443, 'the InfluxDB of this service', 'influx.example.com');
    await expect(targets.check('http://influx.example.com:8086/query')).rejects.toThrow(/is the InfluxDB of this service/);
    await expect(targets.check('https://cases.example.com/hook')).rejects.toThrow(/is the InfluxDB of this service/);
  });

  it('delivers to a loopback receiver that the configuration names', async () => {
    receiver = new Receiver(await freePort());
    await receiver.up();
    const { started, api } = await startService({ 'alerts.webhookAllowTargets': 'localhost' }, await tempDir('waste-hooks-'));
    writeWorld(started.service.entities);
    expect((await api('POST', '/webhooks', { jurisdiction_id: 'WEST', url: `http://localhost:${receiver.port}/hook` })).status).toBe(201);
    started.service.alerts.onFinding(finding(NIGHT, ['WEST']));
    await eventually(async () => receiver.accepted().length, (n) => n >= 1);
    expect(receiver.deliveries).toHaveLength(1);
  });

  it('does not follow a redirect, stops reading an endless answer, and gives up on a silent receiver in time', async () => {
    const elsewhere = await listen((_req, res) => res.end('ok'));
    const redirecting = await listen((_req, res) => res.writeHead(307, { location: `http://127.0.0.1:${elsewhere.port}/hook` }).end());
    let endlessClosed = false;
    const endless = await listen((req, res) => {
      req.resume();
      res.writeHead(200, { 'content-type': 'text/plain' });
      const chunk = Buffer.alloc(16 * 1024, 'x');
      const pump = () => {
        while (!res.destroyed && res.write(chunk));
      };
      res.on('drain', pump);
      res.on('close', () => (endlessClosed = true));
      pump();
    });
    const silent = await listen((req) => req.resume());
    servers.push(elsewhere.server, redirecting.server, endless.server, silent.server);
    ({ db } = await worldRegistry());
    const alerts = startAlerts(db, alertsSchema.parse({ webhookRetryMinMs: 60_000, webhookTimeoutMs: 1500, webhookAllowTargets: '127.0.0.1' }));
    const hook = async (port: number) => (await alerts.webhooks.create({ jurisdiction_id: 'WEST', url: `http://127.0.0.1:${port}/hook` }, alerts.deliverer.targets)).id;
    const ids = { redirecting: await hook(redirecting.port), endless: await hook(endless.port), silent: await hook(silent.port) };
    alerts.onFinding(finding(NIGHT, ['WEST']));
    const settled = await eventually(async () => alerts.webhooks.list(), (hooks) => hooks.every((h) => h.pending === 0 || h.last_error !== null), 10_000);
    const byId = new Map(settled.map((h) => [h.id, h]));
    expect(byId.get(ids.redirecting)).toMatchObject({ pending: 1, last_error: 'HTTP 307: redirects are not followed; point the webhook at the URL that answers' });
    expect(elsewhere.requests()).toBe(0);
    expect(byId.get(ids.endless)).toMatchObject({ pending: 0, last_error: null });
    await eventually(async () => endlessClosed, (closed) => closed, 2000);
    expect(endlessClosed).toBe(true);
    expect(byId.get(ids.silent)).toMatchObject({ pending: 1, last_error: 'no answer within 1500 ms (alerts.webhookTimeoutMs)' });
  });
});

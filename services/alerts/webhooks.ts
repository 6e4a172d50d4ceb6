// Webhooks per jurisdiction and their durable outbox. Every alert change for a jurisdiction is
// written to the outbox in the same transaction as the alert, and delivered from there: POST with
// the JSON body, an Idempotency-Key (the alert id for the raise; alert id and version for a later
// change) and a signature over the timestamp and body,
//   Waste-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>
// (receivers recompute it and refuse stale timestamps, as with Stripe's scheme). Failures are
// retried with doubling delays, across restarts, until alerts.webhookGiveUpH.
import crypto from 'node:crypto';
import type { Logger } from 'pino';
import type { AlertsConfig } from '../config/schema.ts';
import type { RegistryDb } from '../registry/db.ts';
import { RegistryError } from '../registry/devices.ts';
import type { AlertChange, AlertView } from './alert-store.ts';

export interface Webhook {
  id: string;
  jurisdiction_id: string;
  url: string;
  enabled: boolean;
  created_at: string;
  /** Deliveries waiting (not yet delivered, not given up). */
  pending: number;
}

export function signature(secret: string, timestamp: number, body: string): string {
  return crypto.createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex');
}

export class WebhookStore {
  constructor(
    private readonly db: RegistryDb,
    private readonly clock: () => number = Date.now,
  ) {}

  /** Adds a webhook; the secret is generated unless given, and returned this once. */
  create(input: { jurisdiction_id: string; url: string; secret?: string | undefined }): Webhook & { secret: string } {
    const url = new URL(input.url);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new RegistryError('invalid', 'url must be http or https');
    if (!this.db.statement('SELECT 1 FROM jurisdictions WHERE id = ?').get(input.jurisdiction_id)) throw new RegistryError('invalid', `no jurisdiction ${input.jurisdiction_id}`);
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
           (SELECT COUNT(*) FROM webhook_outbox o WHERE o.webhook_id = w.id AND o.delivered_at IS NULL AND o.failed_at IS NULL) AS pending
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
    if (alert.jurisdictions.length === 0) return;
    const hooks = this.db.statement(`SELECT id FROM webhooks WHERE enabled = 1 AND jurisdiction_id IN (${alert.jurisdictions.map(() => '?').join(', ')})`)
      .all(...alert.jurisdictions) as { id: string }[];
    const key = change === 'raised' ? alert.id : `${alert.id}:${alert.version}`;
    const body = JSON.stringify({ event: `alert.${change}`, alert });
    const now = this.clock();
    const insert = this.db.statement(
      'INSERT OR IGNORE INTO webhook_outbox (webhook_id, idempotency_key, alert_id, body, created_at, next_attempt_at) VALUES (?, ?, ?, ?, ?, ?)',
    );
    for (const hook of hooks) insert.run(hook.id, key, alert.id, body, now, now);
  }

  /** Deliveries waiting, over all webhooks. */
  depth(): number {
    return (this.db.statement('SELECT COUNT(*) AS n FROM webhook_outbox WHERE delivered_at IS NULL AND failed_at IS NULL').get() as { n: number }).n;
  }
}

interface Due {
  seq: number;
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

/** Works through the outbox: due deliveries in order of queueing, a few at a time. */
export class WebhookDeliverer {
  private timer: NodeJS.Timeout | null = null;
  private readonly inFlight = new Set<number>();
  private running = false;
  delivered = 0;
  failedAttempts = 0;

  constructor(
    private readonly db: RegistryDb,
    private readonly config: AlertsConfig,
    private readonly log: Logger,
    private readonly clock: () => number = Date.now,
  ) {}

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
      const due = this.db.statement(
          `SELECT o.seq, o.webhook_id, o.idempotency_key, o.alert_id, o.body, o.created_at, o.attempts, w.url, w.secret
           FROM webhook_outbox o JOIN webhooks w ON w.id = o.webhook_id
           WHERE o.delivered_at IS NULL AND o.failed_at IS NULL AND o.next_attempt_at <= ? AND w.enabled = 1
           ORDER BY o.next_attempt_at, o.seq LIMIT ?`,
        )
        .all(this.clock(), BATCH) as Due[];
      await Promise.all(due.filter((d) => !this.inFlight.has(d.seq)).map((d) => this.deliver(d)));
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
    try {
      const response = await fetch(d.url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'idempotency-key': d.idempotency_key,
          'waste-signature': `t=${timestamp},v1=${signature(d.secret, timestamp, d.body)}`,
          'waste-event': (JSON.parse(d.body) as { event: string }).event,
        },
        body: d.body,
        signal: AbortSignal.timeout(this.config.webhookTimeoutMs),
      });
      await response.arrayBuffer().catch(() => undefined);
      if (!response.ok) problem = `HTTP ${response.status}`;
    } catch (error) {
      problem = (error as Error).cause instanceof Error ? ((error as Error).cause as Error).message : (error as Error).message;
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
      this.db.statement('UPDATE webhook_outbox SET failed_at = ?, attempts = ?, last_error = ? WHERE seq = ?').run(now, attempts, problem, d.seq);
      this.log.error({ webhook: d.webhook_id, url: d.url, alert: d.alert_id, attempts, error: problem }, `webhook delivery given up after ${this.config.webhookGiveUpH} h`);
      return;
    }
    const delay = Math.min(this.config.webhookRetryMaxMs, this.config.webhookRetryMinMs * 2 ** Math.min(attempts - 1, 30));
    this.db.statement('UPDATE webhook_outbox SET attempts = ?, next_attempt_at = ?, last_error = ? WHERE seq = ?').run(attempts, now + delay, problem, d.seq);
    if (attempts === 1 || attempts % 10 === 0) this.log.warn({ webhook: d.webhook_id, url: d.url, alert: d.alert_id, attempts, retryInMs: delay, error: problem }, `webhook ${d.url} did not take an alert; retrying`);
  }
}

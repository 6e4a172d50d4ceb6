// Webhooks: signed bodies, the alert id as idempotency key, routing by jurisdiction, retries while
// the receiver is down, and every alert delivered once after the service restarts.
import crypto from 'node:crypto';
import http from 'node:http';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { AlertService } from '../../../services/alerts/alert-service.ts';
import { alertsSchema } from '../../../services/config/schema.ts';
import { createLogger } from '../../../services/log.ts';
import { RegistryDb } from '../../../services/registry/db.ts';
import type { Finding } from '../../../services/rules/types.ts';
import { freePort } from '../../helpers/ports.ts';
import { NIGHT, worldRegistry } from '../../helpers/rules-world.ts';
import { eventually, sleep } from '../../helpers/service.ts';

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
  private server: http.Server | null = null;
  failNext = 0;
  constructor(readonly port: number) {}
  get url() {
    return `http://127.0.0.1:${this.port}/hook`;
  }
  async up(): Promise<void> {
    this.server = http.createServer((req, res) => {
      let body = '';
      req.on('data', (chunk: Buffer) => (body += chunk.toString()));
      req.on('end', () => {
        const status = this.failNext > 0 ? 500 : 200;
        if (this.failNext > 0) this.failNext--;
        this.deliveries.push({ key: String(req.headers['idempotency-key']), event: String(req.headers['waste-event']), signature: String(req.headers['waste-signature']), body, status });
        res.writeHead(status).end();
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(this.port, '127.0.0.1', resolve));
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

const config = alertsSchema.parse({ webhookRetryMinMs: 50, webhookRetryMaxMs: 200 });
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
afterEach(async () => {
  await service?.stop();
  db?.close();
  await receiver?.down();
});

function startAlerts(registry: RegistryDb): AlertService {
  service = new AlertService(registry, config, async () => {}, createLogger('silent'), 40);
  service.start();
  return service;
}

describe('webhooks', () => {
  it('posts each raised alert of its jurisdiction, signed, with the alert id as idempotency key', async () => {
    receiver = new Receiver(await freePort());
    await receiver.up();
    ({ db } = await worldRegistry());
    const alerts = startAlerts(db);
    const secret = 'a-shared-secret-of-the-bureau';
    alerts.webhooks.create({ jurisdiction_id: 'WEST', url: receiver.url, secret });
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
    ({ db } = await worldRegistry());
    const alerts = startAlerts(db);
    alerts.webhooks.create({ jurisdiction_id: 'WEST', url: receiver.url });
    alerts.onFinding(finding(NIGHT, ['WEST']));
    await eventually(async () => receiver.accepted().length, (n) => n >= 1);
    await sleep(300);
    expect(receiver.deliveries.map((d) => d.status)).toEqual([500, 500, 200]);
    expect(new Set(receiver.deliveries.map((d) => d.key)).size).toBe(1);
    expect(alerts.webhooks.depth()).toBe(0);
  });

  it('delivers every alert exactly once to a receiver that was down across a service restart', async () => {
    receiver = new Receiver(await freePort());
    ({ db } = await worldRegistry());
    const file = db.file;
    let alerts = startAlerts(db);
    alerts.webhooks.create({ jurisdiction_id: 'WEST', url: receiver.url });
    const ids = [0, 1, 2].map((i) => {
      alerts.onFinding(finding(NIGHT + i * 3_600_000, ['WEST', 'EAST']));
      return alerts.store.list({ limit: 1, offset: 0 }).items[0]!.id;
    });
    alerts.acknowledge(ids[0]!, 'officer-li');
    await sleep(400);
    expect(alerts.webhooks.list()[0]!.pending).toBe(4);
    await alerts.stop();
    db.close();

    db = new RegistryDb(path.resolve(file));
    db.open();
    alerts = startAlerts(db);
    await receiver.up();
    await eventually(async () => receiver.accepted().length, (n) => n >= 4);
    await sleep(500);
    expect(receiver.accepted().sort()).toEqual([...ids, `${ids[0]}:2`].sort());
    expect(receiver.deliveries.every((d) => d.status === 200)).toBe(true);
    expect(alerts.webhooks.depth()).toBe(0);
  });
});

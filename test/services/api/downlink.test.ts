// Text messages to a driver through the API (routes/downlink.ts), with the real JT/T 808 gateway
// and a terminal on a real TCP connection.
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { buildApp } from '../../../services/api/app.ts';
import { influxSchema, ingestSchema, jt808Schema } from '../../../services/config/schema.ts';
import { InfluxStore } from '../../../services/influx/client.ts';
import { TelemetryReader } from '../../../services/influx/reader.ts';
import { IngestPipeline } from '../../../services/ingest/pipeline.ts';
import { Jt808Gateway } from '../../../services/jt808/gateway.ts';
import { MESSAGE, RESULT } from '../../../services/jt808/session.ts';
import { authenticationFrame, terminalResponseFrame } from '../../../services/jt808/terminal.ts';
import { createLogger } from '../../../services/log.ts';
import { RegistryDb } from '../../../services/registry/db.ts';
import { DeviceStore } from '../../../services/registry/devices.ts';
import { EntityStore } from '../../../services/registry/entity-store.ts';
import { TokenStore, type Role } from '../../../services/registry/tokens.ts';
import { Spool } from '../../../services/spool/spool.ts';
import { alertDeps } from '../../helpers/api.ts';
import { TestTerminal } from '../../helpers/jt808.ts';
import { tempDir } from '../../helpers/service.ts';

const log = createLogger('silent');
let db: RegistryDb;
let spool: Spool;
let gateway: Jt808Gateway;
let app: Awaited<ReturnType<typeof buildApp>>;
let terminal: TestTerminal | null = null;
const tokenOf = {} as Record<Role, string>;

beforeEach(async () => {
  const dir = await tempDir('waste-api-downlink-');
  db = new RegistryDb(path.join(dir, 'registry.db'));
  db.open();
  spool = new Spool({ dir: path.join(dir, 'spool'), quotaBytes: 1 << 26, segmentBytes: 1 << 20, fsync: false });
  await spool.open();
  const devices = new DeviceStore(db);
  await devices.add('TRUCK-1', 'trucks', { phone: '13800138000', authCode: 'code-1' });
  const tokens = new TokenStore(db);
  for (const role of ['admin', 'operator', 'integrator'] as const) tokenOf[role] = tokens.create({ name: role, role }).token;
  gateway = new Jt808Gateway({ config: jt808Schema.parse({ host: '127.0.0.1', port: 0, responseTimeoutMs: 500 }), terminals: devices, log });
  await gateway.start(new IngestPipeline(spool, ingestSchema.parse({}), log));
  app = await buildApp({ db, devices, entities: new EntityStore(db), tokens, rateLimitPerMinute: 10_000, reader: new TelemetryReader(new InfluxStore(influxSchema.parse({ url: 'http://127.0.0.1:1' }))), downlink: gateway, ...alertDeps(db) });
});
afterEach(async () => {
  terminal?.close();
  terminal = null;
  await app.close();
  await gateway.stop();
  await spool.close();
  db.close();
});

const send = (text: unknown, role: Role = 'operator', id = 'TRUCK-1') =>
  app.inject({ method: 'POST', url: `/api/v1/devices/${id}/jt808/text`, headers: { authorization: `Bearer ${tokenOf[role]}` }, payload: { text } });

async function connected(): Promise<TestTerminal> {
  terminal = await TestTerminal.connect(gateway.port()!);
  terminal.send(authenticationFrame({ phone: '13800138000', edition: 2013, serial: 1 }, { code: 'code-1' }));
  expect(await terminal.response(1)).toMatchObject({ result: RESULT.ok });
  return terminal;
}

describe('POST /api/v1/devices/{id}/jt808/text', () => {
  it('shows the text on the connected terminal and answers with the terminal\'s result', async () => {
    const t = await connected();
    const answer = send('请于18:00前返回车队');
    const text = await t.next((m) => m.kind === 'text');
    expect(text).toMatchObject({ text: '请于18:00前返回车队' });
    t.send(terminalResponseFrame({ phone: '13800138000', edition: 2013, serial: 2 }, { serial: text.header.serial, messageId: MESSAGE.text }, 0));
    const response = await answer;
    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({ result: 0 });
  });

  it('answers 409 for a truck whose terminal is not connected, 504 when the terminal does not answer, 400 for a text that cannot be sent', async () => {
    expect((await send('x')).statusCode).toBe(409);
    await connected();
    const silent = await send('无人应答');
    expect(silent.statusCode).toBe(504);
    expect((await send('')).statusCode).toBe(400);
    expect((await send('a\nb')).statusCode).toBe(400);
    // GBK has no emoji: refused rather than sent as '?'.
    const emoji = await send('请立即停车 🚛');
    expect(emoji.statusCode).toBe(400);
    expect(emoji.json().error.message).toMatch(/GBK/);
  });

  it('is for admins and operators, not integrators', async () => {
    expect((await send('x', 'integrator')).statusCode).toBe(403);
  });
});

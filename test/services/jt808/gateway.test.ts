// The JT/T 808 gateway over real TCP, with a real spool, ingest pipeline and registry: sessions,
// reports answered once durable, refusals counted and reported, revocation, downlink. Frames are
// captured from real terminals where the projects cited in fixtures.test.ts published them, else
// built with services/jt808/terminal.ts.
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ingestSchema, jt808Schema } from '../../../services/config/schema.ts';
import type { Reading } from '../../../services/contract/payloads.ts';
import { hashSecret } from '../../../services/broker/secrets.ts';
import { IngestPipeline } from '../../../services/ingest/pipeline.ts';
import { DeviceOfflineError } from '../../../services/contract/downlink.ts';
import { Jt808Gateway } from '../../../services/jt808/gateway.ts';
import { MESSAGE, REGISTRATION_RESULT, RESULT } from '../../../services/jt808/session.ts';
import { authenticationFrame, batchFrame, heartbeatFrame, locationFrame, logoutFrame, registrationFrame, terminalResponseFrame, wasteSimItems, type TerminalHeader } from '../../../services/jt808/terminal.ts';
import { frame, verified } from '../../../services/jt808/frame.ts';
import { writeMessage } from '../../../services/jt808/header.ts';
import { createLogger } from '../../../services/log.ts';
import { RegistryDb } from '../../../services/registry/db.ts';
import { DeviceStore } from '../../../services/registry/devices.ts';
import { Spool } from '../../../services/spool/spool.ts';
import { TestTerminal } from '../../helpers/jt808.ts';
import { tempDir } from '../../helpers/service.ts';

const log = createLogger('silent');
/** The captured frames are from 2015-2026: old enough to be refused under the default 7 days. */
const ANY_AGE_MS = 20 * 365 * 86_400_000;

interface Rig {
  gateway: Jt808Gateway;
  pipeline: IngestPipeline;
  devices: DeviceStore;
  spool: Spool;
  readings: Reading[];
  reports: { device_id: string | null; reason: string; topic: string; message: string; count?: number }[];
  port: number;
  terminals: TestTerminal[];
  connect(): Promise<TestTerminal>;
}

const rigs: Rig[] = [];
afterEach(async () => {
  for (const rig of rigs.splice(0)) {
    for (const t of rig.terminals) t.close();
    await rig.gateway.stop();
    await rig.spool.close();
  }
});

async function rig(config: Record<string, unknown> = {}, ingest: Record<string, unknown> = {}): Promise<Rig> {
  const dir = await tempDir('waste-jt808-');
  const spool = new Spool({ dir: path.join(dir, 'spool'), quotaBytes: 1 << 30, segmentBytes: 1 << 20, fsync: true });
  await spool.open();
  const db = new RegistryDb(path.join(dir, 'registry.db'));
  db.open();
  const devices = new DeviceStore(db);
  const readings: Reading[] = [];
  const reports: Rig['reports'] = [];
  const bus = { publish: async (_topic: string, payload: string | Buffer) => void reports.push(JSON.parse(payload.toString())) };
  const pipeline = new IngestPipeline(spool, ingestSchema.parse({ maxAgeMs: ANY_AGE_MS, ...ingest }), log, { listeners: [(r) => readings.push(...r)], reports: bus });
  const gateway = new Jt808Gateway({ config: jt808Schema.parse({ host: '127.0.0.1', port: 0, ...config }), terminals: devices, log });
  await gateway.start(pipeline);
  const terminals: TestTerminal[] = [];
  const r: Rig = {
    gateway, pipeline, devices, spool, readings, reports, port: gateway.port()!, terminals,
    async connect() {
      const t = await TestTerminal.connect(r.port);
      terminals.push(t);
      return t;
    },
  };
  rigs.push(r);
  return r;
}

/** Registration and authentication of Traccar's test terminal 13511221122 (fixtures.test.ts, lines 320 and 326). */
const REGISTRATION_13511221122 = '7E0100002D013511221122000500000000373031303748422D52303347424400000000000000000000003233363631303402CBD5424136383630387E';
const AUTHENTICATION_13511221122 = '7E0102000E013511221122000661757468656E7469636174696F6E3F7E';

const header = (phone: string, serial: number, edition: 2013 | 2019 = 2013): TerminalHeader => ({ phone, serial, edition });
const now = () => Math.floor(Date.now() / 1000) * 1000;

async function authenticated(r: Rig, phone = '13800138000', deviceId = 'TRUCK-1', model?: string): Promise<TestTerminal> {
  await r.devices.add(deviceId, 'trucks', { phone, authCode: 'code-1', ...(model ? { model } : {}) });
  const t = await r.connect();
  t.send(authenticationFrame(header(phone, 1), { code: 'code-1' }));
  expect(await t.response(1)).toMatchObject({ messageId: MESSAGE.authentication, result: RESULT.ok });
  return t;
}

/** TRUCK-1, a terminal without a code, fitted to a muck truck with this plate. */
async function fittedTerminal(r: Rig, phone: string, plate: string): Promise<void> {
  await r.devices.add('TRUCK-1', 'trucks', { phone });
  r.devices['db'].exec(`INSERT INTO companies (id, name, created_at, updated_at) VALUES ('c1', 'C', 'x', 'x');
    INSERT INTO trucks (id, plate, company_id, fleet, rated_gross_kg, device_id, created_at, updated_at) VALUES ('t1', '${plate}', 'c1', 'muck', 31000, 'TRUCK-1', 'x', 'x')`);
}

describe('JT/T 808 gateway sessions', () => {
  it('registers a provisioned terminal once, with a code that then authenticates it; a second registration is answered "terminal registered"', async () => {
    const r = await rig();
    await r.devices.add('TRUCK-13511221122', 'trucks', { phone: '13511221122' });
    const t = await r.connect();
    t.send(REGISTRATION_13511221122);
    const answer = await t.next((m) => m.kind === 'registration');
    expect(answer).toMatchObject({ serial: 5, result: REGISTRATION_RESULT.ok });
    const code = (answer as { code: string }).code;
    expect(code).toMatch(/^[A-Za-z0-9_-]{16}$/);
    // The model the terminal reported picks its extension layout later.
    expect(r.devices.terminal('13511221122')).toMatchObject({ model: 'HB-R03GBD' });
    expect(r.devices.terminal('13511221122')!.authCodeHash).not.toContain(code);
    t.send(REGISTRATION_13511221122);
    expect(await t.next((m) => m.kind === 'registration')).toMatchObject({ result: REGISTRATION_RESULT.terminalRegistered, code: null });
    t.send(authenticationFrame(header('13511221122', 7), { code }));
    expect(await t.response(7)).toMatchObject({ result: RESULT.ok });
    expect(r.readings).toContainEqual(expect.objectContaining({ kind: 'status', deviceId: 'TRUCK-13511221122', online: true }));
  });

  it('keeps no model a terminal reports with control characters, and still registers it; a model filling its 30-byte field is kept', async () => {
    const r = await rig();
    await r.devices.add('TRUCK-1', 'trucks', { phone: '13800138000' });
    await r.devices.add('TRUCK-2', 'trucks', { phone: '13900139000' });
    const t = await r.connect();
    t.send(registrationFrame(header('13800138000', 1, 2019), { province: 32, city: 5, manufacturer: 'X', model: 'M\u0001\u001b[2J', terminalId: 'T1', plateColour: 2, plate: '苏E1' }));
    expect(await t.next((m) => m.kind === 'registration')).toMatchObject({ result: REGISTRATION_RESULT.ok });
    expect(r.devices.terminal('13800138000')).toMatchObject({ model: null });
    const u = await r.connect();
    u.send(registrationFrame(header('13900139000', 1, 2019), { province: 32, city: 5, manufacturer: 'X', model: 'M'.repeat(30), terminalId: 'T2', plateColour: 2, plate: '苏E2' }));
    expect(await u.next((m) => m.kind === 'registration')).toMatchObject({ result: REGISTRATION_RESULT.ok });
    expect(r.devices.terminal('13900139000')).toMatchObject({ model: 'M'.repeat(30) });
  });

  it('answers an unknown terminal\'s registration "no such terminal", and refuses its authentication', async () => {
    const r = await rig();
    const t = await r.connect();
    t.send(REGISTRATION_13511221122);
    expect(await t.next((m) => m.kind === 'registration')).toMatchObject({ result: REGISTRATION_RESULT.noSuchTerminal });
    t.send(AUTHENTICATION_13511221122);
    expect(await t.response(6)).toMatchObject({ result: RESULT.failed });
    expect(r.gateway.connectedTerminals()).toBe(0);
  });

  it('refuses a registration naming another plate than the truck the device is fitted to', async () => {
    const r = await rig();
    await fittedTerminal(r, '13511221122', '苏E·99999');
    const t = await r.connect();
    t.send(REGISTRATION_13511221122);
    expect(await t.next((m) => m.kind === 'registration')).toMatchObject({ result: REGISTRATION_RESULT.noSuchVehicle });
    expect(r.devices.terminal('13511221122')!.authCodeHash).toBeNull();
  });

  it('authenticates the captured 0x0102 with the code the integrator provisioned, and takes the terminal\'s reports', async () => {
    const r = await rig();
    await r.devices.add('TRUCK-1', 'trucks', { phone: '13511221122', authCode: 'authentication' });
    const t = await r.connect();
    t.send(AUTHENTICATION_13511221122);
    expect(await t.response(6)).toMatchObject({ messageId: MESSAGE.authentication, result: RESULT.ok });
    expect(r.gateway.connectedTerminals()).toBe(1);
  });

  it('costs one scrypt run for a fleet provisioned with one code, and none for a terminal logging in again', async () => {
    const r = await rig();
    const hash = await hashSecret('fleet-code');
    for (let i = 0; i < 10; i++) r.devices.insertHashed(`T-${i}`, 'trucks', await hashSecret('mqtt'), { phone: `1390000000${i}`, model: null, authHash: hash });
    for (let round = 0; round < 2; round++) {
      for (let i = 0; i < 10; i++) {
        const t = await r.connect();
        t.send(authenticationFrame(header(`1390000000${i}`, 1), { code: 'fleet-code' }));
        expect(await t.response(1)).toMatchObject({ result: RESULT.ok });
        t.close();
      }
    }
    expect(r.gateway.verification.scryptRuns).toBe(1);
  });

  it('closes a connection after three wrong codes, each answered "failed"', async () => {
    const r = await rig();
    await r.devices.add('TRUCK-1', 'trucks', { phone: '13800138000', authCode: 'right' });
    const t = await r.connect();
    for (let serial = 1; serial <= 3; serial++) {
      t.send(authenticationFrame(header('13800138000', serial), { code: 'wrong' }));
      expect(await t.response(serial)).toMatchObject({ result: RESULT.failed });
    }
    await t.untilClosed();
    expect(r.gateway.stats.failedAuthentications).toBe(3);
  });

  it('refuses a disabled device\'s terminal, and disconnects it at once when it is disabled while connected, recording it offline', async () => {
    const r = await rig();
    const t = await authenticated(r);
    r.devices.setEnabled('TRUCK-1', false);
    await t.untilClosed(2000);
    await expect.poll(() => r.readings.filter((x) => x.kind === 'status').map((x) => (x as { online: boolean }).online)).toEqual([true, false]);
    const again = await r.connect();
    again.send(authenticationFrame(header('13800138000', 1), { code: 'code-1' }));
    expect(await again.response(1)).toMatchObject({ result: RESULT.failed });
  });

  it('keeps one connection per terminal: a new login closes the older connection without recording the truck offline', async () => {
    const r = await rig();
    const first = await authenticated(r);
    const second = await r.connect();
    second.send(authenticationFrame(header('13800138000', 1), { code: 'code-1' }));
    expect(await second.response(1)).toMatchObject({ result: RESULT.ok });
    await first.untilClosed();
    second.send(heartbeatFrame(header('13800138000', 2)));
    expect(await second.response(2)).toMatchObject({ result: RESULT.ok });
    expect(r.readings.filter((x) => x.kind === 'status').map((x) => (x as { online: boolean }).online)).toEqual([true]);
  });
});

describe('JT/T 808 location reports', () => {
  it('stores a report as a truck fix and answers 0x8001 only once the fix is in the spool', async () => {
    const r = await rig();
    const t = await authenticated(r, '13800138000', 'TRUCK-1', 'WASTE-SIM');
    const ts = now() - 60_000;
    const backlog = r.spool.backlogBytes();
    t.send(locationFrame(header('13800138000', 2), { ts, lat: 31.298912, lon: 120.585321, speedKmh: 36.5, heading: 271, altitude: 12, ignition: true, loadState: 3, alarm: 1, items: [[0x01, Buffer.from([0, 0, 0x30, 0x39])], [0x31, Buffer.from([9])], ...wasteSimItems({ coverClosed: false, tipperUp: true, loadKg: 18250.5 })] }));
    expect(await t.response(2)).toMatchObject({ messageId: MESSAGE.location, result: RESULT.ok });
    expect(r.spool.backlogBytes()).toBeGreaterThan(backlog);
    expect(r.readings.find((x) => x.kind === 'truck')).toEqual({
      kind: 'truck', deviceId: 'TRUCK-1', ts, lat: 31.298912, lon: 120.585321, speed_kmh: 36.5, heading: 271, ignition: true,
      loaded: true, alarm_flags: 1, mileage_km: 1234.5, satellites: 9, cover_closed: false, tipper_up: true, load_kg: 18250.5,
    });
  });

  it('does not answer a report the spool cannot take, so the terminal keeps it and sends it again', async () => {
    const r = await rig();
    const t = await authenticated(r);
    await r.spool.close();
    t.send(locationFrame(header('13800138000', 2), { ts: now(), lat: 31.3, lon: 120.6, speedKmh: 10, heading: 0 }));
    await expect(t.response(2, 1000)).rejects.toThrow(/no matching platform message/);
  });

  it('stores a blind-area batch (captured 0x0704 of 8 positions, Traccar test line 299) and answers it once', async () => {
    const r = await rig();
    await r.devices.add('TRUCK-1', 'trucks', { phone: '13567777777', authCode: 'c' });
    const t = await r.connect();
    t.send(authenticationFrame(header('13567777777', 2036), { code: 'c' }));
    expect(await t.response(2036)).toMatchObject({ result: RESULT.ok });
    t.send('7E0704014301356777777707F5000801002600000000000000030159741206CBFD5001720000000116052709062401040000001D03020000002600000000000000030159746606CBFD50016B0000000116052709065301040000001D0302000000260000000000000003015975E406CBFE58013F0000000116052709072701040000001D0302000000260000000000000003015976DE06CBFF10012E0000000116052709075601040000001D0302000000260000000000000003015976BC06CBFED0012D0000000116052709083001040000001D0302000000260000000000000003015976FE06CBFEC001080000000116052709090001040000001D0302000000260000000000000003015976FE06CBFE7800FC0000000116052709093301040000001D0302000000260000000000000003015977A606CBFF3001080000000116052709100201040000001D030200001F7E');
    expect(await t.response(2037)).toMatchObject({ messageId: MESSAGE.batchLocation, result: RESULT.ok });
    const fixes = r.readings.filter((x) => x.kind === 'truck');
    expect(fixes).toHaveLength(8);
    expect(fixes[0]).toMatchObject({ lat: 22.639634, lon: 114.031952, ts: Date.parse('2016-05-27T01:06:24Z'), mileage_km: 2.9, tachograph_kmh: 0, ignition: true, alarm_flags: 0 });
    expect(fixes[0]).not.toHaveProperty('loaded');
  });

  it('puts a sub-packaged batch back together and answers each package once the whole is durable', async () => {
    const r = await rig();
    const t = await authenticated(r);
    const fixes = Array.from({ length: 3 }, (_, i) => ({ ts: now() - 60_000 + i * 1000, lat: 31.3 + i / 1000, lon: 120.6, speedKmh: 20, heading: 90 }));
    const whole = verified(batchFrame(header('13800138000', 0), 1, fixes).subarray(1, -1));
    const body = whole.subarray(12);
    const parts = [body.subarray(0, 40), body.subarray(40)];
    parts.forEach((part, i) => {
      const message = writeMessage({ messageId: MESSAGE.batchLocation, edition: 2013, phone: '13800138000', serial: 10 + i }, part);
      // Attribute bit 13 and the package count and number (JT/T 808-2013 §4.4.3).
      const withPackages = Buffer.concat([message.subarray(0, 12), Buffer.from([0, 2, 0, i + 1]), part]);
      withPackages.writeUInt16BE(part.length | 0x2000, 2);
      t.send(frame(withPackages));
    });
    expect(await t.response(10)).toMatchObject({ result: RESULT.ok });
    expect(await t.response(11)).toMatchObject({ result: RESULT.ok });
    expect(r.readings.filter((x) => x.kind === 'truck').map((x) => (x as { lat: number }).lat)).toEqual([31.3, 31.301, 31.302]);
  });

  it('refuses reports before authentication, without GNSS fix, or out of range: reported with reasons, none stored', async () => {
    const r = await rig();
    await r.devices.add('TRUCK-1', 'trucks', { phone: '13800138000', authCode: 'code-1' });
    const t = await r.connect();
    t.send(locationFrame(header('13800138000', 1), { ts: now(), lat: 31.3, lon: 120.6, speedKmh: 10, heading: 0 }));
    expect(await t.response(1)).toMatchObject({ result: RESULT.failed });
    t.send(authenticationFrame(header('13800138000', 2), { code: 'code-1' }));
    await t.response(2);
    t.send(locationFrame(header('13800138000', 3), { ts: now(), lat: 0, lon: 0, speedKmh: 0, heading: 0, positioned: false }));
    expect(await t.response(3)).toMatchObject({ result: RESULT.ok });
    t.send(locationFrame(header('13800138000', 4), { ts: now(), lat: 31.3, lon: 120.6, speedKmh: 400, heading: 0 }));
    expect(await t.response(4)).toMatchObject({ result: RESULT.malformed });
    expect(r.readings.filter((x) => x.kind === 'truck')).toEqual([]);
    expect(r.reports.map((x) => x.reason)).toEqual(['not_authenticated', 'no_position', 'out_of_range']);
    expect(r.reports[0]).toMatchObject({ device_id: null, topic: 'jt808/13800138000/0x0200' });
    expect(r.reports[2]).toMatchObject({ device_id: 'TRUCK-1', message: expect.stringContaining('speed_kmh') });
  });

  it('drops frames with a bad check code, a wrong length or an unknown id with their reasons, and the connection goes on', async () => {
    const r = await rig();
    const t = await authenticated(r);
    const good = heartbeatFrame(header('13800138000', 5));
    const badCheck = Buffer.from(good);
    badCheck[badCheck.length - 2] = badCheck[badCheck.length - 2]! ^ 0x55;
    t.send(badCheck);
    const unknown = frame(writeMessage({ messageId: 0x0f0f, edition: 2013, phone: '13800138000', serial: 6 }, Buffer.alloc(3)));
    t.send(unknown);
    const short = frame(writeMessage({ messageId: MESSAGE.location, edition: 2013, phone: '13800138000', serial: 7 }, Buffer.alloc(10)));
    t.send(short);
    t.send(Buffer.concat([Buffer.from([0x7e]), Buffer.alloc(5000, 1), Buffer.from([0x7e])]));
    t.send(good);
    expect(await t.response(6)).toMatchObject({ result: RESULT.unsupported });
    expect(await t.response(7)).toMatchObject({ result: RESULT.malformed });
    expect(await t.response(5)).toMatchObject({ result: RESULT.ok });
    expect(r.reports.map((x) => x.reason).sort()).toEqual(['bad_check_code', 'frame_too_large', 'truncated', 'unknown_message']);
    expect(r.pipeline.rejections.totals()).toEqual({ bad_check_code: 1, unknown_message: 1, truncated: 1, frame_too_large: 1 });
    expect(r.readings.filter((x) => x.kind === 'truck')).toEqual([]);
  });

  it('refuses a frame for another terminal on an authenticated connection', async () => {
    const r = await rig();
    await r.devices.add('TRUCK-2', 'trucks', { phone: '13900139000', authCode: 'other' });
    const t = await authenticated(r);
    t.send(locationFrame(header('13900139000', 2), { ts: now(), lat: 31.3, lon: 120.6, speedKmh: 10, heading: 0 }));
    t.send(heartbeatFrame(header('13800138000', 3)));
    await t.response(3);
    expect(r.reports).toMatchObject([{ reason: 'not_authenticated', device_id: 'TRUCK-1' }]);
    expect(r.readings.filter((x) => x.kind === 'truck')).toEqual([]);
  });
});

describe('JT/T 808 under faults and hostile input', () => {
  it('stores nothing of a batch whose terminal died in the middle of sending it, and the whole batch once it is sent again', async () => {
    const r = await rig();
    const t = await authenticated(r);
    const fixes = Array.from({ length: 10 }, (_, i) => ({ ts: now() - 60_000 + i * 1000, lat: 31.3 + i / 1000, lon: 120.6, speedKmh: 20, heading: 90 }));
    const batch = batchFrame(header('13800138000', 2), 1, fixes);
    t.send(batch.subarray(0, Math.floor(batch.length / 2)));
    await new Promise((resolve) => setTimeout(resolve, 100));
    t.close();
    await expect.poll(() => r.gateway.connectedTerminals()).toBe(0);
    expect(r.readings.filter((x) => x.kind === 'truck')).toEqual([]);
    const again = await r.connect();
    again.send(authenticationFrame(header('13800138000', 3), { code: 'code-1' }));
    await again.response(3);
    again.send(batchFrame(header('13800138000', 4), 1, fixes));
    expect(await again.response(4)).toMatchObject({ result: RESULT.ok });
    expect(r.readings.filter((x) => x.kind === 'truck')).toHaveLength(10);
  });

  it('holds no sub-package for a terminal that has not authenticated, and at most 8 messages under way for one that has', async () => {
    const r = await rig();
    const packaged = (serial: number, count: number, index: number) => {
      const part = Buffer.alloc(1, 1);
      const message = writeMessage({ messageId: MESSAGE.batchLocation, edition: 2013, phone: '13800138000', serial }, part);
      const withPackages = Buffer.concat([message.subarray(0, 12), Buffer.from([count >> 8, count & 0xff, 0, index]), part]);
      withPackages.writeUInt16BE(1 | 0x2000, 2);
      return frame(withPackages);
    };
    await r.devices.add('TRUCK-1', 'trucks', { phone: '13800138000', authCode: 'code-1' });
    const stranger = await r.connect();
    for (let i = 0; i < 100; i++) stranger.send(packaged(1000 + i * 10, 65535, 1));
    await expect.poll(() => r.pipeline.rejections.totals().not_authenticated ?? 0).toBe(100);
    stranger.close();
    const t = await r.connect();
    t.send(authenticationFrame(header('13800138000', 1), { code: 'code-1' }));
    await t.response(1);
    for (let i = 0; i < 20; i++) t.send(packaged(2000 + i * 10, 65535, 1));
    await expect.poll(() => r.pipeline.rejections.totals().frame_too_large ?? 0).toBe(12);
  });

  it('reports at most 20 refusals one by one per connection in 10 s, the rest summed up per reason, every one counted', async () => {
    const r = await rig();
    const t = await r.connect();
    t.send(Buffer.from('7e' + '00007e'.repeat(1000), 'hex'));
    await expect.poll(() => r.pipeline.rejections.totals().truncated ?? 0).toBe(1000);
    expect(r.reports).toHaveLength(20);
    t.close();
    await expect.poll(() => r.reports.length).toBe(21);
    expect(r.pipeline.rejections.totals()).toEqual({ truncated: 1000 });
    expect(r.reports[20]).toMatchObject({ reason: 'truncated', count: 980, message: expect.stringMatching(/^980 more refused as truncated/) });
  });

  it('stops reading a connection whose peer does not read its answers', async () => {
    const r = await rig();
    const t = await r.connect();
    t.socket.pause();
    const beat = heartbeatFrame(header('13800138000', 1));
    const flood = Buffer.concat(Array.from({ length: 20_000 }, () => beat));
    for (let i = 0; i < 20; i++) t.send(flood);
    // 400,000 heartbeats sent, each worth a 0x8001: the gateway reads until the kernel's buffers
    // and its own 64 KiB of answers are full, then reads no more.
    let read = -1;
    await expect.poll(async () => {
      const before = r.gateway.stats.frames;
      await new Promise((resolve) => setTimeout(resolve, 300));
      read = before;
      return r.gateway.stats.frames === before && before > 0;
    }, { timeout: 10_000 }).toBe(true);
    expect(read).toBeLessThan(400_000);
  });

  it('refuses a registration that names no plate (colour 0, a VIN) for a truck whose plate the registry knows, and backs a number off after refusals', async () => {
    const r = await rig();
    await fittedTerminal(r, '13800138000', '苏E·W2352');
    const t = await r.connect();
    const registration = (serial: number, plateColour: number, plate: string) =>
      registrationFrame(header('13800138000', serial), { province: 32, city: 5, manufacturer: 'WSIM', model: 'WASTE-SIM', terminalId: 'T1', plateColour, plate });
    t.send(registration(1, 0, 'LGWEF4A59MF000001'));
    expect(await t.next((m) => m.kind === 'registration')).toMatchObject({ result: REGISTRATION_RESULT.noSuchVehicle });
    for (let serial = 2; serial <= 5; serial++) {
      t.send(registration(serial, 2, '苏E·00000'));
      expect(await t.next((m) => m.kind === 'registration')).toMatchObject({ result: REGISTRATION_RESULT.noSuchVehicle });
    }
    // Five refusals: the number backs off from this address, even with the right plate.
    t.send(registration(6, 2, '苏E·W2352'));
    await expect(t.next((m) => m.kind === 'registration', 500)).rejects.toThrow(/no matching platform message/);
    expect(r.devices.terminal('13800138000')!.authCodeHash).toBeNull();
  });

  it('takes nothing after a logout, and answers a text for a terminal that left as offline', async () => {
    const r = await rig();
    const t = await authenticated(r);
    const text = r.gateway.sendText('TRUCK-1', '请回场');
    await t.next((m) => m.kind === 'text');
    t.send(Buffer.concat([logoutFrame(header('13800138000', 2)), locationFrame(header('13800138000', 3), { ts: now(), lat: 31.3, lon: 120.6, speedKmh: 10, heading: 0 })]));
    expect(await t.response(2)).toMatchObject({ messageId: MESSAGE.logout, result: RESULT.ok });
    await t.untilClosed();
    await expect(text).rejects.toBeInstanceOf(DeviceOfflineError);
    expect(r.readings.filter((x) => x.kind === 'truck')).toEqual([]);
  });

  it('survives 100,000 random and mutated frames from a terminal that never authenticated: each counted, none stored', async () => {
    const r = await rig();
    await r.devices.add('TRUCK-1', 'trucks', { phone: '13800138000', authCode: 'code-1' });
    // Seeded, so a failure can be replayed.
    let seed = 808;
    const random = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x80000000);
    const byte = () => Math.floor(random() * 256);
    const fix = { ts: now(), lat: 31.3, lon: 120.6, speedKmh: 10, heading: 0 };
    const valid = [
      locationFrame(header('13800138000', 1), fix),
      batchFrame(header('13800138000', 2), 1, [fix, fix]),
      heartbeatFrame(header('13800138000', 3)),
      locationFrame(header('13800138000', 4, 2019), fix),
      Buffer.from(REGISTRATION_13511221122, 'hex'),
    ];
    const mutated = (): Buffer => {
      const base = Buffer.from(valid[Math.floor(random() * valid.length)]!.subarray(1, -1));
      const kind = random();
      if (kind < 0.3) base[Math.floor(random() * base.length)] = byte();
      else if (kind < 0.5) return base.subarray(0, Math.floor(random() * base.length));
      else if (kind < 0.7) return Buffer.concat([base, Buffer.from(Array.from({ length: 1 + Math.floor(random() * 8) }, byte))]);
      else if (kind < 0.85) return Buffer.from(Array.from({ length: 1 + Math.floor(random() * 60) }, byte));
      else base[Math.floor(random() * base.length)] = 0x7d;
      return base;
    };
    let sent = 0;
    let t = await r.connect();
    const counted = () => r.gateway.stats.frames;
    while (sent < 100_000) {
      const chunk: Buffer[] = [];
      for (let i = 0; i < 1000; i++) {
        // A frame never holds its flag byte; a mutation that made one is a frame boundary, so it is sent escaped away.
        const content = mutated().filter((b) => b !== 0x7e);
        if (content.length === 0) continue;
        chunk.push(Buffer.from([0x7e]), Buffer.from(content), Buffer.from([0x7e]));
        sent++;
      }
      const before = counted();
      const expected = before + chunk.length / 3;
      if (t.closed) t = await r.connect();
      t.send(Buffer.concat(chunk));
      // The gateway closes a connection after a logout (0x0003) or three failed authentications it was sent.
      await expect.poll(() => counted() === expected || t.closed, { timeout: 10_000 }).toBe(true);
      if (counted() !== expected) sent -= expected - counted();
    }
    expect(counted()).toBe(sent);
    expect(r.gateway.stats.refusedFrames).toBeGreaterThan(90_000);
    expect(r.readings.filter((x) => x.kind === 'truck')).toEqual([]);
    expect(r.spool.backlogBytes()).toBe(0);
  }, 120_000);
});

describe('JT/T 808 downlink', () => {
  it('sends a text message in GBK and resolves with the terminal\'s answer', async () => {
    const r = await rig();
    const t = await authenticated(r);
    const sent = r.gateway.sendText('TRUCK-1', '车辆未密闭，请立即整改');
    const text = await t.next((m) => m.kind === 'text');
    expect(text).toMatchObject({ flag: 0x0c, text: '车辆未密闭，请立即整改' });
    t.send(terminalResponseFrame(header('13800138000', 9), { serial: text.header.serial, messageId: MESSAGE.text }, 0));
    expect(await sent).toBe(0);
    await expect(r.gateway.sendText('TRUCK-2', 'x')).rejects.toBeInstanceOf(DeviceOfflineError);
  });
});

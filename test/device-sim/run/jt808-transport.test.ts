// The simulator's JT/T 808 terminals (Jt808Transport) against a real TCP server: a small fake
// platform, built on the codec, that answers as the standard says (0x8100, 0x8001) and can hold
// answers back or refuse. It tests the simulator's side only; the gateway itself is tested with
// the simulator in test/device-sim/jt808-gateway.test.ts.
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { Outgoing } from '../../../device-sim/engine/noise.ts';
import { Jt808Transport, terminalFix, terminalsOf, type Jt808TransportOptions, type TerminalIdentity } from '../../../device-sim/run/jt808-transport.ts';
import { ByClassTransport, type Transport, type TransportStats } from '../../../device-sim/run/transport.ts';
import { FrameSplitter, frame, verified } from '../../../services/jt808/frame.ts';
import { readHeader, writeMessage, type Header } from '../../../services/jt808/header.ts';
import { decodeBatch, decodeLocation, type LocationReport } from '../../../services/jt808/location.ts';
import { MESSAGE, REGISTRATION_RESULT, RESULT, decodeAuthentication, decodeRegistration, decodeTerminalResponse, platformResponse, registrationResponse, type Registration } from '../../../services/jt808/session.ts';
import { MAX_BODY_BYTES, gbkEncode } from '../../../services/jt808/terminal.ts';

const CITY_CODE = 'city-code-0123456789';

interface Received {
  header: Header;
  /** 0x0200: one report; 0x0704: its type and reports. */
  reports: LocationReport[];
  batchType?: number;
  bodyLength: number;
}

/** A platform that answers as JT/T 808 says, with switches to hold answers back or refuse. */
class FakePlatform {
  readonly server = net.createServer((socket) => this.accept(socket));
  readonly registrations: (Registration & { phone: string; edition: number })[] = [];
  readonly authentications: { phone: string; code: string; imei?: string }[] = [];
  readonly locations: Received[] = [];
  readonly heartbeats: string[] = [];
  readonly logouts: string[] = [];
  readonly terminalResponses: { serial: number; messageId: number; result: number }[] = [];
  connections = 0;
  /** Phones already registered (answered 3 with no code); the others get a code. */
  registered = new Set<string>();
  registrationResult: number | null = null;
  issuedCode = 'issued-code';
  /** The answer to a location report: a result, null to say nothing, or 'hold' to answer 0 on release(). */
  answer: (header: Header, count: number) => number | null | 'hold' = () => RESULT.ok;
  private held: (() => void)[] = [];
  private readonly sockets = new Map<string, net.Socket>();
  private serial = 0;

  async listen(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return `tcp://127.0.0.1:${(this.server.address() as net.AddressInfo).port}`;
  }

  async close(): Promise<void> {
    for (const socket of this.sockets.values()) socket.destroy();
    await new Promise((resolve) => this.server.close(resolve));
  }

  /** Sends a terminal a 0x8300 text (2013 layout: flag, then GBK text). */
  text(phone: string, text: string): number {
    const serial = ++this.serial;
    this.sockets.get(phone)!.write(frame(writeMessage({ messageId: MESSAGE.text, edition: 2013, phone, serial }, Buffer.concat([Buffer.from([0x08]), gbkEncode(text)]))));
    return serial;
  }

  /** Answers the reports held so far. */
  release(): void {
    for (const answer of this.held.splice(0)) answer();
  }

  /** Cuts every connection (the platform restarted). */
  cut(): void {
    for (const socket of this.sockets.values()) socket.destroy();
  }

  private accept(socket: net.Socket): void {
    this.connections++;
    const splitter = new FrameSplitter(4096);
    socket.on('error', () => undefined);
    socket.on('data', (chunk) => {
      for (const content of splitter.push(chunk).frames) this.handle(socket, content);
    });
  }

  private reply(socket: net.Socket, header: Header, messageId: number, body: Buffer): void {
    socket.write(frame(writeMessage({ messageId, edition: header.edition, phone: header.phone, serial: ++this.serial }, body)));
  }

  private handle(socket: net.Socket, content: Buffer): void {
    const { header, body } = readHeader(verified(content));
    this.sockets.set(header.phone, socket);
    const ok = (result: number = RESULT.ok) => this.reply(socket, header, MESSAGE.platformResponse, platformResponse(header.serial, header.messageId, result));
    switch (header.messageId) {
      case MESSAGE.registration: {
        this.registrations.push({ ...decodeRegistration(body, header.edition), phone: header.phone, edition: header.edition });
        const result = this.registrationResult ?? (this.registered.has(header.phone) ? REGISTRATION_RESULT.terminalRegistered : REGISTRATION_RESULT.ok);
        if (result === REGISTRATION_RESULT.ok) this.registered.add(header.phone);
        this.reply(socket, header, MESSAGE.registrationResponse, registrationResponse(header.serial, result, this.issuedCode));
        return;
      }
      case MESSAGE.authentication: {
        const auth = decodeAuthentication(body, header.edition);
        this.authentications.push({ phone: header.phone, ...auth });
        return ok(auth.code === CITY_CODE || auth.code === this.issuedCode ? RESULT.ok : RESULT.failed);
      }
      case MESSAGE.location:
      case MESSAGE.batchLocation: {
        const batch = header.messageId === MESSAGE.batchLocation ? decodeBatch(body) : null;
        const reports = batch ? batch.reports : [decodeLocation(body)];
        this.locations.push({ header, reports, bodyLength: body.length, ...(batch ? { batchType: batch.type } : {}) });
        const result = this.answer(header, this.locations.length);
        if (result === 'hold') this.held.push(() => ok());
        else if (result !== null) ok(result);
        return;
      }
      case MESSAGE.heartbeat:
        this.heartbeats.push(header.phone);
        return ok();
      case MESSAGE.logout:
        this.logouts.push(header.phone);
        ok();
        socket.end();
        return;
      case MESSAGE.terminalResponse:
        this.terminalResponses.push(decodeTerminalResponse(body));
        return;
    }
  }
}

const T1: TerminalIdentity = { phone: '14700000001', edition: 2013, model: 'WASTE-SIM', plate: '苏E·A0001' };
const T2: TerminalIdentity = { phone: '14700000002', edition: 2019, model: 'WASTE-SIM', plate: '苏E·B0002' };
const terminals = new Map([
  ['GPS-truck-0001', T1],
  ['GPS-truck-0002', T2],
]);

const T0 = Date.parse('2026-11-20T12:00:00.000Z');
const muckFix = (i: number) => ({ ts: T0 + i * 1000 + 250, lat: 31.3 + i / 1e5, lon: 120.6 + i / 1e5, speed_kmh: 36.4, heading: 90, ignition: true, tipper_up: false, cover_closed: true, load_kg: 18_000 });
const fix = (deviceId: string, i: number): Outgoing => ({ kind: 'publish', at: T0 + i * 1000, deviceId, deviceClass: 'trucks', payload: muckFix(i) });

let platform: FakePlatform;
let transport: Jt808Transport | null = null;

async function start(options: Partial<Jt808TransportOptions> = {}): Promise<Jt808Transport> {
  platform = new FakePlatform();
  const url = await platform.listen();
  transport = new Jt808Transport({ url, terminals, authCode: CITY_CODE, maxInFlight: 100, maxConnecting: 10, reconnectDelayMs: [50, 100], ...options });
  return transport;
}

async function until(condition: () => boolean, what: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/**
 * Waits for `n` fixes answered, through progress() as the run loop does, but with a deadline: once
 * the transport is closing, progress() returns at once, and a bare loop on it would spin forever.
 */
async function acknowledged(t: Jt808Transport, n: number, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (t.stats.acknowledged < n) {
    if (Date.now() > deadline) throw new Error(`${t.stats.acknowledged} of ${n} fixes acknowledged; last error: ${t.stats.lastError}`);
    await Promise.race([t.progress(), new Promise((r) => setTimeout(r, 50))]);
  }
}

afterEach(async () => {
  await transport?.close(500);
  transport = null;
  await platform?.close();
});

describe('Jt808Transport', () => {
  it('registers, takes the city code on "already registered", authenticates and sends a 0x0200 per fix, counted once answered', async () => {
    const t = await start();
    platform.registered.add(T1.phone);
    platform.registered.add(T2.phone);
    for (let i = 0; i < 3; i++) t.send(fix('GPS-truck-0001', i));
    t.send(fix('GPS-truck-0002', 0));
    expect(t.stats.acknowledged).toBe(0);
    await acknowledged(t, 4);
    expect(t.stats).toMatchObject({ connected: 2, connects: 2, queued: 0, inFlight: 0, failed: 0, connectFailures: 0 });
    expect(t.oldestPendingAt()).toBeNull();
    // Registration in each terminal's edition, with its GBK plate and the simulator's model.
    expect(platform.registrations.map((r) => [r.phone, r.edition, r.plate, r.model, r.plateColour, r.province, r.city])).toEqual(
      expect.arrayContaining([
        [T1.phone, 2013, '苏E·A0001', 'WASTE-SIM', 2, 32, 500],
        [T2.phone, 2019, '苏E·B0002', 'WASTE-SIM', 2, 32, 500],
      ]),
    );
    expect(platform.authentications).toEqual(expect.arrayContaining([{ phone: T1.phone, code: CITY_CODE }, { phone: T2.phone, code: CITY_CODE, imei: '860014700000002' }]));
    const first = platform.locations.filter((l) => l.header.phone === T1.phone);
    expect(first.map((l) => l.header.messageId)).toEqual([MESSAGE.location, MESSAGE.location, MESSAGE.location]);
    // Serials count up from 1 across the terminal's messages: registration, authentication, reports.
    expect(first.map((l) => l.header.serial)).toEqual([3, 4, 5]);
    const report = first[1]!.reports[0]!;
    expect(report).toMatchObject({ ts: T0 + 1000, lat: 31.30001, lon: 120.60001, speedKmh: 36.4, heading: 90, ignition: true, positioned: true, loadState: 3 });
    expect(report.items.get(0x55)!.readBigUInt64BE(0)).toBe(180_000n);
    expect([...report.items.get(0xec)!]).toEqual([0b01]);
    expect(platform.locations.find((l) => l.header.phone === T2.phone)!.header.edition).toBe(2019);
    await t.close(1000);
    expect(platform.logouts.sort()).toEqual([T1.phone, T2.phone]);
  });

  it('authenticates with the code a registration answer issues', async () => {
    const t = await start();
    t.send(fix('GPS-truck-0001', 0));
    await acknowledged(t, 1);
    expect(platform.authentications).toEqual([{ phone: T1.phone, code: 'issued-code' }]);
  });

  it('after an outage, back-fills what it kept as 0x0704 type 1 on a new connection', async () => {
    const t = await start();
    t.send(fix('GPS-truck-0001', 0));
    await acknowledged(t, 1);
    t.send({ kind: 'reconnect', at: T0 + 500, deviceId: 'GPS-truck-0001', deviceClass: 'trucks', downForMs: 300 });
    for (let i = 1; i <= 5; i++) t.send(fix('GPS-truck-0001', i));
    // Off the network, its fixes hold nobody back.
    expect(t.oldestPendingAt()).toBeNull();
    expect(t.stats).toMatchObject({ connected: 0, queued: 5 });
    await acknowledged(t, 6);
    expect(platform.connections).toBe(2);
    const backfill = platform.locations.at(-1)!;
    expect(backfill.header.messageId).toBe(MESSAGE.batchLocation);
    expect(backfill.batchType).toBe(1);
    expect(backfill.reports.map((r) => r.ts)).toEqual([1, 2, 3, 4, 5].map((i) => T0 + i * 1000));
    // The terminal keeps the code it was issued: the second connection authenticates at once.
    expect(platform.registrations).toHaveLength(1);
    expect(platform.authentications.map((a) => a.code)).toEqual(['issued-code', 'issued-code']);
  });

  it('sends a dead zone\'s fixes as blind-area batches of at most 1,023 body bytes, counting the message once', async () => {
    const t = await start();
    t.send({ kind: 'publish', at: T0 + 60_000, deviceId: 'GPS-truck-0001', deviceClass: 'trucks', payload: Array.from({ length: 30 }, (_, i) => muckFix(i)) });
    await acknowledged(t, 1);
    expect(t.stats).toMatchObject({ acknowledged: 1, queued: 0, inFlight: 0 });
    const batches = platform.locations.filter((l) => l.header.messageId === MESSAGE.batchLocation);
    expect(batches.map((b) => b.reports.length)).toEqual([23, 7]);
    expect(batches.every((b) => b.batchType === 1 && b.bodyLength <= MAX_BODY_BYTES)).toBe(true);
    expect(batches.flatMap((b) => b.reports.map((r) => r.ts))).toEqual(Array.from({ length: 30 }, (_, i) => T0 + i * 1000));
  });

  it('retransmits an unanswered report after the response timeout, with its serial, and counts it once answered', async () => {
    const t = await start({ responseTimeoutMs: 100, retransmissions: 2 });
    let held = 0;
    platform.answer = () => (held++ < 2 ? null : RESULT.ok);
    t.send(fix('GPS-truck-0001', 0));
    await until(() => platform.locations.length >= 1, 'the report');
    expect(t.stats.acknowledged).toBe(0);
    expect(t.stats.inFlight).toBe(1);
    await acknowledged(t, 1);
    // Sent, then retransmitted after 100 ms and after 200 ms more: the third is answered.
    expect(platform.locations.map((l) => [l.header.messageId, l.header.serial])).toEqual([
      [MESSAGE.location, 3],
      [MESSAGE.location, 3],
      [MESSAGE.location, 3],
    ]);
    expect(platform.connections).toBe(1);
  });

  it('keeps what stays unanswered after the last retransmission and sends it again as blind-area data after reconnecting', async () => {
    const t = await start({ responseTimeoutMs: 50, retransmissions: 1 });
    // The platform takes nothing on the first connection.
    platform.answer = () => (platform.connections === 1 ? null : RESULT.ok);
    t.send(fix('GPS-truck-0001', 0));
    t.send(fix('GPS-truck-0001', 1));
    await acknowledged(t, 2);
    expect(platform.connections).toBe(2);
    const last = platform.locations.at(-1)!;
    expect(last.header.messageId).toBe(MESSAGE.batchLocation);
    expect(last.batchType).toBe(1);
    expect(last.reports.map((r) => r.ts)).toEqual([T0, T0 + 1000]);
    expect(t.stats.failed).toBe(2);
    expect(t.stats.lastError).toMatch(/no answer from the gateway after 1 retransmissions/);
  });

  it('keeps at most its window of reports unanswered, and sends on as answers come', async () => {
    const t = await start({ windowPerTerminal: 3 });
    platform.answer = () => 'hold';
    for (let i = 0; i < 7; i++) t.send(fix('GPS-truck-0001', i));
    await until(() => platform.locations.length >= 3, 'three reports');
    await new Promise((r) => setTimeout(r, 100));
    expect(platform.locations).toHaveLength(3);
    expect(t.stats).toMatchObject({ inFlight: 3, queued: 4 });
    platform.answer = () => RESULT.ok;
    platform.release();
    await acknowledged(t, 7);
    expect(platform.locations.map((l) => l.reports[0]!.ts)).toEqual(Array.from({ length: 7 }, (_, i) => T0 + i * 1000));
  });

  it('sends again, after a pause, a report the platform answers with a failure', async () => {
    const t = await start();
    platform.answer = (_header, n) => (n === 1 ? RESULT.failed : RESULT.ok);
    t.send(fix('GPS-truck-0001', 0));
    await acknowledged(t, 1);
    expect(platform.locations).toHaveLength(2);
    expect(t.stats.failed).toBe(1);
    expect(t.stats.lastError).toMatch(/answered 0x0200 with result 1/);
  });

  it('beats when it has nothing else to send, and answers a text message with 0x0001', async () => {
    const texts: string[] = [];
    const t = await start({ heartbeatMs: 80, onText: (deviceId, text) => texts.push(`${deviceId}: ${text}`) });
    t.send(fix('GPS-truck-0001', 0));
    await acknowledged(t, 1);
    await until(() => platform.heartbeats.length >= 2, 'two heartbeats');
    const serial = platform.text(T1.phone, '请盖好篷布');
    await until(() => platform.terminalResponses.length > 0, 'the answer to the text');
    expect(platform.terminalResponses[0]).toEqual({ serial, messageId: MESSAGE.text, result: 0 });
    expect(texts).toEqual(['GPS-truck-0001: 请盖好篷布']);
    expect(t.texts).toBe(1);
  });

  it('says why when the platform refuses the registration, and keeps trying', async () => {
    const t = await start();
    platform.registrationResult = REGISTRATION_RESULT.noSuchTerminal;
    t.send(fix('GPS-truck-0001', 0));
    await until(() => platform.registrations.length >= 2, 'a second registration');
    expect(t.stats.lastError).toMatch(/GPS-truck-0001: registration of terminal 14700000001 refused with result 4 \(no such terminal/);
    expect(t.stats.connectFailures).toBeGreaterThanOrEqual(1);
    expect(t.stats.acknowledged).toBe(0);
    platform.registrationResult = null;
    await acknowledged(t, 1);
  });

  it('delivers what was sent and not answered when the platform cut the connection', async () => {
    const t = await start();
    platform.answer = () => null;
    t.send(fix('GPS-truck-0001', 0));
    await until(() => platform.locations.length >= 1, 'the report');
    platform.answer = () => RESULT.ok;
    platform.cut();
    await acknowledged(t, 1);
    expect(platform.connections).toBe(2);
    expect(platform.locations.at(-1)!.header.messageId).toBe(MESSAGE.batchLocation);
  });

  it('delivers what a truck queued during an outage still under way when the run ends', async () => {
    const t = await start();
    t.send(fix('GPS-truck-0001', 0));
    await acknowledged(t, 1);
    t.send({ kind: 'reconnect', at: T0 + 500, deviceId: 'GPS-truck-0001', deviceClass: 'trucks', downForMs: 120_000 });
    for (let i = 1; i <= 5; i++) t.send(fix('GPS-truck-0001', i));
    const closing = Date.now();
    await t.close(2000);
    expect(t.stats).toMatchObject({ acknowledged: 6, queued: 0, inFlight: 0 });
    expect(Date.now() - closing).toBeLessThan(2000);
    transport = null;
  });

  it('refuses a truck without a phone number, and a gateway address that is not tcp://host:port', () => {
    const t = new Jt808Transport({ url: 'tcp://127.0.0.1:1', terminals, authCode: CITY_CODE, maxInFlight: 1, maxConnecting: 1 });
    expect(() => t.send(fix('GPS-truck-0099', 0))).toThrow(/GPS-truck-0099 has no terminal phone number; generate the city again/);
    expect(() => new Jt808Transport({ url: 'mqtt://127.0.0.1:1883', terminals, authCode: CITY_CODE, maxInFlight: 1, maxConnecting: 1 })).toThrow(/tcp:\/\/host:port/);
  });
});

describe('the trucks of a city bundle as terminals', () => {
  it('takes phone, model and plate from the bundle, and mixes the editions by the phone number', () => {
    const bundle = {
      devices: [
        { id: 'GPS-a', class: 'trucks', jt808_phone: '14700000010', jt808_model: 'WASTE-SIM' },
        { id: 'GPS-b', class: 'trucks', jt808_phone: '14700000011' },
        { id: 'BIN-1', class: 'bins' },
      ],
      trucks: [{ id: 'a', device_id: 'GPS-a', plate: '苏E·C0010' }],
    };
    expect([...terminalsOf(bundle, 'mixed')]).toEqual([
      ['GPS-a', { phone: '14700000010', edition: 2013, model: 'WASTE-SIM', plate: '苏E·C0010' }],
      ['GPS-b', { phone: '14700000011', edition: 2019, model: 'WASTE-SIM', plate: '' }],
    ]);
    expect([...terminalsOf(bundle, 2019).values()].map((t) => t.edition)).toEqual([2019, 2019]);
  });

  it('maps a collection truck\'s fix without body sensors to no vendor items and status bits 8-9 at 0', () => {
    const f = terminalFix({ ts: T0, lat: 31.3, lon: 120.6, speed_kmh: 0, heading: 0, ignition: false });
    expect(f).toMatchObject({ loadState: 0, ignition: false, items: [] });
    expect(terminalFix({ ...muckFix(0), load_kg: 0 }).loadState).toBe(0);
  });
});

describe('ByClassTransport', () => {
  /** A transport that records what it is sent and acknowledges on demand. */
  class Recording implements Transport {
    readonly stats: TransportStats = { connected: 1, acknowledged: 0, failed: 0, queued: 0, inFlight: 0, connects: 1, connectFailures: 0, lastError: null };
    readonly sent: Outgoing[] = [];
    private waiters: (() => void)[] = [];
    send(message: Outgoing): void {
      this.sent.push(message);
      this.stats.queued++;
    }
    ack(): void {
      this.stats.queued--;
      this.stats.acknowledged++;
      for (const w of this.waiters.splice(0)) w();
    }
    oldestPendingAt(): number | null {
      return this.sent.length > this.stats.acknowledged ? this.sent[this.stats.acknowledged]!.at : null;
    }
    async progress(): Promise<void> {
      if (this.stats.queued === 0) return;
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
    async backlogBelow(): Promise<void> {}
    async close(): Promise<void> {}
  }

  it('sends trucks one way and the rest the other, adds up the stats, and waits only on the one with something pending', async () => {
    const trucks = new Recording();
    const others = new Recording();
    const both = new ByClassTransport(trucks, others);
    both.send(fix('GPS-truck-0001', 5));
    both.send({ kind: 'publish', at: T0 + 1000, deviceId: 'BIN-00001', deviceClass: 'bins', payload: { fill_pct: 10 } });
    expect(trucks.sent.map((m) => m.deviceId)).toEqual(['GPS-truck-0001']);
    expect(others.sent.map((m) => m.deviceId)).toEqual(['BIN-00001']);
    expect(both.stats).toMatchObject({ connected: 2, queued: 2, connects: 2 });
    expect(both.oldestPendingAt()).toBe(T0 + 1000);
    others.ack();
    expect(both.oldestPendingAt()).toBe(T0 + 5000);
    // Only the trucks have something pending: progress waits for them, not for the idle one.
    let resolved = false;
    const waiting = both.progress().then(() => (resolved = true));
    await new Promise((r) => setTimeout(r, 20));
    expect(resolved).toBe(false);
    trucks.ack();
    await waiting;
    expect(both.stats.acknowledged).toBe(2);
    await both.progress();
  });
});

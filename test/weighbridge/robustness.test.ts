// The agent when what it stands on misbehaves: another program holding the queue file's lock (the
// weighings wait in memory, in order, and the event loop is not stalled), a second agent on the
// same queue file, a ticket row that is not a ticket, a PC clock behind the queue file's records,
// and a clock jump forward that expires open weighings. The indicator is a TCP server in the test
// sending XK3190-A9 frames; the broker is unreachable.
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { Writable } from 'node:stream';
import Database from 'better-sqlite3';
import { pino } from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { WeighbridgeAgent } from '../../weighbridge/agent.ts';
import type { AgentConfig } from '../../weighbridge/config.ts';
import { agentLogger, type Logger } from '../../weighbridge/log.ts';
import { openDb } from '../../weighbridge/store/db.ts';
import type { Outcome, Weighing } from '../../weighbridge/weighing/ledger.ts';
import { freePort } from '../helpers/ports.ts';
import { xk3190Frame, truckPass } from './frames.ts';
import { agentConfig, next, until } from './harness.ts';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

interface Logged {
  level: number;
  msg: string;
  [key: string]: unknown;
}

function capture(): { log: Logger; lines: Logged[] } {
  const lines: Logged[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(line) as Logged);
      done();
    },
  });
  return { log: pino({ level: 'debug' }, sink), lines };
}

/** A TCP "serial-device server" the agent connects to; `send` writes to the agent's connection. */
async function indicator(): Promise<{ port: number; send(bytes: Buffer): void }> {
  const sockets: net.Socket[] = [];
  const server = net.createServer((socket) => {
    sockets.push(socket);
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise((resolve) => server.close(resolve));
  });
  return { port: (server.address() as net.AddressInfo).port, send: (bytes) => sockets.at(-1)!.write(bytes) };
}

async function setUp(overrides: Record<string, unknown> = {}, log?: Logger): Promise<{ agent: WeighbridgeAgent; config: AgentConfig; pagePort: number | null; send(bytes: Buffer): void }> {
  const line = await indicator();
  // Two weighings of a plate seconds apart pair here; the pairing rules' own tests are ledger.test.ts.
  const config = await agentConfig({ tcp: { host: '127.0.0.1', port: line.port } }, { pairing: { minPairIntervalS: 0 }, ...overrides });
  config.mqtt.url = `mqtt://127.0.0.1:${await freePort()}`;
  const agent = new WeighbridgeAgent(config, log ?? agentLogger(config.log.level));
  const { pagePort } = await agent.start();
  cleanups.push(() => agent.stop());
  await until(() => agent.status().input.connected, 'the line');
  return { agent, config, pagePort, send: line.send };
}

const pass = (kg: number) => Buffer.concat(truckPass(kg, { jitterKg: 10 }).map((w) => xk3190Frame(w)));

describe('the queue file held by another program', () => {
  it('keeps weighings in memory, in order, without stalling the event loop, and saves them once it is free', async () => {
    const { log, lines } = capture();
    const { agent, config, send } = await setUp({}, log);
    const locker = new Database(config.queueFile);
    cleanups.push(() => {
      locker.close();
    });
    locker.exec('BEGIN IMMEDIATE');
    let last = performance.now();
    let longestGapMs = 0;
    const ticker = setInterval(() => {
      const now = performance.now();
      longestGapMs = Math.max(longestGapMs, now - last);
      last = now;
    }, 5);
    cleanups.push(() => clearInterval(ticker));

    agent.offerPlate('苏E12121', 'test', null);
    send(pass(20_000));
    await until(() => agent.status().storage.unsaved.length === 1 && agent.status().bridge === 'empty', 'the first weighing kept in memory');
    // The same plate again within the millisecond its truck left is a repeat, even with minPairIntervalS 0.
    await new Promise((r) => setTimeout(r, 5));
    expect(agent.offerPlate('苏E12121', 'test', null)).toMatchObject({ ok: true, placed: 'next' });
    send(pass(8_000));
    await until(() => agent.status().storage.unsaved.length === 2, 'the second weighing kept in memory');
    const status = agent.status();
    expect(status.storage.problem).toMatch(/queue file .* is locked by another program .*: close it/);
    expect(status.storage.unsaved.map((u) => u.what)).toEqual([expect.stringMatching(/^weighing of 20000 kg .* plate 苏E12121$/), expect.stringMatching(/^weighing of 8000 kg/)]);
    expect(status.warnings.join('\n')).toMatch(/2 weighing\(s\) or plate\(s\) not yet saved in the queue file/);
    expect(lines.some((l) => l.level === 50 && /locked by another program/.test(l.msg))).toBe(true);

    const outcomes: Outcome[] = [];
    agent.on('weighing', (outcome) => outcomes.push(outcome));
    locker.exec('ROLLBACK');
    await until(() => outcomes.length === 2, 'both weighings saved');
    expect(outcomes[0]).toMatchObject({ kind: 'open', weighing: { kg: 20_000, plate: '苏E12121' } });
    expect(outcomes[1]).toMatchObject({ kind: 'ticket', ticket: { plate: '苏E12121', gross_kg: 20_000, tare_kg: 8_000, net_kg: 12_000 } });
    expect(agent.status()).toMatchObject({ storage: { problem: null, unsaved: [] }, warnings: [], queue: { waiting: 1 } });
    // Each attempt waits at most the short busy timeout, not seconds.
    expect(longestGapMs).toBeLessThan(1_000);
  });

  it('keeps a plate for an open weighing too, and says so to whoever gave it', async () => {
    const { agent, config, send } = await setUp();
    const weighed = next<[Outcome]>(agent, 'weighing');
    send(pass(15_000));
    const [first] = await weighed;
    const id = first.kind === 'open' ? first.weighing.id : -1;
    const locker = new Database(config.queueFile);
    cleanups.push(() => {
      locker.close();
    });
    locker.exec('BEGIN IMMEDIATE');
    expect(agent.offerPlate('苏E34343', 'test', id)).toEqual({ ok: true, placed: 'weighing', weighing_id: id, saved: false });
    locker.exec('ROLLBACK');
    await until(() => agent.status().open_weighings[0]?.plate === '苏E34343', 'the plate saved', 5_000);
  });

  it('gives a plate for the truck on the bridge to its weighing once the weighing is saved', async () => {
    const { agent, config, send } = await setUp();
    const locker = new Database(config.queueFile);
    cleanups.push(() => {
      locker.close();
    });
    locker.exec('BEGIN IMMEDIATE');
    // The truck holds steady and stays on the bridge.
    send(Buffer.concat(truckPass(17_000, { jitterKg: 10 }).slice(0, -5).map((w) => xk3190Frame(w))));
    await until(() => agent.status().storage.unsaved.length === 1, 'the weighing kept in memory');
    expect(agent.offerPlate('苏E56565', 'camera', null)).toEqual({ ok: true, placed: 'pass' });
    locker.exec('ROLLBACK');
    await until(() => agent.status().open_weighings[0]?.plate === '苏E56565', 'the plate on the saved weighing', 5_000);
    expect(agent.status().open_weighings).toMatchObject([{ kg: 17_000, plate: '苏E56565' }]);
  });
});

describe('one agent per queue file', () => {
  it('refuses a second agent on the same queue file, saying who holds it and what to do', async () => {
    const { agent, config } = await setUp();
    const second = new WeighbridgeAgent(config, agentLogger(config.log.level));
    await expect(second.start()).rejects.toThrow(new RegExp(`the queue file .*queue\\.db is in use by another weighbridge agent \\(pid ${process.pid}, started .*\\).*Stop the other agent .*or give this one its own --queue-file`));
    // The first is untouched, and once it stops the second may start.
    expect(agent.status().storage.problem).toBeNull();
    await agent.stop();
    await second.start();
    cleanups.push(() => second.stop());
  });
});

describe('a queue file with a row that is not a ticket', () => {
  it('shows the row on the page and keeps logging status lines', async () => {
    const { log, lines } = capture();
    const { agent, config } = await setUp({ log: { level: 'debug', statusIntervalS: 0.05 } }, log);
    const other = new Database(config.queueFile);
    other.prepare('INSERT INTO queue (ticket_id, payload, created_at) VALUES (?, ?, ?)').run('WB-BAD-1', '{"ticket_id": "WB-BAD-1", truncated', Date.now());
    other.close();
    const before = lines.filter((l) => /^status: /.test(l.msg)).length;
    await until(() => lines.filter((l) => /^status: /.test(l.msg)).length > before + 3, 'status lines after the bad row');
    expect(agent.status().queue.tickets).toEqual([{ ticket_id: 'WB-BAD-1', problem: expect.stringContaining('truncated') }]);
  });
});

describe('the PC clock', () => {
  it('is doubted when it is before the newest record of the queue file', async () => {
    const { log, lines } = capture();
    const line = await indicator();
    const config = await agentConfig({ tcp: { host: '127.0.0.1', port: line.port } });
    const db = openDb(config.queueFile);
    db.prepare('INSERT INTO weighings (ts, kg) VALUES (?, ?)').run(Date.now() + 2 * 3_600_000, 12_000);
    db.close();
    const agent = new WeighbridgeAgent(config, log);
    await agent.start();
    cleanups.push(() => agent.stop());
    const problem = agent.status().clock.problem;
    expect(problem).toMatch(/the PC clock says .*, 120 min before the newest weighing or ticket in the queue file .*: the clock went back\. Check the date and time \(timedatectl\)/);
    expect(agent.status().warnings).toContain(problem);
    expect(lines.some((l) => l.level === 40 && l.msg === problem)).toBe(true);
  });

  it('says which weighings a jump forward expired, and why', async () => {
    const { log, lines } = capture();
    // Weighings expire after 3.6 s here, looked at every 0.9 s.
    const { agent, send } = await setUp({ pairing: { expireAfterH: 0.001, minPairIntervalS: 0 } }, log);
    const weighed = next<[Outcome]>(agent, 'weighing');
    send(pass(21_000));
    await weighed;
    const real = Date.now.bind(Date);
    const expired = next<[Weighing]>(agent, 'expired');
    vi.spyOn(Date, 'now').mockImplementation(() => real() + 10 * 60_000);
    cleanups.push(() => void vi.restoreAllMocks());
    await expired;
    expect(lines.find((l) => /jumped forward/.test(l.msg))).toMatchObject({ level: 40, msg: expect.stringMatching(/^the PC clock jumped forward by 10 min: 1 open weighing\(s\) expire at once because of it/) });
    expect(lines.find((l) => /weighing expired/.test(l.msg))).toMatchObject({ level: 40, kg: 21_000, msg: expect.stringMatching(/weighed 0\.2 h ago, longer than pairing\.expireAfterH \(0\.001 h\), after the PC clock jumped forward/) });
  });
});

describe('a wrong weighing', () => {
  it('is voided by the operator from the page', async () => {
    const { agent, pagePort, send } = await setUp();
    const weighed = next<[Outcome]>(agent, 'weighing');
    send(pass(19_000));
    const [outcome] = await weighed;
    const id = outcome.kind === 'open' ? outcome.weighing.id : -1;
    const post = (body: unknown) => fetch(`http://127.0.0.1:${pagePort}/api/void`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    expect(await (await post({ weighing_id: id })).json()).toEqual({ ok: true, voided: id });
    expect(agent.status().open_weighings).toEqual([]);
    expect((await post({ weighing_id: id })).status).toBe(404);
    expect((await post({ weighing_id: 'x' })).status).toBe(400);
  });
});

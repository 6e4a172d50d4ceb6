// Benchmark terminal fleet (child process of bench/jt808/run.ts): M JT/T 808 terminals connect to
// the gateway over TCP and authenticate (0x0102), then each sends N fixes as location reports
// (0x0200, or blind-area batches 0x0704 of K fixes) with at most W reports unanswered, as fast as
// the gateway answers with 0x8001. Prints JSON lines: progress, "connected" when every terminal is
// authenticated, and "done" with the latency report -> 0x8001 of every report.
import fs from 'node:fs';
import net from 'node:net';
import { parseArgs } from 'node:util';
import { FrameSplitter } from '../../services/jt808/frame.ts';
import { MESSAGE, RESULT } from '../../services/jt808/session.ts';
import {
  BATCH_TYPE,
  MAX_BODY_BYTES,
  authenticationFrame,
  batchFrame,
  heartbeatFrame,
  locationBody,
  locationFrame,
  parsePlatformMessage,
  wasteSimItems,
  type Edition,
  type TerminalFix,
  type TerminalHeader,
} from '../../services/jt808/terminal.ts';

const HELP = `Usage: fleet.ts --port P --terminals M --phone-base PHONE --code CODE --fixes N --base TS
                [--host H] [--window W] [--batch K] [--batch-share S] [--edition 2013|2019]
                [--auth-concurrency C] [--latencies FILE]

--latencies FILE writes the latency of every report (ms, float64, this machine's byte order).
`;

const { values } = parseArgs({
  options: {
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string' },
    terminals: { type: 'string' },
    'phone-base': { type: 'string' },
    code: { type: 'string' },
    fixes: { type: 'string' },
    base: { type: 'string' },
    window: { type: 'string', default: '8' },
    batch: { type: 'string', default: '1' },
    'batch-share': { type: 'string', default: '1' },
    edition: { type: 'string', default: '2013' },
    'auth-concurrency': { type: 'string', default: '4' },
    latencies: { type: 'string' },
    help: { type: 'boolean' },
  },
});
if (values.help || !values.port || !values.terminals || !values['phone-base'] || !values.code || !values.fixes || !values.base) {
  process.stdout.write(HELP);
  process.exit(values.help ? 0 : 2);
}

const port = Number(values.port);
const M = Number(values.terminals);
const N = Number(values.fixes);
const W = Number(values.window);
const K = Number(values.batch);
const batchShare = K > 1 ? Number(values['batch-share']) : 0;
const edition = Number(values.edition) as Edition;
const base = Number(values.base);
const phoneBase = BigInt(values['phone-base']);
const authConcurrency = Number(values['auth-concurrency']);
/** Terminals send heartbeats (0x0002) while they wait for the others, as they would when idle. */
const HEARTBEAT_MS = 30_000;
/** No answer at all for this long while reports are unanswered: the run is given up. */
const STALL_MS = 60_000;
const AUTH_ATTEMPTS = 20;

const emit = (event: Record<string, unknown>): void => void process.stdout.write(JSON.stringify(event) + '\n');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** What the sensors of every benchmark truck say: the same values bench/ingest's publisher sends. */
const ITEMS = wasteSimItems({ coverClosed: true, loadKg: 18250 });
const fixAt = (n: number): TerminalFix => ({
  ts: base + n * 1000,
  lat: 31.2 + (n % 1000) * 1e-5,
  lon: 120.58532,
  speedKmh: n % 90,
  heading: n % 360,
  ignition: true,
  loadState: 3,
  items: ITEMS,
});
const reportBytes = 2 + locationBody(fixAt(0)).length;
if (K > 1 && 3 + K * reportBytes > MAX_BODY_BYTES) {
  process.stderr.write(`--batch ${K}: a 0x0704 holds at most ${Math.floor((MAX_BODY_BYTES - 3) / reportBytes)} of these reports without sub-packages\n`);
  process.exit(2);
}
/** Fixes of each terminal sent in 0x0704 batches (the first ones, as a back-fill after a blind area), the rest as 0x0200. */
const batchedFixes = Math.min(N, Math.round((N * batchShare) / K) * K);

interface Outstanding {
  sentAt: number;
  messageId: number;
  fixes: number;
}

class BenchTerminal {
  readonly header: TerminalHeader;
  private readonly splitter = new FrameSplitter(1 << 16);
  private readonly outstanding = new Map<number, Outstanding>();
  private readonly authWaiters = new Map<number, (result: number) => void>();
  private next = 0;
  private finish: (() => void) | null = null;
  closed = false;

  constructor(
    readonly phone: string,
    private readonly socket: net.Socket,
    private readonly stats: Stats,
  ) {
    this.header = { phone, edition, serial: 0, ...(edition === 2019 ? { protocolVersion: 1 } : {}) };
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      for (const content of this.splitter.push(chunk).frames) this.receive(content);
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      this.closed = true;
      this.finish?.();
    });
  }

  static connect(phone: string, stats: Stats): Promise<BenchTerminal> {
    return new Promise((resolve, reject) => {
      const socket = net.connect(port, values.host!, () => resolve(new BenchTerminal(phone, socket, stats)));
      socket.once('error', reject);
    });
  }

  private serial(): number {
    const serial = this.header.serial;
    this.header.serial = (serial + 1) & 0xffff;
    return serial;
  }

  async authenticate(code: string): Promise<number> {
    const serial = this.serial();
    const answered = new Promise<number>((resolve) => this.authWaiters.set(serial, resolve));
    this.socket.write(authenticationFrame({ ...this.header, serial }, { code, imei: '860000000000000', softwareVersion: 'bench' }));
    return Promise.race([answered, sleep(30_000).then(() => -1)]);
  }

  heartbeat(): void {
    if (!this.closed) this.socket.write(heartbeatFrame({ ...this.header, serial: this.serial() }));
  }

  /** Sends every fix, at most W reports unanswered; resolves once all are answered (or the connection closed). */
  send(): Promise<void> {
    return new Promise((resolve) => {
      this.finish = () => {
        if (this.closed || (this.next >= N && this.outstanding.size === 0)) {
          this.finish = null;
          resolve();
        }
      };
      this.fill();
      this.finish();
    });
  }

  /** Reports written but never answered (the connection closed, or the run was given up). */
  unanswered(): number {
    let fixes = 0;
    for (const o of this.outstanding.values()) fixes += o.fixes;
    return fixes;
  }

  close(): void {
    this.socket.end();
  }

  private fill(): void {
    while (!this.closed && this.outstanding.size < W && this.next < N) {
      const serial = this.serial();
      const header = { ...this.header, serial };
      if (this.next < batchedFixes) {
        const count = Math.min(K, batchedFixes - this.next);
        const fixes = Array.from({ length: count }, (_, i) => fixAt(this.next + i));
        this.next += count;
        this.outstanding.set(serial, { sentAt: performance.now(), messageId: MESSAGE.batchLocation, fixes: count });
        this.socket.write(batchFrame(header, BATCH_TYPE.blindArea, fixes));
        this.stats.sentFixes += count;
      } else {
        const frame = locationFrame(header, fixAt(this.next++));
        this.outstanding.set(serial, { sentAt: performance.now(), messageId: MESSAGE.location, fixes: 1 });
        this.socket.write(frame);
        this.stats.sentFixes++;
      }
      this.stats.sentReports++;
    }
  }

  private receive(content: Buffer): void {
    const message = parsePlatformMessage(content);
    if (message.kind !== 'response') return;
    const auth = this.authWaiters.get(message.serial);
    if (auth && message.messageId === MESSAGE.authentication) {
      this.authWaiters.delete(message.serial);
      auth(message.result);
      return;
    }
    const report = this.outstanding.get(message.serial);
    if (!report || report.messageId !== message.messageId) return;
    this.outstanding.delete(message.serial);
    this.stats.lastAnswerAt = performance.now();
    this.stats.latencies.push(this.stats.lastAnswerAt - report.sentAt);
    if (message.result === RESULT.ok) this.stats.answeredFixes += report.fixes;
    else this.stats.failedFixes += report.fixes;
    this.fill();
    this.finish?.();
  }
}

interface Stats {
  sentReports: number;
  sentFixes: number;
  answeredFixes: number;
  failedFixes: number;
  latencies: number[];
  lastAnswerAt: number;
}

const stats: Stats = { sentReports: 0, sentFixes: 0, answeredFixes: 0, failedFixes: 0, latencies: [], lastAnswerAt: 0 };
const phones = Array.from({ length: M }, (_, i) => String(phoneBase + BigInt(i)));
const terminals: BenchTerminal[] = [];

// Phase 1: connect and authenticate. The gateway verifies a terminal's code with scrypt, two at a
// time and at most four pending per remote address, so this fleet (one address) keeps four going.
const authStarted = performance.now();
let authRetries = 0;
let nextPhone = 0;
const progress = setInterval(() => emit({ event: 'progress', phase: terminals.length < M ? 'auth' : 'fixes', authenticated: terminals.length, answered: stats.answeredFixes }), 1000);
const heartbeats = setInterval(() => {
  for (const t of terminals) t.heartbeat();
}, HEARTBEAT_MS);
await Promise.all(
  Array.from({ length: authConcurrency }, async () => {
    while (nextPhone < M) {
      const phone = phones[nextPhone++]!;
      for (let attempt = 1; ; attempt++) {
        const terminal = await BenchTerminal.connect(phone, stats);
        const result = await terminal.authenticate(values.code!);
        if (result === RESULT.ok) {
          terminals.push(terminal);
          break;
        }
        terminal.close();
        authRetries++;
        if (attempt >= AUTH_ATTEMPTS) {
          emit({ event: 'failed', message: `terminal ${phone} was not authenticated after ${attempt} attempts (last 0x8001 result ${result})` });
          process.exit(1);
        }
        await sleep(200 * attempt);
      }
    }
  }),
);
clearInterval(heartbeats);
const authMs = performance.now() - authStarted;
emit({ event: 'connected', terminals: terminals.length, authMs, authRetries });

// Phase 2: the fixes.
const started = performance.now();
const cpuAtStart = process.cpuUsage();
stats.lastAnswerAt = started;
let stalled = false;
const watchdog = setInterval(() => {
  if (performance.now() - stats.lastAnswerAt > STALL_MS) {
    stalled = true;
    for (const t of terminals) t.close();
  }
}, 1000);
await Promise.all(terminals.map((t) => t.send()));
const elapsedMs = stats.lastAnswerAt - started;
clearInterval(watchdog);
clearInterval(progress);
const unanswered = terminals.reduce((sum, t) => sum + t.unanswered(), 0);
const closedEarly = terminals.filter((t) => t.closed).length;
for (const t of terminals) t.close();

const sorted = Float64Array.from(stats.latencies).sort();
if (values.latencies) fs.writeFileSync(values.latencies, sorted);
const percentile = (p: number): number => (sorted.length ? Math.round(sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]! * 10) / 10 : Number.NaN);
const cpu = process.cpuUsage(cpuAtStart);
emit({
  event: 'done',
  terminals: terminals.length,
  sentReports: stats.sentReports,
  sentFixes: stats.sentFixes,
  batchedFixes: batchedFixes * terminals.length,
  answeredFixes: stats.answeredFixes,
  failedFixes: stats.failedFixes,
  unanswered,
  closedEarly,
  stalled,
  elapsedMs,
  latency: { p50: percentile(0.5), p90: percentile(0.9), p99: percentile(0.99), max: percentile(1), samples: sorted.length },
  /** CPU time of this process while it sent the fixes (the authentication phase not counted). */
  cpuMs: Math.round((cpu.user + cpu.system) / 1000),
  maxRssMb: process.resourceUsage().maxRSS / 1024,
});
process.exit(0);

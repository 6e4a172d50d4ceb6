// The service as a process, with terminals reporting over JT/T 808 through its gateway: killed with
// SIGKILL between reports and their answers, restarted, the terminals re-send what was not
// answered (as their blind-area store does), and every fix is in InfluxDB once: nothing a terminal
// was told had arrived is lost, and nothing is counted twice.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RegistryDb } from '../../../services/registry/db.ts';
import { DeviceStore } from '../../../services/registry/devices.ts';
import { MESSAGE, RESULT } from '../../../services/jt808/session.ts';
import { authenticationFrame, batchFrame, locationFrame, type TerminalFix } from '../../../services/jt808/terminal.ts';
import { startTestInfluxd, type TestInfluxd } from '../../helpers/influxd.ts';
import { TestTerminal } from '../../helpers/jt808.ts';
import { freePort } from '../../helpers/ports.ts';
import { spawnService } from '../../helpers/process.ts';
import { eventually, sleep, tempDir, testConfig } from '../../helpers/service.ts';

let influxd: TestInfluxd;
beforeAll(async () => {
  influxd = await startTestInfluxd();
});
afterAll(async () => {
  await influxd?.cleanup();
});

/** A terminal that keeps every report until it is answered, and sends the unanswered ones again. */
class ReportingTerminal {
  terminal: TestTerminal | null = null;
  serial = 1;
  /** Fixes by the serial of the report that carried them, until answered. */
  readonly pending = new Map<number, TerminalFix[]>();
  readonly answered: TerminalFix[] = [];
  next = 0;

  constructor(
    readonly phone: string,
    readonly base: number,
  ) {}

  async connect(port: number): Promise<void> {
    const t = await TestTerminal.connect(port);
    this.terminal = t;
    const serial = this.serial++;
    t.send(authenticationFrame({ phone: this.phone, edition: 2013, serial }, { code: 'crash-code' }));
    expect(await t.response(serial)).toMatchObject({ result: RESULT.ok });
    t.socket.on('data', () => this.collect());
  }

  /** One new fix a report; a second apart in event time (the BCD time counts seconds). */
  report(): void {
    const fix: TerminalFix = { ts: this.base + this.next++ * 1000, lat: 31.3 + this.next / 10_000, lon: 120.6, speedKmh: 30, heading: 90 };
    this.send(MESSAGE.location, [fix]);
  }

  /** What was not answered, again, as one blind-area batch (0x0704 type 1). */
  backfill(): void {
    const fixes = [...this.pending.values()].flat();
    this.pending.clear();
    for (let i = 0; i < fixes.length; i += 20) this.send(MESSAGE.batchLocation, fixes.slice(i, i + 20));
  }

  private send(messageId: number, fixes: TerminalFix[]): void {
    const serial = this.serial++;
    this.pending.set(serial, fixes);
    const header = { phone: this.phone, edition: 2013 as const, serial };
    this.terminal!.send(messageId === MESSAGE.location ? locationFrame(header, fixes[0]!) : batchFrame(header, 1, fixes));
  }

  private collect(): void {
    const t = this.terminal!;
    for (const m of t.received.splice(0)) {
      if (m.kind !== 'response' || m.result !== RESULT.ok) continue;
      const fixes = this.pending.get(m.serial);
      if (!fixes) continue;
      this.pending.delete(m.serial);
      this.answered.push(...fixes);
    }
  }
}

describe('JT/T 808 through the service process', () => {
  it('loses no answered fix when the service is killed between reports and answers, and stores each once after the terminals re-send', async () => {
    const dataDir = await tempDir('waste-jt808-crash-');
    const env = {
      WASTE_DATA_DIR: dataDir,
      WASTE_BROKER_HOST: '127.0.0.1',
      WASTE_BROKER_PORT: String(await freePort()),
      WASTE_BROKER_WS_PORT: '0',
      WASTE_API_PORT: '0',
      WASTE_JT808_HOST: '127.0.0.1',
      WASTE_JT808_PORT: String(await freePort()),
      WASTE_INFLUX_URL: influxd.url,
      WASTE_INFLUX_START_PRIVATE: 'false',
      WASTE_SPOOL_RETRY_MIN_MS: '100',
    };
    const config = await testConfig(influxd.url, {}, dataDir);
    const db = new RegistryDb(config.registry.file);
    db.open();
    const store = new DeviceStore(db);
    const base = Math.floor(Date.now() / 1000) * 1000 - 3_600_000;
    const terminals: ReportingTerminal[] = [];
    for (let i = 0; i < 4; i++) {
      await store.add(`JT-${i}`, 'trucks', { phone: `1380013800${i}`, authCode: 'crash-code' });
      terminals.push(new ReportingTerminal(`1380013800${i}`, base));
    }
    db.close();
    const port = Number(env.WASTE_JT808_PORT);

    let service = await spawnService(env);
    for (const t of terminals) await t.connect(port);
    // Reports as fast as the terminals can write them; the kill lands between some report and its answer.
    const sending = setInterval(() => {
      for (const t of terminals) for (let k = 0; k < 5; k++) t.report();
    }, 2);
    await sleep(800);
    // A burst written in the same tick as the kill: the service cannot answer it (an answer waits
    // for the spool's group commit), so some reports are surely unanswered when it dies.
    for (const t of terminals) for (let k = 0; k < 20; k++) t.report();
    service.child.kill('SIGKILL');
    clearInterval(sending);
    await service.exited;
    const answeredBeforeKill = terminals.reduce((n, t) => n + t.answered.length, 0);
    const unanswered = terminals.reduce((n, t) => n + [...t.pending.values()].flat().length, 0);
    expect(answeredBeforeKill).toBeGreaterThan(0);
    expect(unanswered).toBeGreaterThan(0);

    service = await spawnService(env);
    for (const t of terminals) {
      t.terminal!.close();
      await t.connect(port);
      t.backfill();
      for (let k = 0; k < 10; k++) t.report();
    }
    await eventually(async () => terminals.every((t) => t.pending.size === 0), (done) => done, 15_000);
    for (const t of terminals) {
      // Every fix was answered once it was durable; InfluxDB holds each one, once.
      expect(t.answered.length).toBe(t.next);
      expect(await eventually(() => influxd.count('truck_position', 'lat', `JT-${terminals.indexOf(t)}`), (n) => n >= t.next, 20_000)).toBe(t.next);
      t.terminal!.close();
    }
    service.child.kill('SIGTERM');
    expect(await service.exited).toBe(0);
  });
});

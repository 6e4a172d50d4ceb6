// Delivers the spool to InfluxDB in order, one batch in flight at a time. A failed write is retried
// with exponential backoff for as long as it takes (the spool, not memory, holds the backlog); a
// batch InfluxDB can never accept (400: bad line or field-type conflict) is moved to dead-letter/
// with the server's reason so it cannot block everything behind it.
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import { isRetryableWriteError } from '../influx/client.ts';
import type { Spool } from './spool.ts';

export interface LineSink {
  readonly url: string;
  write(body: Buffer): Promise<void>;
}

export interface ShipperOptions {
  batchLines: number;
  lingerMs: number;
  retryMinMs: number;
  retryMaxMs: number;
  deadLetterDir: string;
}

export interface ShipperStats {
  deliveredLines: number;
  deadLetteredLines: number;
  failedWrites: number;
  /** Duration of the last successful write, ms. */
  lastWriteMs: number;
  /** Epoch ms since when InfluxDB has been failing, or null when it is healthy. */
  failingSince: number | null;
}

/** Every so often while InfluxDB is down, the log repeats what is wrong and how big the backlog is. */
const REPEAT_WARNING_MS = 30_000;

export class Shipper {
  readonly stats: ShipperStats = { deliveredLines: 0, deadLetteredLines: 0, failedWrites: 0, lastWriteMs: 0, failingSince: null };
  private running = false;
  private loop: Promise<void> | null = null;
  private wake: (() => void) | null = null;
  private waitingForData = false;
  /** Set by every group commit; lets the loop see data that landed while it was reading. */
  private dataSinceRead = false;
  private lastWarning = 0;
  // New data ends a wait for data, never a backoff after a failure.
  private readonly onData = (): void => {
    this.dataSinceRead = true;
    if (this.waitingForData) this.wake?.();
  };

  constructor(
    private readonly spool: Spool,
    private readonly sink: LineSink,
    private readonly options: ShipperOptions,
    private readonly log: Logger,
    /** Told of every successful write: its duration and line count (the metrics). */
    private readonly onWrite: (ms: number, lines: number) => void = () => {},
  ) {}

  start(): void {
    if (this.running) return;
    this.running = true;
    this.spool.on('data', this.onData);
    this.loop = this.run();
  }

  /**
   * Stops after the write in flight. With `drainMs`, first keeps delivering until the spool is
   * empty or the time is up; what is left stays in the spool for the next start.
   */
  async stop(drainMs = 0): Promise<void> {
    if (!this.running) return;
    if (drainMs > 0) await this.drained(drainMs);
    this.running = false;
    this.spool.off('data', this.onData);
    this.wake?.();
    await this.loop;
  }

  /**
   * Resolves when everything spooled so far is delivered (true) or the time is up (false). What is
   * spooled meanwhile is not waited for, so a steady stream of data does not hold it back.
   */
  async drained(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    const target = this.spool.appendedBytes();
    while (this.spool.deliveredBytes() < target) {
      if (Date.now() > deadline) return false;
      await sleep(20);
    }
    return true;
  }

  private async run(): Promise<void> {
    let delay = this.options.retryMinMs;
    while (this.running) {
      this.dataSinceRead = false;
      const batch = await this.spool.read(this.options.batchLines);
      if (!batch) {
        if (this.dataSinceRead) continue;
        this.waitingForData = true;
        await this.idle(1000);
        this.waitingForData = false;
        continue;
      }
      const started = performance.now();
      try {
        await this.sink.write(batch.body);
        this.stats.lastWriteMs = performance.now() - started;
        this.stats.deliveredLines += batch.lines;
        this.onWrite(this.stats.lastWriteMs, batch.lines);
        if (this.stats.failingSince !== null) {
          this.log.info(
            { influx: this.sink.url, downForMs: Date.now() - this.stats.failingSince, backlogBytes: this.spool.backlogBytes() },
            'InfluxDB answers again; delivering the spooled backlog in order',
          );
          this.stats.failingSince = null;
        }
        delay = this.options.retryMinMs;
        await this.spool.commit(batch.end);
        // Each write costs a spool read, an HTTP request and a checkpoint whatever its size.
        if (batch.lines < this.options.batchLines && this.options.lingerMs > 0) await this.idle(this.options.lingerMs);
      } catch (error) {
        if (!isRetryableWriteError(error)) {
          await this.deadLetter(batch.body, batch.lines, error as Error);
          await this.spool.commit(batch.end);
          continue;
        }
        this.stats.failedWrites++;
        this.warnFailing(error as Error);
        await this.idle(delay);
        delay = Math.min(delay * 2, this.options.retryMaxMs);
      }
    }
  }

  private warnFailing(error: Error): void {
    const now = Date.now();
    this.stats.failingSince ??= now;
    if (now - this.lastWarning < REPEAT_WARNING_MS) return;
    this.lastWarning = now;
    this.log.warn(
      { influx: this.sink.url, error: error.message, backlogBytes: this.spool.backlogBytes(), usedBytes: this.spool.usedBytes() },
      `cannot write to InfluxDB at ${this.sink.url}; data is kept in the spool and delivered when it answers. ` +
        'Check that influxd is running and the url/token/database settings (WASTE_INFLUX_*) are right.',
    );
  }

  private async deadLetter(body: Buffer, lines: number, error: Error): Promise<void> {
    await fsp.mkdir(this.options.deadLetterDir, { recursive: true });
    const file = path.join(this.options.deadLetterDir, `${Date.now()}.lp`);
    await fsp.writeFile(file, Buffer.concat([Buffer.from(`# ${error.message.replace(/\n/g, ' ')}\n`), body]));
    this.stats.deadLetteredLines += lines;
    this.log.error({ file, lines, error: error.message }, 'InfluxDB refused a batch as invalid; it was moved to the dead-letter directory');
  }

  private idle(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.wake = () => {
        this.wake = null;
        done();
      };
    });
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

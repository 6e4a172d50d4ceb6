// Every interval: one ingest_stats point (through the spool, like all data) and one log line with
// rates, rejections per reason, spool depth and InfluxDB health.
import os from 'node:os';
import type { Logger } from 'pino';
import { DEVICE_CLASSES } from '../contract/topics.ts';
import type { Shipper } from '../spool/shipper.ts';
import type { Spool } from '../spool/spool.ts';
import type { IngestPipeline } from './pipeline.ts';
import { MEASUREMENTS, int, line, type FieldValue } from '../contract/timeseries.ts';

export class StatsReporter {
  private timer: NodeJS.Timeout | null = null;
  private last = { at: Date.now(), received: 0, accepted: 0, byClass: { bins: 0, trucks: 0, scales: 0 } };

  constructor(
    private readonly pipeline: IngestPipeline,
    private readonly spool: Spool,
    private readonly shipper: Shipper,
    private readonly intervalMs: number,
    private readonly log: Logger,
    private readonly instance: string = os.hostname(),
  ) {}

  start(): void {
    this.last = this.counts(Date.now());
    this.timer = setInterval(() => this.report(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  private counts(at: number) {
    return { at, received: this.pipeline.received, accepted: this.pipeline.accepted, byClass: { ...this.pipeline.receivedByClass } };
  }

  report(): void {
    const previous = this.last;
    this.last = this.counts(Date.now());
    const now = this.last.at;
    const seconds = Math.max((now - previous.at) / 1000, 0.001);
    const received = this.last.received - previous.received;
    const accepted = this.last.accepted - previous.accepted;
    const rejected = this.pipeline.rejections.drain();
    this.pipeline.resetLogAllowance();
    const rejectedTotal = [...rejected.values()].reduce((a, b) => a + b, 0);
    // Read before this report's own point is spooled, so an idle service shows an empty backlog.
    const backlogBytes = this.spool.backlogBytes();

    const fields: Record<string, FieldValue> = {
      received: int(received),
      accepted: int(accepted),
      rejected: int(rejectedTotal),
      spool_backlog_bytes: int(backlogBytes),
      spool_used_bytes: int(this.spool.usedBytes()),
      delivered_lines: int(this.shipper.stats.deliveredLines),
      write_ms: this.shipper.stats.lastWriteMs,
      influx_ok: this.shipper.stats.failingSince === null,
    };
    for (const deviceClass of DEVICE_CLASSES) fields[`received_${deviceClass}`] = int(this.last.byClass[deviceClass] - previous.byClass[deviceClass]);
    for (const [reason, count] of rejected) fields[`rejected_${reason}`] = int(count);
    if (!this.spool.isFull()) {
      this.spool.append(line(MEASUREMENTS.ingestStats, { instance: this.instance }, fields, now)).catch((error: Error) => this.log.warn({ error: error.message }, 'could not spool ingest stats'));
    }

    this.log.info(
      {
        messagesPerSecond: Math.round(received / seconds),
        readingsPerSecond: Math.round(accepted / seconds),
        rejected: Object.fromEntries(rejected),
        spoolBacklogBytes: backlogBytes,
        influxOk: this.shipper.stats.failingSince === null,
      },
      'ingest stats',
    );
  }
}

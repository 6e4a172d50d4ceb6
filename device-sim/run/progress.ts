// The progress line of a long run: simulated clock, devices connected, messages per second.
// Rewritten in place on a terminal; one line per interval otherwise (logs, CI).
import type { TransportStats } from './transport.ts';

export class Progress {
  private timer: NodeJS.Timeout | null = null;
  private lastAcknowledged = 0;
  private lastAt = Date.now();

  constructor(
    private readonly read: () => { simNow: number; speed: string; devices: number; labels: number; transport: TransportStats | null; generated: number },
    private readonly everyMs: number,
    private readonly stream: NodeJS.WriteStream = process.stderr,
  ) {}

  start(): void {
    this.timer = setInterval(() => this.print(), this.everyMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.print();
    if (this.stream.isTTY) this.stream.write('\n');
  }

  line(): string {
    const s = this.read();
    const now = Date.now();
    const sent = s.transport ? s.transport.acknowledged : s.generated;
    const rate = ((sent - this.lastAcknowledged) * 1000) / Math.max(1, now - this.lastAt);
    this.lastAcknowledged = sent;
    this.lastAt = now;
    const clock = `${new Date(s.simNow + 8 * 3_600_000).toISOString().slice(0, 19).replace('T', ' ')} +08:00`;
    const parts = [`sim ${clock} (${s.speed})`];
    if (s.transport) {
      const t = s.transport;
      parts.push(`connected ${t.connected}/${s.devices}`, `${Math.round(rate).toLocaleString('en')} msg/s`, `acknowledged ${t.acknowledged.toLocaleString('en')}`, `queued ${(t.queued + t.inFlight).toLocaleString('en')}`);
      if (t.failed > 0) parts.push(`retried ${t.failed}`);
      if (t.connectFailures > 0) parts.push(`failed connects ${t.connectFailures}`);
      if ((t.failed > 0 || t.connectFailures > 0) && t.lastError) parts.push(`last error: ${t.lastError}`);
    } else parts.push(`${Math.round(rate).toLocaleString('en')} msg/s`, `generated ${s.generated.toLocaleString('en')}`);
    parts.push(`labels ${s.labels}`);
    return parts.join(' · ');
  }

  private print(): void {
    const line = this.line();
    this.stream.write(this.stream.isTTY ? `\r\x1b[2K${line}` : `${line}\n`);
  }
}

// What MqttTransport and Jt808Transport share: one connection per device, set up a few at a time;
// messages queued per device and sent while fewer than the in-flight limit await their answer;
// the pending messages counted by the simulated minute they were sent in (oldestPendingAt); the
// run loop's waits; outages (noise) that take a device off the network for a while; and the end
// of the run, which delivers what is queued while answers keep coming.
import type { Outgoing } from '../engine/noise.ts';
import type { Transport, TransportStats } from './transport.ts';

export interface DeliveryLimits {
  /** Most messages awaiting their answer, over all devices. */
  maxInFlight: number;
  /** Most connections being set up at once. */
  maxConnecting: number;
}

/** What the queue needs of a device. */
export interface QueuedDevice {
  state: 'idle' | 'connecting' | 'up' | 'down';
  /** Dropped off the network (noise): its messages do not hold the others back; it back-fills when it is back. */
  down: boolean;
  /** Brings a dropped device back when its outage is over. */
  returnTimer: NodeJS.Timeout | null;
}

export abstract class DeliveryQueue<D extends QueuedDevice> implements Transport {
  readonly stats: TransportStats = { connected: 0, acknowledged: 0, failed: 0, queued: 0, inFlight: 0, connects: 0, connectFailures: 0, lastError: null };
  protected readonly devices = new Map<string, D>();
  protected closing = false;
  private readonly waitingToConnect: D[] = [];
  /** Connected devices with messages held back only by the in-flight limit. */
  private readonly blocked = new Set<D>();
  private connecting = 0;
  private readonly drainWaiters: (() => void)[] = [];
  /** Messages queued or in flight, by the simulated minute they were sent in. */
  private readonly pendingByMinute = new Map<number, number>();

  constructor(private readonly limits: DeliveryLimits) {}

  abstract send(message: Outgoing): void;
  /** Opens a device's connection; calls connectEnded() once it is up or has failed. */
  protected abstract connect(device: D): void;
  /** Sends what a connected device has queued, as far as the limits allow. */
  protected abstract deliver(device: D): void;
  /** Counts a device's queued messages among the pending ones (`counted`), or no longer. */
  protected abstract countQueued(device: D, counted: boolean): void;
  /** Ends every connection once the run is over. */
  protected abstract disconnectAll(): Promise<void>;

  /** Counts one message sent at simulated time `at` as pending (delta 1), or no longer (-1). */
  protected countPending(at: number, delta: number): void {
    const minute = Math.floor(at / 60_000);
    const left = (this.pendingByMinute.get(minute) ?? 0) + delta;
    if (left > 0) this.pendingByMinute.set(minute, left);
    else this.pendingByMinute.delete(minute);
  }

  /** Simulated time of the oldest message not yet acknowledged (to the minute), or null. */
  oldestPendingAt(): number | null {
    let oldest = Infinity;
    for (const minute of this.pendingByMinute.keys()) oldest = Math.min(oldest, minute);
    return oldest === Infinity ? null : oldest * 60_000;
  }

  /** Resolves at the next acknowledgement (or failure). */
  async progress(): Promise<void> {
    if (this.stats.queued + this.stats.inFlight === 0 || this.closing) return;
    await new Promise<void>((resolve) => this.drainWaiters.push(resolve));
  }

  /** Resolves once fewer than `limit` messages are queued or awaiting acknowledgement. */
  async backlogBelow(limit: number): Promise<void> {
    while (this.stats.queued + this.stats.inFlight >= limit && !this.closing) await new Promise<void>((resolve) => this.drainWaiters.push(resolve));
  }

  /**
   * Waits for every queued message to be acknowledged, as long as acknowledgements keep coming
   * (gives up after `stallMs` without one), then disconnects every device.
   */
  async close(stallMs: number): Promise<void> {
    // The run is over, and so are the outages still under way (up to a minute of wall time, which
    // would otherwise outlast the stall limit with nothing else left to acknowledge).
    for (const device of this.devices.values()) if (device.down) this.back(device);
    let acknowledged = this.stats.acknowledged;
    let progressAt = Date.now();
    while (this.stats.queued + this.stats.inFlight > 0 && Date.now() - progressAt < stallMs) {
      await new Promise((r) => setTimeout(r, 100));
      if (this.stats.acknowledged > acknowledged) {
        acknowledged = this.stats.acknowledged;
        progressAt = Date.now();
      }
    }
    this.closing = true;
    this.wakeWaiters();
    await this.disconnectAll();
  }

  /** Connects an idle device (a few at a time), or delivers what a connected one has queued. */
  protected pump(device: D): void {
    if (this.closing) return;
    if (device.state === 'idle') {
      device.state = 'connecting';
      this.waitingToConnect.push(device);
      this.connectNext();
      return;
    }
    if (device.state === 'up') this.deliver(device);
  }

  /** Whether one more message may go out under the in-flight limit. */
  protected roomInFlight(): boolean {
    return this.stats.inFlight < this.limits.maxInFlight;
  }

  /** Notes whether a connected device still has messages held back by the in-flight limit. */
  protected holdBack(device: D, held: boolean): void {
    if (held) this.blocked.add(device);
    else this.blocked.delete(device);
  }

  /** An answer (or failure) came for one of `device`'s messages: wakes the run loop and sends on, here and where the limit held messages back. */
  protected afterAnswer(device: D): void {
    this.wakeWaiters();
    this.pump(device);
    // Capacity freed: let devices held back by the limit go on.
    for (const d of this.blocked) {
      if (!this.roomInFlight()) break;
      if (d.state === 'up') this.pump(d);
      else this.blocked.delete(d);
    }
  }

  /** A connection attempt is over (up, refused or failed): the next device waiting may connect. */
  protected connectEnded(): void {
    this.connecting--;
    this.connectNext();
  }

  private connectNext(): void {
    while (this.connecting < this.limits.maxConnecting && this.waitingToConnect.length > 0 && !this.closing) {
      const device = this.waitingToConnect.shift()!;
      this.connecting++;
      this.connect(device);
    }
  }

  /** Takes a connected device off the network for `downForMs` (the caller cuts its connection). */
  protected goDown(device: D, downForMs: number): void {
    device.state = 'down';
    device.down = true;
    this.countQueued(device, false);
    this.stats.connected--;
    device.returnTimer = setTimeout(() => this.back(device), downForMs);
    device.returnTimer.unref();
  }

  /** Ends a device's outage: it connects again and sends what it queued meanwhile. */
  protected back(device: D): void {
    if (device.returnTimer) clearTimeout(device.returnTimer);
    device.returnTimer = null;
    device.state = 'idle';
    device.down = false;
    this.countQueued(device, true);
    this.pump(device);
  }

  protected wakeWaiters(): void {
    for (const resolve of this.drainWaiters.splice(0)) resolve();
  }
}

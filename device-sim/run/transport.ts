// Publishes the simulation's messages as the devices themselves: each logs in with its own id and
// secret. Truck terminals and weighbridges hold a connection (with a retained online status and an
// offline will); bin sensors sleep between reports, so they connect, publish and disconnect, as
// NB-IoT sensors do. Everything is QoS 1; a message is only counted sent once the broker has
// acknowledged it, and one that fails is queued again, so nothing is lost on a broker restart.
import mqtt from 'mqtt';
import { topics, type DeviceClass } from '../../services/contract/topics.ts';
import type { Outgoing } from '../engine/noise.ts';

export interface TransportOptions {
  url: string;
  secret: string;
  /** Most publishes awaiting their PUBACK, over all devices. */
  maxInFlight: number;
  /** Most connection attempts at once. */
  maxConnecting: number;
}

export interface TransportStats {
  connected: number;
  acknowledged: number;
  failed: number;
  queued: number;
  inFlight: number;
  connects: number;
  /** Connection attempts that ended before CONNACK or were refused. */
  connectFailures: number;
  lastError: string | null;
}

/** What the run loop needs of a transport: MqttTransport, Jt808Transport (jt808-transport.ts), or both (ByClassTransport). */
export interface Transport {
  readonly stats: TransportStats;
  send(message: Outgoing): void;
  /** Simulated time of the oldest message not yet acknowledged (to the minute), or null. */
  oldestPendingAt(): number | null;
  /** Resolves at the next acknowledgement (or failure). */
  progress(): Promise<void>;
  /** Resolves once fewer than `limit` messages are queued or awaiting acknowledgement. */
  backlogBelow(limit: number): Promise<void>;
  /** Delivers what is queued while acknowledgements keep coming (at most `stallMs` without one), then disconnects. */
  close(stallMs: number): Promise<void>;
}

type Publish = Extract<Outgoing, { kind: 'publish' }>;

interface Device {
  id: string;
  deviceClass: DeviceClass;
  client: mqtt.MqttClient | null;
  state: 'idle' | 'connecting' | 'up' | 'down';
  queue: Publish[];
  inFlight: number;
  /** Dropped off the network: its messages do not hold the others back (it back-fills when it is back). */
  down: boolean;
  /** Brings a dropped device back when its outage is over. */
  returnTimer: NodeJS.Timeout | null;
}

const ONLINE = '{"online":true}';
const OFFLINE = '{"online":false}';

export class MqttTransport implements Transport {
  readonly stats: TransportStats = { connected: 0, acknowledged: 0, failed: 0, queued: 0, inFlight: 0, connects: 0, connectFailures: 0, lastError: null };
  private readonly devices = new Map<string, Device>();
  private readonly waitingToConnect: Device[] = [];
  /** Connected devices with messages held back only by the in-flight limit. */
  private readonly blocked = new Set<Device>();
  private connecting = 0;
  private closing = false;
  private readonly drainWaiters: (() => void)[] = [];
  /** Messages queued or in flight, by the simulated minute they were sent in. */
  private readonly pendingByMinute = new Map<number, number>();

  constructor(private readonly options: TransportOptions) {}

  send(message: Outgoing): void {
    const device = this.device(message.deviceId, message.deviceClass);
    if (message.kind === 'reconnect') return this.drop(device, message.downForMs);
    device.queue.push(message);
    this.stats.queued++;
    if (!device.down) this.account(message, 1);
    this.pump(device);
  }

  private account(message: Publish, delta: number): void {
    const minute = Math.floor(message.at / 60_000);
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
   * (gives up after `stallMs` without one), then says offline and disconnects.
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
    await Promise.all(
      [...this.devices.values()].map(async (device) => {
        const client = device.client;
        if (!client) return;
        if (device.state === 'up' && device.deviceClass !== 'bins') {
          await client.publishAsync(topics.status(device.deviceClass, device.id), OFFLINE, { qos: 1, retain: true }).catch(() => undefined);
        }
        await client.endAsync(true).catch(() => undefined);
      }),
    );
  }

  private device(id: string, deviceClass: DeviceClass): Device {
    let device = this.devices.get(id);
    if (!device) {
      device = { id, deviceClass, client: null, state: 'idle', queue: [], inFlight: 0, down: false, returnTimer: null };
      this.devices.set(id, device);
    }
    return device;
  }

  private pump(device: Device): void {
    if (this.closing) return;
    if (device.state === 'idle') {
      device.state = 'connecting';
      this.waitingToConnect.push(device);
      this.connectNext();
      return;
    }
    if (device.state !== 'up') return;
    while (device.queue.length > 0 && this.stats.inFlight < this.options.maxInFlight) this.publish(device, device.queue.shift()!);
    if (device.queue.length > 0) this.blocked.add(device);
    else this.blocked.delete(device);
    // A sleeping sensor goes back to sleep once its reports are through.
    if (device.deviceClass === 'bins' && device.queue.length === 0 && device.inFlight === 0) this.disconnect(device);
  }

  private publish(device: Device, message: Publish): void {
    const client = device.client!;
    this.stats.queued--;
    this.stats.inFlight++;
    device.inFlight++;
    client.publish(topics.data(device.deviceClass, device.id), JSON.stringify(message.payload), { qos: 1 }, (error) => {
      this.stats.inFlight--;
      device.inFlight--;
      if (error) {
        // Not acknowledged: sent again once the device is back.
        device.queue.unshift(message);
        this.stats.queued++;
        if (device.down) this.account(message, -1);
        this.stats.failed++;
        this.stats.lastError = error.message;
      } else {
        this.stats.acknowledged++;
        if (!device.down) this.account(message, -1);
      }
      this.wakeWaiters();
      this.pump(device);
      // Capacity freed: let devices held back by the limit go on.
      for (const d of this.blocked) {
        if (this.stats.inFlight >= this.options.maxInFlight) break;
        if (d.state === 'up') this.pump(d);
        else this.blocked.delete(d);
      }
    });
  }

  private connectNext(): void {
    while (this.connecting < this.options.maxConnecting && this.waitingToConnect.length > 0 && !this.closing) {
      const device = this.waitingToConnect.shift()!;
      this.connecting++;
      this.connect(device);
    }
  }

  private connect(device: Device): void {
    const persistent = device.deviceClass !== 'bins';
    const statusTopic = topics.status(device.deviceClass, device.id);
    const client = mqtt.connect(this.options.url, {
      username: device.id,
      password: this.options.secret,
      clientId: device.id,
      clean: true,
      reconnectPeriod: 0,
      connectTimeout: 30_000,
      keepalive: 60,
      // The embedded broker sets this will itself; an external broker takes it from here.
      will: persistent ? { topic: statusTopic, payload: Buffer.from(OFFLINE), qos: 1, retain: true } : undefined,
    });
    device.client = client;
    this.stats.connects++;
    let settled = false;
    const settle = () => {
      if (settled) return;
      settled = true;
      this.connecting--;
      this.connectNext();
    };
    client.once('connect', () => {
      settle();
      device.state = 'up';
      this.stats.connected++;
      if (persistent) client.publish(statusTopic, ONLINE, { qos: 1, retain: true });
      this.pump(device);
    });
    client.on('error', (error) => {
      this.stats.lastError = `${device.id}: ${error.message}`;
    });
    client.once('close', () => {
      if (!settled) this.stats.connectFailures++;
      settle();
      if (device.client !== client) return;
      if (device.state === 'up') this.stats.connected--;
      // Flushes unacknowledged publishes back into the queue through their callbacks.
      client.end(true);
      device.client = null;
      if (device.state === 'down') return;
      device.state = 'idle';
      if (device.queue.length > 0 && !this.closing) {
        // Lost the connection (or could not connect): try again shortly.
        device.state = 'down';
        setTimeout(() => {
          device.state = 'idle';
          this.pump(device);
        }, 1000 + Math.random() * 2000).unref();
      }
    });
  }

  /** A dropped connection (noise): cut without DISCONNECT, so the broker publishes the will; back after a while. */
  private drop(device: Device, downForMs: number): void {
    if (device.state !== 'up' || !device.client) return;
    device.state = 'down';
    device.down = true;
    for (const message of device.queue) this.account(message, -1);
    this.stats.connected--;
    device.client.stream.destroy();
    device.returnTimer = setTimeout(() => this.back(device), downForMs);
    device.returnTimer.unref();
  }

  /** Ends a device's outage: it connects again and sends what it queued meanwhile. */
  private back(device: Device): void {
    if (device.returnTimer) clearTimeout(device.returnTimer);
    device.returnTimer = null;
    device.state = 'idle';
    device.down = false;
    for (const message of device.queue) this.account(message, 1);
    this.pump(device);
  }

  private disconnect(device: Device): void {
    const client = device.client;
    if (!client) return;
    device.state = 'idle';
    device.client = null;
    this.stats.connected--;
    client.end(false);
  }

  private wakeWaiters(): void {
    for (const resolve of this.drainWaiters.splice(0)) resolve();
  }
}

/**
 * Trucks over one transport, bins and weighbridges over another (trucks over JT/T 808, the rest
 * over MQTT), seen by the run loop as one: stats added up, the oldest pending message of both.
 */
export class ByClassTransport implements Transport {
  private closing = false;

  constructor(
    private readonly trucks: Transport,
    private readonly others: Transport,
  ) {}

  get stats(): TransportStats {
    const a = this.trucks.stats;
    const b = this.others.stats;
    return {
      connected: a.connected + b.connected,
      acknowledged: a.acknowledged + b.acknowledged,
      failed: a.failed + b.failed,
      queued: a.queued + b.queued,
      inFlight: a.inFlight + b.inFlight,
      connects: a.connects + b.connects,
      connectFailures: a.connectFailures + b.connectFailures,
      lastError: a.lastError ?? b.lastError,
    };
  }

  send(message: Outgoing): void {
    (message.deviceClass === 'trucks' ? this.trucks : this.others).send(message);
  }

  oldestPendingAt(): number | null {
    const times = [this.trucks.oldestPendingAt(), this.others.oldestPendingAt()].filter((t) => t !== null);
    return times.length > 0 ? Math.min(...times) : null;
  }

  async progress(): Promise<void> {
    // Only a transport with something pending will make progress; one with nothing would resolve at once.
    const busy = [this.trucks, this.others].filter((t) => t.stats.queued + t.stats.inFlight > 0);
    if (busy.length > 0 && !this.closing) await Promise.race(busy.map((t) => t.progress()));
  }

  async backlogBelow(limit: number): Promise<void> {
    while (!this.closing) {
      const { queued, inFlight } = this.stats;
      if (queued + inFlight < limit) return;
      await this.progress();
    }
  }

  async close(stallMs: number): Promise<void> {
    this.closing = true;
    await Promise.all([this.trucks.close(stallMs), this.others.close(stallMs)]);
  }
}

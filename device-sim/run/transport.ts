// Publishes the simulation's messages as the devices themselves: each logs in with its own id and
// secret. Truck terminals and weighbridges hold a connection (with a retained online status and an
// offline will); bin sensors sleep between reports, so they connect, publish and disconnect, as
// NB-IoT sensors do. Everything is QoS 1; a message is only counted sent once the broker has
// acknowledged it, and one that fails is queued again, so nothing is lost on a broker restart.
import mqtt from 'mqtt';
import { topics, type DeviceClass } from '../../services/contract/topics.ts';
import type { Outgoing } from '../engine/noise.ts';
import { DeliveryQueue, type QueuedDevice } from './delivery-queue.ts';

export interface TransportOptions {
  /**
   * The broker; or several, comma-separated (the nodes of a RabbitMQ cluster): devices are spread
   * over them and move on to the next when a connection fails or drops, as devices given all of a
   * cluster's addresses do.
   */
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

/** What the run loop needs of a transport: MqttTransport, Jt808Transport (jt808-transport.ts), ChirpstackTransport (chirpstack-transport.ts), or several (ByClassTransport). */
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

interface Device extends QueuedDevice {
  id: string;
  deviceClass: DeviceClass;
  client: mqtt.MqttClient | null;
  queue: Publish[];
  inFlight: number;
  /** Which of the brokers it connects to. */
  broker: number;
}

const ONLINE = '{"online":true}';
const OFFLINE = '{"online":false}';

export class MqttTransport extends DeliveryQueue<Device> {
  private readonly brokers: string[];

  constructor(private readonly options: TransportOptions) {
    super(options);
    this.brokers = options.url.split(',').map((url) => url.trim()).filter((url) => url !== '');
  }

  send(message: Outgoing): void {
    const device = this.device(message.deviceId, message.deviceClass);
    if (message.kind === 'reconnect') return this.drop(device, message.downForMs);
    device.queue.push(message);
    this.stats.queued++;
    if (!device.down) this.countPending(message.at, 1);
    this.pump(device);
  }

  protected countQueued(device: Device, counted: boolean): void {
    for (const message of device.queue) this.countPending(message.at, counted ? 1 : -1);
  }

  /** Says offline and disconnects. */
  protected async disconnectAll(): Promise<void> {
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
      device = { id, deviceClass, client: null, state: 'idle', queue: [], inFlight: 0, down: false, returnTimer: null, broker: this.devices.size % this.brokers.length };
      this.devices.set(id, device);
    }
    return device;
  }

  protected deliver(device: Device): void {
    while (device.queue.length > 0 && this.roomInFlight()) this.publish(device, device.queue.shift()!);
    this.holdBack(device, device.queue.length > 0);
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
        if (device.down) this.countPending(message.at, -1);
        this.stats.failed++;
        this.stats.lastError = error.message;
      } else {
        this.stats.acknowledged++;
        if (!device.down) this.countPending(message.at, -1);
      }
      this.afterAnswer(device);
    });
  }

  protected connect(device: Device): void {
    const persistent = device.deviceClass !== 'bins';
    const statusTopic = topics.status(device.deviceClass, device.id);
    const client = mqtt.connect(this.brokers[device.broker]!, {
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
      this.connectEnded();
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
      const wasDown = device.state === 'down';
      // Off this client before its callbacks run: a publish they set off on it would be kept by
      // mqtt.js for a reconnect that never comes, its callback never called.
      device.client = null;
      device.state = 'down';
      // Flushes unacknowledged publishes back into the queue through their callbacks.
      client.end(true);
      if (wasDown) return;
      // Refused or lost (not a disconnect of ours, nor the noise's): the next broker, if several.
      device.broker = (device.broker + 1) % this.brokers.length;
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
    this.goDown(device, downForMs);
    device.client.stream.destroy();
  }

  private disconnect(device: Device): void {
    const client = device.client;
    if (!client) return;
    device.state = 'idle';
    device.client = null;
    this.stats.connected--;
    client.end(false);
  }
}

/** A transport per device class; the classes not named go to the default one. */
export type ClassRoutes = Partial<Record<DeviceClass, Transport>>;

/**
 * Devices of some classes over their own transports, the rest over a default one (trucks over
 * JT/T 808, bins over ChirpStack, weighbridges over MQTT), seen by the run loop as one: stats
 * added up, the oldest pending message of all. `new ByClassTransport(trucks, others)` sends the
 * trucks one way and the rest the other.
 */
export class ByClassTransport implements Transport {
  private closing = false;
  private readonly routes: ClassRoutes;
  /** Every transport once, the default last. */
  private readonly all: Transport[];

  constructor(
    routes: Transport | ClassRoutes,
    private readonly others: Transport,
  ) {
    this.routes = 'send' in routes ? { trucks: routes as Transport } : (routes as ClassRoutes);
    this.all = [...new Set([...Object.values(this.routes), others])];
  }

  get stats(): TransportStats {
    const sum = (key: Exclude<keyof TransportStats, 'lastError'>) => this.all.reduce((n, t) => n + t.stats[key], 0);
    return {
      connected: sum('connected'),
      acknowledged: sum('acknowledged'),
      failed: sum('failed'),
      queued: sum('queued'),
      inFlight: sum('inFlight'),
      connects: sum('connects'),
      connectFailures: sum('connectFailures'),
      lastError: this.all.map((t) => t.stats.lastError).find((e) => e !== null) ?? null,
    };
  }

  send(message: Outgoing): void {
    (this.routes[message.deviceClass] ?? this.others).send(message);
  }

  oldestPendingAt(): number | null {
    const times = this.all.map((t) => t.oldestPendingAt()).filter((t) => t !== null);
    return times.length > 0 ? Math.min(...times) : null;
  }

  async progress(): Promise<void> {
    // Only a transport with something pending will make progress; one with nothing would resolve at once.
    const busy = this.all.filter((t) => t.stats.queued + t.stats.inFlight > 0);
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
    await Promise.all(this.all.map((t) => t.close(stallMs)));
  }
}

// Sends the simulated bins' readings as LoRaWAN uplinks reach the service: through a network
// server, here ChirpStack v4's MQTT integration played by the simulator. One MQTT connection, as
// ChirpStack's integration holds, publishes each reading as a ChirpStack `up` event in its JSON
// encoding (chirpstack.io/docs/chirpstack/integrations/events.html, "up - Uplink event") on
// application/{applicationId}/device/{devEui}/event/up at QoS 1, which the service's LoRaWAN bridge
// (services/lorawan/bridge.ts) reads from the same broker. A sensor's first uplink of the run is
// preceded by its `join` event: each run is a new session, its frame counter from 0.
//
// The payload is what the sensor sends: a Milesight EM400-UDL's channel frame (battery %,
// temperature, distance, position; no lid counter), or, for a sensor without a model, the
// simulator's own frame, which the device profile's codec (WASTE_SIM_CODEC) turns into an `object`
// carrying the contract's field names. As with MqttTransport, an event counts as sent only once the
// broker has acknowledged it (PUBACK), and one that is not is kept and published again, byte for
// byte (the same deduplicationId, so the bridge takes it once), once the connection is back.
import crypto from 'node:crypto';
import mqtt from 'mqtt';
import { parseTimestamp } from '../../services/contract/timestamps.ts';
import { SIM_LORAWAN_MODEL } from '../city/lorawan.ts';
import type { Outgoing } from '../engine/noise.ts';
import { TRUTH } from '../world/thresholds.ts';
import { DeliveryQueue, type QueuedDevice } from './delivery-queue.ts';

/** A bin sensor as its network server knows it. */
export interface LorawanSensor {
  deviceId: string;
  /** 16 hex digits. */
  devEui: string;
  /** A model whose frames the simulator can send (SENSOR_FRAMES), or null: the simulator's frame and the codec's object. */
  model: string | null;
  /** The bin's depth, to send a fill level as the distance an ultrasonic sensor measures. */
  depthMm: number;
}

export interface ChirpstackTransportOptions {
  /** mqtt://host:port of the broker ChirpStack's MQTT integration publishes to. */
  url: string;
  username?: string;
  password?: string;
  sensors: ReadonlyMap<string, LorawanSensor>;
  /** Tenant, application and device profiles: from the city's seed, the same every run (networkOf). */
  network: ChirpstackNetwork;
  /** Events awaiting their PUBACK at once. */
  maxInFlight: number;
  /** Wait before connecting again after a lost connection, a random time in [min, max) ms (default 1-3 s). */
  reconnectDelayMs?: [number, number];
}

/** What a ChirpStack event's deviceInfo says besides the device. */
export interface ChirpstackNetwork {
  tenantId: string;
  tenantName: string;
  applicationId: string;
  applicationName: string;
  /** Device profile by sensor model ('' for the sensors without one). */
  profiles: Record<string, { id: string; name: string }>;
}

/**
 * The application port of the simulator's own frame (sensors without a model). Milesight sensors
 * send on 85 (the port of Milesight's examples in The Things Network's device repository).
 */
export const WASTE_SIM_FPORT = 10;
const MILESIGHT_FPORT = 85;

/** A simulated bin reading: the MQTT contract's fields as bin-sensor.ts makes them, ts stamped by the noise. */
type Reading = Record<string, unknown>;

/** What a sensor model sends: its frame for a reading, and whether it counts lid openings. */
interface SensorFrame {
  fPort: number;
  encode(reading: Reading, sensor: LorawanSensor): Buffer;
  countsLidOpens: boolean;
}

/** The battery percent an EM400-UDL reports for a voltage: 3.1 V empty, 4.1 V full; 3.3 V is 20 %, 3.4 V 30 % (rules.lowBatteryPct and batteryRecoveredPct, as lowBatteryV and batteryRecoveredV). */
export function batteryPctOf(volts: number): number {
  return Math.min(100, Math.max(0, Math.round((volts - 3.1) * 100)));
}

/** The distance an ultrasonic sensor at the rim measures for a reading: as sent, or from the fill level and the bin's depth. */
export function distanceOf(reading: Reading, depthMm: number): number {
  if (typeof reading.distance_mm === 'number') return reading.distance_mm;
  return Math.round(depthMm * (1 - (reading.fill_pct as number) / 100));
}

/**
 * A Milesight EM400-UDL uplink (Milesight-IoT/SensorDecoders em-series/em400-udl README "Payload",
 * what services/lorawan/decoders/milesight-em400-udl.ts reads): battery 0x01 0x75 (uint8 %),
 * temperature 0x03 0x67 (int16 LE, 0.1 °C), distance 0x04 0x82 (uint16 LE, mm), position 0x05 0x00
 * (0 normal, 1 tilt: tilted more than rules.tiltDeg). No lid counter, no RSSI of its own (the
 * gateways measure it).
 */
export function em400Frame(reading: Reading, sensor: Pick<LorawanSensor, 'depthMm'>): Buffer {
  const frame = Buffer.alloc(14);
  frame.writeUInt8(0x01, 0);
  frame.writeUInt8(0x75, 1);
  frame.writeUInt8(batteryPctOf(reading.battery_v as number), 2);
  frame.writeUInt8(0x03, 3);
  frame.writeUInt8(0x67, 4);
  frame.writeInt16LE(clamp(Math.round((reading.temp_c as number) * 10), -0x8000, 0x7fff), 5);
  frame.writeUInt8(0x04, 7);
  frame.writeUInt8(0x82, 8);
  frame.writeUInt16LE(clamp(distanceOf(reading, sensor.depthMm), 0, 0xffff), 9);
  frame.writeUInt8(0x05, 11);
  frame.writeUInt8(0x00, 12);
  frame.writeUInt8((reading.tilt_deg as number) > TRUTH.tiltDeg ? 1 : 0, 13);
  return frame;
}

/**
 * The simulator's own frame, for sensors without a model: 11 bytes, big-endian. Byte 0 flags (bit 0:
 * the level is a fill level, else a distance), 1-2 the level (fill in 0.1 %, or distance in mm),
 * 3-4 temperature (int16, 0.1 °C), 5-6 tilt (0.1°), 7-8 battery (mV), 9-10 lid openings since the
 * previous reading. WASTE_SIM_CODEC decodes it.
 */
export function wasteSimFrame(reading: Reading): Buffer {
  const frame = Buffer.alloc(11);
  const fill = typeof reading.fill_pct === 'number';
  frame.writeUInt8(fill ? 1 : 0, 0);
  frame.writeUInt16BE(clamp(fill ? Math.round((reading.fill_pct as number) * 10) : (reading.distance_mm as number), 0, 0xffff), 1);
  frame.writeInt16BE(clamp(Math.round((reading.temp_c as number) * 10), -0x8000, 0x7fff), 3);
  frame.writeUInt16BE(clamp(Math.round((reading.tilt_deg as number) * 10), 0, 0xffff), 5);
  frame.writeUInt16BE(clamp(Math.round((reading.battery_v as number) * 1000), 0, 0xffff), 7);
  frame.writeUInt16BE(clamp((reading.lid_opens as number | undefined) ?? 0, 0, 0xffff), 9);
  return frame;
}

/**
 * The device-profile codec of the sensors without a model, as it would be pasted into ChirpStack
 * (device profile, Codec, JavaScript functions): the contract's own field names, which the bridge
 * takes from the event's `object` for a device without a sensor model (docs/lorawan.md). The
 * simulated network server makes the object with wasteSimObject, which decodes the same.
 */
export const WASTE_SIM_CODEC = `function decodeUplink(input) {
  var b = input.bytes;
  var u16 = function (i) { return (b[i] << 8) | b[i + 1]; };
  var i16 = function (i) { var v = u16(i); return v > 0x7fff ? v - 0x10000 : v; };
  var data = { temp_c: i16(3) / 10, tilt_deg: u16(5) / 10, battery_v: u16(7) / 1000, lid_opens: u16(9) };
  if (b[0] & 1) data.fill_pct = u16(1) / 10;
  else data.distance_mm = u16(1);
  return { data: data };
}`;

/** What WASTE_SIM_CODEC makes of a frame: the `object` of the up event. */
export function wasteSimObject(frame: Buffer): Record<string, number> {
  const data: Record<string, number> = { temp_c: frame.readInt16BE(3) / 10, tilt_deg: frame.readUInt16BE(5) / 10, battery_v: frame.readUInt16BE(7) / 1000, lid_opens: frame.readUInt16BE(9) };
  if (frame.readUInt8(0) & 1) data.fill_pct = frame.readUInt16BE(1) / 10;
  else data.distance_mm = frame.readUInt16BE(1);
  return data;
}

/** The sensor models the simulator sends real frames of; null: its own frame with the codec. */
const SENSOR_FRAMES: Record<string, SensorFrame> = {
  [SIM_LORAWAN_MODEL]: { fPort: MILESIGHT_FPORT, encode: em400Frame, countsLidOpens: false },
};
const WASTE_SIM_SENSOR: SensorFrame = { fPort: WASTE_SIM_FPORT, encode: wasteSimFrame, countsLidOpens: true };

const frameOf = (model: string | null): SensorFrame => (model === null ? WASTE_SIM_SENSOR : SENSOR_FRAMES[model]!);

/**
 * The bins of a city bundle as LoRaWAN sensors: DevEUI and model from their devices, depth from
 * their bins. Throws, saying what to do, when a bin has no DevEUI (a city generated before bins had
 * one) or a model the simulator cannot send frames of.
 */
export function lorawanSensorsOf(bundle: Record<string, unknown>): Map<string, LorawanSensor> {
  const depths = new Map(((bundle.bins ?? []) as { device_id?: string; depth_mm?: number }[]).map((b) => [b.device_id, b.depth_mm ?? 1000]));
  const sensors = new Map<string, LorawanSensor>();
  const missing: string[] = [];
  for (const device of (bundle.devices ?? []) as { id: string; class: string; lorawan_dev_eui?: string; lorawan_sensor?: string }[]) {
    if (device.class !== 'bins') continue;
    if (!device.lorawan_dev_eui) {
      missing.push(device.id);
      continue;
    }
    const model = device.lorawan_sensor ?? null;
    if (model !== null && !SENSOR_FRAMES[model]) {
      throw new Error(`${device.id} is a ${model}; the simulator sends frames of ${Object.keys(SENSOR_FRAMES).join(', ')} only, or of sensors without a model`);
    }
    sensors.set(device.id, { deviceId: device.id, devEui: device.lorawan_dev_eui.replace(/[-:]/g, '').toUpperCase(), model, depthMm: depths.get(device.id) ?? 1000 });
  }
  if (missing.length > 0) {
    throw new Error(`${missing.length} of the city's ${missing.length + sensors.size} bins have no DevEUI (lorawan_dev_eui); generate the city again (npm run sim -- city) and import it`);
  }
  return sensors;
}

/** The bins whose sensors count no lid openings when they report over LoRaWAN (their frames have no such channel). */
export function withoutLidCounter(sensors: ReadonlyMap<string, LorawanSensor>): Set<string> {
  return new Set([...sensors.values()].filter((s) => !frameOf(s.model).countsLidOpens).map((s) => s.deviceId));
}

/** A UUID made from a name: the same tenant, application and profiles for a city every run. */
function nameUuid(name: string): string {
  const h = crypto.createHash('sha256').update(name).digest();
  h[6] = (h[6]! & 0x0f) | 0x40;
  h[8] = (h[8]! & 0x3f) | 0x80;
  const x = h.subarray(0, 16).toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

/** The city's tenant, application and device profiles in its network server. */
export function networkOf(seed: string | number): ChirpstackNetwork {
  const id = (what: string) => nameUuid(`waste-sim-chirpstack:${seed}:${what}`);
  return {
    tenantId: id('tenant'),
    tenantName: 'waste-sim',
    applicationId: id('application'),
    applicationName: 'waste-sim bins',
    profiles: {
      [SIM_LORAWAN_MODEL]: { id: id(`profile:${SIM_LORAWAN_MODEL}`), name: 'Milesight EM400-UDL' },
      '': { id: id('profile:waste-sim'), name: 'waste-sim bin sensor (contract codec)' },
    },
  };
}

/** One event to publish. */
interface Event {
  /** Order of creation: an event published again goes back where it was. */
  seq: number;
  topic: string;
  json: string;
  /** Simulated time of the message it belongs to (oldestPendingAt). */
  at: number;
  /** The simulated message, for the readings; null for a join. */
  origin: Origin | null;
}

/** One simulated message and how many of its uplinks the broker has yet to acknowledge. */
interface Origin {
  left: number;
}

/** A sensor's session in this run: joined at its first uplink. */
interface Session {
  devAddr: string;
  fCnt: number;
  gatewayId: string;
}

/** The uplink a reading became: delivered again (noise) as the same event. */
interface Uplink {
  topic: string;
  json: string;
}

/** The integration's one connection (DeliveryQueue's only device). */
interface Integration extends QueuedDevice {
  client: mqtt.MqttClient | null;
  queue: Event[];
}

/** CN470 uplink channels of ChirpStack's region cn470_10 (channels 80-87, 486.3-487.7 MHz). */
const CN470_10_MHZ = [486.3, 486.5, 486.7, 486.9, 487.1, 487.3, 487.5, 487.7];
const GATEWAYS = 8;

export class ChirpstackTransport extends DeliveryQueue<Integration> {
  /** Events written: joins, uplinks, uplinks delivered again (noise), and events published again after a failure. */
  readonly events = { join: 0, up: 0, redelivered: 0, republished: 0 };
  private readonly integration: Integration = { state: 'idle', down: false, returnTimer: null, client: null, queue: [] };
  private readonly sessions = new Map<string, Session>();
  private readonly uplinks = new WeakMap<object, Uplink>();
  private readonly clientId = `waste-sim-chirpstack-${crypto.randomBytes(4).toString('hex')}`;
  private readonly reconnectDelayMs: [number, number];
  private seq = 0;

  constructor(private readonly options: ChirpstackTransportOptions) {
    super({ maxInFlight: options.maxInFlight, maxConnecting: 1 });
    if (!/^mqtts?:\/\/[^/\s]+$/.test(options.url.replace(/\/$/, ''))) throw new Error(`the network server's broker must be mqtt://host:port, not ${options.url}`);
    this.reconnectDelayMs = options.reconnectDelayMs ?? [1000, 3000];
    this.devices.set('chirpstack', this.integration);
  }

  send(message: Outgoing): void {
    // A sleeping sensor holds no connection to drop; the noise gives bins none.
    if (message.kind === 'reconnect') return;
    const readings = Array.isArray(message.payload) ? message.payload : [message.payload];
    // A batch (several readings in one message) is several uplinks.
    const origin: Origin = { left: readings.length };
    for (const reading of readings) {
      // The noise delivers a reading twice as the same object: the same uplink, delivered again.
      let uplink = this.uplinks.get(reading);
      if (uplink) this.events.redelivered++;
      else {
        uplink = this.uplink(message.deviceId, reading, message.at);
        this.uplinks.set(reading, uplink);
      }
      this.enqueue(uplink.topic, uplink.json, message.at, origin);
    }
    if (readings.length === 0) this.stats.acknowledged++;
    this.pump(this.integration);
  }

  private sensor(deviceId: string): LorawanSensor {
    const sensor = this.options.sensors.get(deviceId);
    if (!sensor) throw new Error(`${deviceId} has no DevEUI; generate the city again (npm run sim -- city) to give its bins one`);
    return sensor;
  }

  private deviceInfo(sensor: LorawanSensor) {
    const n = this.options.network;
    const profile = n.profiles[sensor.model ?? '']!;
    return {
      tenantId: n.tenantId,
      tenantName: n.tenantName,
      applicationId: n.applicationId,
      applicationName: n.applicationName,
      deviceProfileId: profile.id,
      deviceProfileName: profile.name,
      deviceName: sensor.deviceId,
      devEui: sensor.devEui.toLowerCase(),
      tags: {},
    };
  }

  private topic(sensor: LorawanSensor, event: 'up' | 'join'): string {
    return `application/${this.options.network.applicationId}/device/${sensor.devEui.toLowerCase()}/event/${event}`;
  }

  /** The up event of a reading; the sensor's join first if this is its first uplink of the run. */
  private uplink(deviceId: string, reading: Reading, at: number): Uplink {
    const sensor = this.sensor(deviceId);
    const parsed = parseTimestamp(reading.ts);
    // The network server's receive time: the reading's time (LoRaWAN sensors have no clock).
    const time = parsed.ok ? parsed.ms : at;
    let session = this.sessions.get(deviceId);
    if (!session) {
      // OTAA: a new session, a DevAddr of NetID 000000 (type 0, NwkID 0), the frame counter from 0.
      session = { devAddr: crypto.randomInt(0, 2 ** 25).toString(16).padStart(8, '0'), fCnt: 0, gatewayId: gatewayOf(sensor.devEui) };
      this.sessions.set(deviceId, session);
      const join = { deduplicationId: crypto.randomUUID(), time: chirpstackTime(time - 5000), deviceInfo: this.deviceInfo(sensor), devAddr: session.devAddr };
      this.events.join++;
      this.enqueue(this.topic(sensor, 'join'), JSON.stringify(join), at, null);
    }
    const frame = frameOf(sensor.model);
    const data = frame.encode(reading, sensor);
    const rssi = typeof reading.rssi === 'number' ? reading.rssi : -100;
    const dr = rssi >= -95 ? 5 : rssi >= -100 ? 4 : rssi >= -105 ? 3 : 2;
    const fCnt = session.fCnt++;
    const event: Record<string, unknown> = {
      deduplicationId: crypto.randomUUID(),
      time: chirpstackTime(time),
      deviceInfo: this.deviceInfo(sensor),
      devAddr: session.devAddr,
      adr: true,
      dr,
    };
    // The Protobuf JSON mapping leaves out a field at its default value: fCnt 0 is not written.
    if (fCnt > 0) event.fCnt = fCnt;
    event.fPort = frame.fPort;
    event.data = data.toString('base64');
    // Only the sensors without a model have a codec in their device profile.
    if (sensor.model === null) event.object = wasteSimObject(data);
    event.rxInfo = [
      {
        gatewayId: session.gatewayId,
        uplinkId: crypto.randomInt(0, 2 ** 32),
        rssi,
        snr: Math.round(clamp((rssi + 112) / 2 + crypto.randomInt(-20, 21) / 10, -15, 12) * 10) / 10,
        context: crypto.randomBytes(4).toString('base64'),
        metadata: { region_name: 'cn470_10', region_common_name: 'CN470' },
      },
    ];
    event.txInfo = {
      frequency: Math.round(CN470_10_MHZ[crypto.randomInt(0, CN470_10_MHZ.length)]! * 1_000_000),
      modulation: { lora: { bandwidth: 125_000, spreadingFactor: 12 - dr, codeRate: 'CR_4_5' } },
    };
    this.events.up++;
    return { topic: this.topic(sensor, 'up'), json: JSON.stringify(event) };
  }

  private enqueue(topic: string, json: string, at: number, origin: Origin | null): void {
    this.integration.queue.push({ seq: this.seq++, topic, json, at, origin });
    this.stats.queued++;
    this.countPending(at, 1);
  }

  protected countQueued(integration: Integration, counted: boolean): void {
    for (const event of integration.queue) this.countPending(event.at, counted ? 1 : -1);
  }

  protected deliver(integration: Integration): void {
    while (integration.queue.length > 0 && this.roomInFlight()) this.publish(integration, integration.queue.shift()!);
    this.holdBack(integration, integration.queue.length > 0);
  }

  private publish(integration: Integration, event: Event): void {
    const client = integration.client!;
    this.stats.queued--;
    this.stats.inFlight++;
    client.publish(event.topic, event.json, { qos: 1 }, (error) => {
      this.stats.inFlight--;
      if (error) {
        // Not acknowledged: published again, the same event, once the connection is back.
        this.requeue(integration, event);
        this.stats.failed++;
        this.stats.lastError = error.message;
      } else {
        this.countPending(event.at, -1);
        if (event.origin && --event.origin.left === 0) this.stats.acknowledged++;
      }
      this.afterAnswer(integration);
    });
  }

  /** Puts an event back in its place, so that a join still goes before its sensor's first uplink. */
  private requeue(integration: Integration, event: Event): void {
    const queue = integration.queue;
    let i = 0;
    while (i < queue.length && queue[i]!.seq < event.seq) i++;
    queue.splice(i, 0, event);
    this.stats.queued++;
    this.events.republished++;
  }

  protected connect(integration: Integration): void {
    const client = mqtt.connect(this.options.url, {
      username: this.options.username || undefined,
      password: this.options.password || undefined,
      clientId: this.clientId,
      clean: true,
      reconnectPeriod: 0,
      connectTimeout: 30_000,
      keepalive: 60,
    });
    integration.client = client;
    this.stats.connects++;
    let settled = false;
    const settle = () => {
      if (settled) return;
      settled = true;
      this.connectEnded();
    };
    client.once('connect', () => {
      settle();
      integration.state = 'up';
      this.stats.connected++;
      this.pump(integration);
    });
    client.on('error', (error) => {
      this.stats.lastError = `${this.options.url}: ${error.message}`;
    });
    client.once('close', () => {
      if (!settled) this.stats.connectFailures++;
      settle();
      if (integration.client !== client) return;
      if (integration.state === 'up') this.stats.connected--;
      integration.client = null;
      // Flushes unacknowledged publishes back into the queue through their callbacks; meanwhile
      // nothing is sent (on this client, which fails a publish at once) nor connected.
      integration.state = 'down';
      client.end(true);
      integration.state = 'idle';
      if (integration.queue.length > 0 && !this.closing) {
        // The broker went away (or could not be reached): try again shortly.
        integration.state = 'down';
        const [min, max] = this.reconnectDelayMs;
        setTimeout(
          () => {
            if (integration.state !== 'down') return;
            integration.state = 'idle';
            this.pump(integration);
          },
          min + Math.random() * (max - min),
        ).unref();
      }
    });
  }

  protected async disconnectAll(): Promise<void> {
    const client = this.integration.client;
    this.integration.client = null;
    if (client) await client.endAsync(false).catch(() => undefined);
  }
}

/** ChirpStack's `time`: RFC 3339 in UTC with nanoseconds, as its events write it. */
function chirpstackTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, '.$1000000+00:00');
}

/** The gateway that hears a sensor: one of the city's few, by its DevEUI. */
function gatewayOf(devEui: string): string {
  const index = crypto.createHash('sha256').update(devEui).digest().readUInt8(0) % GATEWAYS;
  return `025753fffe${index.toString(16).padStart(6, '0')}`;
}

function clamp(value: number, min: number, max: number): number {
  return Math.min(max, Math.max(min, value));
}

// The LoRaWAN bridge: a source of the pipeline (contract/source.ts) for bin sensors that speak
// LoRaWAN. They never reach the service themselves: their uplinks arrive at a network server
// (ChirpStack v4, The Things Stack v3), which publishes them on its own MQTT broker in its own
// JSON. The bridge holds a session on each configured network server's broker, takes each event
// (chirpstack.ts, tts.ts), finds the sensor by its DevEUI in the registry, decodes the payload
// with the decoder of the sensor's model (decoders/), and hands the pipeline a bin reading as the
// MQTT contract has it (waste/bins/{deviceId}/telemetry), timed by the network server's receive
// time: sensors have no clock. docs/lorawan.md says how to set it up.
//
// Acknowledged once durable: on ChirpStack's broker the session is persistent at QoS 1, and an
// event is acknowledged only once its reading is in the spool (ingest/durable-subscription.ts).
// The Things Stack publishes at QoS 0 only: what it sends while the bridge is away is lost, and
// the frame counter's gaps count it (stats.missing).
import type { Logger } from 'pino';
import type { LorawanConfig, NetworkServerConfig } from '../config/schema.ts';
import type { RejectReason } from '../contract/rejections.ts';
import type { Intake, Source } from '../contract/source.ts';
import { topics } from '../contract/topics.ts';
import { DurableSubscription, roomInSpool } from '../ingest/durable-subscription.ts';
import { CHIRPSTACK_TOPICS, parseChirpstackEvent } from './chirpstack.ts';
import { decoderFor } from './decoders/index.ts';
import { describeValue, type BinFields, type DecodeResult } from './decoders/decoder.ts';
import type { LorawanDirectory, LorawanRecord } from './directory.ts';
import type { NetworkEvent, Uplink } from './events.ts';
import { TTS_TOPICS, parseTtsEvent } from './tts.ts';
import { UplinkTracker } from './uplinks.ts';

export type NetworkServerStats = {
  /** Uplinks made readings, durable in the spool. */
  readings: number;
  /** Uplinks delivered again and taken once (a re-delivery, a second gateway path). */
  duplicates: number;
  /** Uplinks the frame counters say were sent and have not arrived (QoS 0 while away, radio loss); falls when a late one comes. */
  missing: number;
  counterResets: number;
  /** Well-formed uplinks without a measurement (device information, configuration answers). */
  withoutReading: number;
  joins: number;
  statuses: number;
  /** Events the bridge does not use (acknowledgements, logs, locations). */
  otherEvents: number;
  /** Events refused, whatever the reason (also counted by reason in the ingest's rejections). */
  rejected: number;
};

/** How long a battery level from a ChirpStack status event is added to readings that carry none. */
const STATUS_BATTERY_MAX_AGE_MS = 24 * 3600_000;
/** Waits between attempts to reach a network server that could not be reached or refused the bridge. */
const RETRY_MS = [5_000, 15_000, 60_000];

const CONTRACT_FIELDS = ['distance_mm', 'fill_pct', 'temp_c', 'tilt_deg', 'tilted', 'battery_v', 'battery_pct', 'lid_opens'] as const;

type Refuse = (reason: RejectReason, message: string, deviceId?: string | null) => void;

interface Server {
  config: NetworkServerConfig;
  subscription: DurableSubscription;
  stats: NetworkServerStats;
  parse(topic: string, json: unknown): NetworkEvent;
  retry: NodeJS.Timeout | null;
  attempts: number;
}

export class LorawanBridge implements Source {
  readonly name = 'lorawan';
  private readonly servers: Server[];
  private readonly tracker: UplinkTracker;
  private intake: Intake | null = null;
  private stopping = false;
  /** The registry's LoRaWAN sensors by DevEUI; null after a registry change, read again when needed. */
  private sensors: Map<string, LorawanRecord> | null = null;
  /** Battery levels from status events, by device, with the network server's time of the status. */
  private readonly batteries = new Map<string, { pct: number; at: number }>();
  /** Uplinks being made durable, by device and uplink key. */
  private readonly inProgress = new Map<string, Promise<void>>();

  constructor(
    private readonly deps: { config: LorawanConfig; directory: LorawanDirectory; log: Logger },
  ) {
    this.tracker = new UplinkTracker(deps.config.duplicateMemory);
    this.servers = deps.config.networkServers.map((config) => this.server(config));
  }

  /** Counts per network server, by name. */
  stats(): Record<string, NetworkServerStats> {
    return Object.fromEntries(this.servers.map((s) => [s.config.name, { ...s.stats }]));
  }

  /**
   * Connects to every network server. One that cannot be reached does not hold up the others or
   * the service: it is said why, and tried again (5 s, 15 s, then every minute).
   */
  async start(intake: Intake): Promise<void> {
    this.intake = intake;
    this.deps.directory.onChange(() => {
      this.sensors = null;
    });
    await Promise.all(this.servers.map((server) => this.connect(server)));
  }

  async stop(): Promise<void> {
    this.stopping = true;
    for (const server of this.servers) if (server.retry) clearTimeout(server.retry);
    await Promise.all(this.servers.map((server) => server.subscription.stop()));
  }

  private server(config: NetworkServerConfig): Server {
    const chirpstack = config.kind === 'chirpstack';
    const subscription = new DurableSubscription(
      {
        url: config.url,
        clientId: config.clientId || `waste-lorawan-${config.name}`,
        username: config.username,
        password: config.password,
        subscriptions: config.topics ?? (chirpstack ? CHIRPSTACK_TOPICS : TTS_TOPICS),
        // The Things Stack's MQTT server takes QoS 0 subscriptions only (its docs, "MQTT Server").
        qos: chirpstack ? 1 : 0,
        label: `network server ${config.name}`,
        loginHint: `are the url, username and password of lorawan.networkServers "${config.name}" right`,
        aclHint: chirpstack
          ? `its ACL must let ${config.username || 'the bridge'} read application/#`
          : 'the API key must have the right to read application traffic',
        // The frame counters are counted in the order uplinks become durable (UplinkTracker).
        oneAtATime: true,
        // An event over lorawan.maxEventBytes is refused either way; one far over it is not read.
        maxPacketBytes: this.deps.config.maxEventBytes + 2 + 65_535 + 2,
        refuseOversized: ({ topic, bytes }) => {
          server.stats.rejected++;
          this.intake?.reject({ reason: 'payload_too_large', message: `event of ${bytes} bytes is larger than lorawan.maxEventBytes (${this.deps.config.maxEventBytes})`, deviceId: null, topic: `lorawan/${config.name}/${topic}`, receivedAt: Date.now() });
        },
      },
      (topic, payload) => this.handle(server, topic, payload),
      this.deps.log.child({ networkServer: config.name }),
    );
    const server: Server = {
      config,
      subscription,
      stats: { readings: 0, duplicates: 0, missing: 0, counterResets: 0, withoutReading: 0, joins: 0, statuses: 0, otherEvents: 0, rejected: 0 },
      parse: chirpstack ? parseChirpstackEvent : parseTtsEvent,
      retry: null,
      attempts: 0,
    };
    return server;
  }

  private async connect(server: Server): Promise<void> {
    try {
      await server.subscription.start();
      server.attempts = 0;
    } catch (error) {
      if (this.stopping) return;
      const waitMs = RETRY_MS[Math.min(server.attempts++, RETRY_MS.length - 1)]!;
      this.deps.log.error({ networkServer: server.config.name, url: server.config.url, retryInS: waitMs / 1000 }, `${(error as Error).message}; trying again in ${waitMs / 1000} s`);
      server.retry = setTimeout(() => {
        server.retry = null;
        if (!this.stopping) void this.connect(server);
      }, waitMs);
      server.retry.unref();
    }
  }

  /**
   * One event from a network server; resolves once what it carries is durable (or refused).
   * Rejects only when the pipeline could not make a reading durable: then the event is not
   * acknowledged (durable-subscription.ts tries again). Anything else that fails is refused and
   * acknowledged: an event the bridge cannot take would otherwise come back for ever and hold the
   * network server's stream behind it.
   */
  private async handle(server: Server, topic: string, payload: Buffer): Promise<void> {
    const intake = this.intake!;
    const receivedAt = Date.now();
    const refuse: Refuse = (reason, message, deviceId = null) => {
      server.stats.rejected++;
      intake.reject({ reason, message, deviceId, topic: `lorawan/${server.config.name}/${topic}`, receivedAt });
    };
    let work: (() => Promise<void>) | null;
    try {
      work = this.take(server, topic, payload, refuse);
    } catch (error) {
      return refuse('unprocessable', `the event made the bridge fail (${(error as Error).message})`);
    }
    if (work) await work();
  }

  /** Parses, checks and decodes an event; returns what is left to do once it is a reading (making it durable), or null. */
  private take(server: Server, topic: string, payload: Buffer, refuse: Refuse): (() => Promise<void>) | null {
    if (payload.length > this.deps.config.maxEventBytes) {
      refuse('payload_too_large', `event of ${payload.length} bytes is larger than lorawan.maxEventBytes (${this.deps.config.maxEventBytes})`);
      return null;
    }
    let json: unknown;
    try {
      json = JSON.parse(payload.toString('utf8'));
    } catch {
      const hint = server.config.kind === 'chirpstack' ? ' (is the MQTT integration set to JSON? chirpstack.toml [integration.mqtt] json = true)' : '';
      refuse('invalid_json', `the event is not JSON${hint}`);
      return null;
    }
    const event = server.parse(topic, json);
    if (event.kind === 'invalid') {
      refuse('invalid_event', event.message);
      return null;
    }
    if (event.kind === 'other') {
      server.stats.otherEvents++;
      return null;
    }
    const sensor = this.sensor(event.devEui);
    if (!sensor) {
      refuse('unknown_dev_eui', `DevEUI ${event.devEui} belongs to no device; provision it on a bins device (lorawan_dev_eui)`);
      return null;
    }
    if (!sensor.enabled) {
      refuse('device_disabled', `device ${sensor.deviceId} (DevEUI ${event.devEui}) is disabled`, sensor.deviceId);
      return null;
    }
    if (event.kind === 'join') {
      server.stats.joins++;
      this.tracker.joined(sensor.deviceId);
      return null;
    }
    if (event.kind === 'status') {
      server.stats.statuses++;
      // Mains-powered, or unable to measure: an earlier level says nothing any more.
      if (event.batteryPct === null) this.batteries.delete(sensor.deviceId);
      else this.batteries.set(sensor.deviceId, { pct: event.batteryPct, at: event.at });
      return null;
    }
    return this.uplink(server, sensor, event, topic, refuse);
  }

  private uplink(server: Server, sensor: LorawanRecord, uplink: Uplink, topic: string, refuse: Refuse): (() => Promise<void>) | null {
    const key = `${sensor.deviceId}\n${uplink.uplinkKey}`;
    const pending = this.inProgress.get(key);
    // The same uplink, still being made durable: delivered again after a reconnect while the
    // first delivery waits for room in the spool, or read through a second network-server
    // connection. Acknowledged once the first is durable; taken again only if that failed.
    if (pending) {
      return async () => {
        await pending.catch(() => undefined);
        if (this.tracker.seen(sensor.deviceId, uplink.uplinkKey)) server.stats.duplicates++;
        else await this.durable(server, sensor, uplink, topic, refuse)?.();
      };
    }
    if (this.tracker.seen(sensor.deviceId, uplink.uplinkKey)) {
      server.stats.duplicates++;
      return null;
    }
    return this.durable(server, sensor, uplink, topic, refuse);
  }

  /** Decodes an uplink; returns the work of making its reading durable, or null when it makes none. */
  private durable(server: Server, sensor: LorawanRecord, uplink: Uplink, topic: string, refuse: Refuse): (() => Promise<void>) | null {
    const decoded = uplink.fPort === 0 ? ({ kind: 'no_reading', what: 'MAC commands only (fPort 0)' } as const) : this.decode(sensor, uplink);
    if (decoded.kind === 'invalid') {
      refuse('undecodable', `device ${sensor.deviceId} (${sensor.sensor ?? 'no sensor model'}), fPort ${uplink.fPort}: ${decoded.reason}`, sensor.deviceId);
      return null;
    }
    if (decoded.kind === 'no_reading') {
      server.stats.withoutReading++;
      this.deps.log.debug({ deviceId: sensor.deviceId, fPort: uplink.fPort, what: decoded.what, topic }, 'uplink without a measurement');
      this.counted(server, sensor, uplink);
      return null;
    }
    const message = { topic: topics.data('bins', sensor.deviceId), payload: Buffer.from(JSON.stringify(this.reading(sensor, uplink, decoded.fields))), receivedAt: Date.now() };
    const key = `${sensor.deviceId}\n${uplink.uplinkKey}`;
    return async () => {
      const intake = this.intake!;
      const done = (async () => {
        await roomInSpool(intake, () => this.stopping, this.deps.log);
        const outcome = await intake.ingest(message);
        // A reading the validator refused (out of range, too old) is counted and reported there.
        if (outcome.accepted > 0) server.stats.readings++;
        else server.stats.rejected++;
        this.counted(server, sensor, uplink);
      })();
      this.inProgress.set(key, done);
      try {
        await done;
      } finally {
        if (this.inProgress.get(key) === done) this.inProgress.delete(key);
      }
    };
  }

  /** Records an uplink taken, and what its frame counter says of the uplinks before it. */
  private counted(server: Server, sensor: LorawanRecord, uplink: Uplink): void {
    const gap = this.tracker.taken(sensor.deviceId, uplink.uplinkKey, uplink.fCnt);
    server.stats.missing += gap.missing;
    if (gap.reset) server.stats.counterResets++;
    if (gap.missing > 0) this.deps.log.info({ deviceId: sensor.deviceId, fCnt: uplink.fCnt, missing: gap.missing, networkServer: server.config.name }, 'uplinks missing before this one (frame counter gap)');
  }

  /**
   * The codec's object when the network server sent one and the sensor's decoder reads it; the
   * payload bytes otherwise. Without a sensor model the object must carry the contract's fields.
   */
  private decode(sensor: LorawanRecord, uplink: Uplink): DecodeResult {
    const decoder = sensor.sensor === null ? undefined : decoderFor(sensor.sensor);
    if (sensor.sensor !== null && !decoder) return { kind: 'invalid', reason: `sensor model ${sensor.sensor} has no decoder in this version` };
    if (!decoder) {
      if (!uplink.object) return { kind: 'invalid', reason: 'the device has no sensor model and the network server sent no decoded object' };
      return contractFields(uplink.object);
    }
    if (uplink.object) {
      // The object of another codec than the vendor's says nothing to this decoder; the bytes may.
      const fromObject = decoder.fromCodecObject(uplink.object);
      if (fromObject.kind === 'reading' || uplink.payload.length === 0) return fromObject;
    }
    return decoder.decode(uplink.fPort, uplink.payload);
  }

  /** The bin reading of the MQTT contract (contract/payloads.ts) for an uplink. */
  private reading(sensor: LorawanRecord, uplink: Uplink, fields: BinFields): Record<string, unknown> {
    const reading: Record<string, unknown> = { ts: uplink.receivedAt, ...fields };
    if (uplink.rssi !== null) reading.rssi = uplink.rssi;
    const battery = this.batteries.get(sensor.deviceId);
    // Both times are the network server's.
    if (fields.battery_v === undefined && fields.battery_pct === undefined && battery && Math.abs(uplink.receivedAt - battery.at) <= STATUS_BATTERY_MAX_AGE_MS) reading.battery_pct = battery.pct;
    return reading;
  }

  private sensor(devEui: string): LorawanRecord | undefined {
    if (!this.sensors) {
      this.sensors = new Map(this.deps.directory.lorawanDevices().map((record) => [record.devEui, record]));
      const provisioned = new Set([...this.sensors.values()].map((record) => record.deviceId));
      this.tracker.retain(provisioned);
      for (const id of this.batteries.keys()) if (!provisioned.has(id)) this.batteries.delete(id);
    }
    return this.sensors.get(devEui);
  }

}

/** An object a network-server codec made in the contract's own field names (a device without a sensor model). */
function contractFields(object: Record<string, unknown>): DecodeResult {
  const fields: Record<string, unknown> = {};
  for (const key of CONTRACT_FIELDS) {
    const value = object[key];
    if (value === undefined) continue;
    // Anything else (a string, an array, an object nested without end) is no value of the contract.
    if (typeof value !== 'number' && typeof value !== 'boolean') return { kind: 'invalid', reason: `the decoded object's ${key} is ${describeValue(value)}, not a number or true/false` };
    fields[key] = value;
  }
  if (fields.distance_mm === undefined && fields.fill_pct === undefined) {
    return { kind: 'invalid', reason: `the decoded object has neither distance_mm nor fill_pct (keys: ${Object.keys(object).slice(0, 8).join(', ') || 'none'})` };
  }
  // Ranges are the validator's to check, as for any MQTT reading.
  return { kind: 'reading', fields: fields as BinFields };
}

// The simulator's ChirpStack MQTT integration (ChirpstackTransport) on a real broker, Debian's
// Mosquitto with the accounts of docs/lorawan.md, read by a client standing in for the bridge: the
// events are what the bridge's parser takes, the frames what the service's decoders read, a
// reading delivered twice is one uplink, a batch several, and nothing is lost when the broker is
// killed mid-run. The whole path through the service is tested in test/device-sim/lorawan-bridge.test.ts.
import vm from 'node:vm';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { binDevEui } from '../../../device-sim/city/lorawan.ts';
import { generateCity } from '../../../device-sim/city/generate.ts';
import { DEFAULT_NOISE, type Outgoing } from '../../../device-sim/engine/noise.ts';
import { Simulation } from '../../../device-sim/engine/simulation.ts';
import {
  ChirpstackTransport,
  WASTE_SIM_CODEC,
  batteryPctOf,
  em400Frame,
  lorawanSensorsOf,
  networkOf,
  wasteSimFrame,
  wasteSimObject,
  withoutLidCounter,
  type LorawanSensor,
} from '../../../device-sim/run/chirpstack-transport.ts';
import { ByClassTransport, type Transport, type TransportStats } from '../../../device-sim/run/transport.ts';
import type { Label } from '../../../device-sim/world/labels.ts';
import { uniformRates } from '../../../device-sim/world/violations.ts';
import { parseChirpstackEvent } from '../../../services/lorawan/chirpstack.ts';
import { milesightEm400Udl } from '../../../services/lorawan/decoders/milesight-em400-udl.ts';
import type { Uplink } from '../../../services/lorawan/events.ts';
import { startTestMosquitto, type TestMosquitto } from '../../helpers/mosquitto.ts';
import { eventually } from '../../helpers/service.ts';

const USERS = { chirpstack: 'ns-secret', 'waste-bridge': 'bridge-secret' };
const ACL = 'user chirpstack\ntopic write application/#\n\nuser waste-bridge\ntopic read application/#\n';
const T0 = Date.UTC(2026, 10, 20, 2, 0, 0);

let broker: TestMosquitto;
beforeAll(async () => {
  broker = await startTestMosquitto(USERS, { acl: ACL, persistence: true });
});
afterAll(async () => {
  await broker?.cleanup();
});

const EM400: LorawanSensor = { deviceId: 'BIN-00002', devEui: binDevEui(1, 2), model: 'milesight-em400-udl', depthMm: 1200 };
const CODEC: LorawanSensor = { deviceId: 'BIN-00001', devEui: binDevEui(1, 1), model: null, depthMm: 1000 };
const sensors = new Map([EM400, CODEC].map((s) => [s.deviceId, s]));
const network = networkOf(1);

const reading = (at: number, fields: Record<string, unknown> = {}) => ({ ts: at, temp_c: 14.3, tilt_deg: 2.1, battery_v: 3.52, rssi: -97, lid_opens: 3, fill_pct: 42.5, ...fields });
const publish = (deviceId: string, at: number, payload: Record<string, unknown> | Record<string, unknown>[]): Outgoing => ({ kind: 'publish', at, deviceId, deviceClass: 'bins', payload });

interface Event {
  topic: string;
  json: Record<string, unknown>;
  parsed: ReturnType<typeof parseChirpstackEvent>;
}

/** A client reading application/# as the bridge does: a persistent session at QoS 1. */
async function bridge(clientId: string): Promise<{ client: MqttClient; events: Event[] }> {
  const events: Event[] = [];
  const client = await mqtt.connectAsync(broker.url, { username: 'waste-bridge', password: USERS['waste-bridge'], clientId, clean: false, reconnectPeriod: 200 });
  client.on('message', (topic, payload) => {
    const json = JSON.parse(payload.toString()) as Record<string, unknown>;
    events.push({ topic, json, parsed: parseChirpstackEvent(topic, json) });
  });
  await client.subscribeAsync('application/#', { qos: 1 });
  return { client, events };
}

const transport = (options: Partial<ConstructorParameters<typeof ChirpstackTransport>[0]> = {}) =>
  new ChirpstackTransport({ url: broker.url, username: 'chirpstack', password: USERS.chirpstack, sensors, network, maxInFlight: 100, reconnectDelayMs: [100, 200], ...options });

describe('the sensors\' frames', () => {
  it('sends an EM400-UDL reading as the frame its decoder reads: battery in percent from the voltage, distance from the fill level, tilt as the position', () => {
    const frame = em400Frame(reading(T0, { tilt_deg: 78.4, battery_v: 3.29 }), EM400);
    expect(frame.toString('hex')).toBe('017513' + '03678f00' + '0482b202' + '050001');
    expect(milesightEm400Udl.decode(85, frame)).toEqual({ kind: 'reading', fields: { battery_pct: 19, temp_c: 14.3, distance_mm: 690, tilted: true } });
    // A distance sensor's distance as it is; normal position.
    expect(milesightEm400Udl.decode(85, em400Frame(reading(T0, { fill_pct: undefined, distance_mm: 1133, temp_c: -3.2 }), EM400))).toEqual({ kind: 'reading', fields: { battery_pct: 42, temp_c: -3.2, distance_mm: 1133, tilted: false } });
  });

  it('reports the battery thresholds in percent where the service\'s defaults in volts are: 3.3 V 20 %, 3.4 V 30 %', () => {
    expect([3.05, 3.1, 3.29, 3.3, 3.39, 3.4, 3.65, 4.3].map(batteryPctOf)).toEqual([0, 0, 19, 20, 29, 30, 55, 100]);
  });

  it('makes the codec\'s object of the simulator\'s own frame in the contract\'s field names, as the JavaScript codec does in ChirpStack', () => {
    const context = vm.createContext({});
    vm.runInContext(WASTE_SIM_CODEC, context);
    const decodeUplink = context.decodeUplink as (input: { bytes: number[]; fPort: number }) => { data: Record<string, number> };
    for (const r of [reading(T0), reading(T0, { fill_pct: undefined, distance_mm: 873, temp_c: -12.5, tilt_deg: 88.9, battery_v: 3.07, lid_opens: 0 })]) {
      const frame = wasteSimFrame(r);
      const object = wasteSimObject(frame);
      expect(decodeUplink({ bytes: [...frame], fPort: 10 }).data).toEqual(object);
      const { ts: _ts, rssi: _rssi, ...fields } = r;
      expect(object).toEqual(Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== undefined)));
    }
  });
});

describe('ChirpstackTransport', () => {
  it('publishes a join, then each reading as an up event the bridge parses: fCnt counting up, a duplicate the same uplink, a batch several', async () => {
    const { client, events } = await bridge('bridge-a');
    const t = transport();
    const first = reading(T0);
    t.send(publish('BIN-00001', T0, first));
    t.send(publish('BIN-00001', T0 + 3000, first));
    t.send(publish('BIN-00002', T0 + 60_000, reading(T0 + 60_000, { tilt_deg: 80 })));
    t.send(publish('BIN-00001', T0 + 600_000, [reading(T0 + 540_000), reading(T0 + 600_000, { fill_pct: 91 })]));
    await eventually(async () => t.stats.acknowledged, (n) => n === 4);
    await t.close(2000);
    await eventually(async () => events.length, (n) => n === 7);
    await client.endAsync();

    expect(events.map((e) => [e.topic.split('/').at(-1), e.parsed.kind])).toEqual([
      ['join', 'join'],
      ['up', 'uplink'],
      ['up', 'uplink'],
      ['join', 'join'],
      ['up', 'uplink'],
      ['up', 'uplink'],
      ['up', 'uplink'],
    ]);
    for (const e of events) expect(e.topic).toBe(`application/${network.applicationId}/device/${(e.json.deviceInfo as { devEui: string }).devEui}/event/${e.topic.split('/').at(-1)}`);
    const ups = events.filter((e) => e.parsed.kind === 'uplink').map((e) => ({ ...e, uplink: e.parsed as Uplink }));
    // The reading delivered twice is one uplink delivered twice: the same event.
    expect(ups[1]!.json).toEqual(ups[0]!.json);
    const codec = ups.filter((u) => u.uplink.devEui === CODEC.devEui);
    // fCnt 0 is left out of the JSON, as the Protobuf JSON mapping does; then 1, 2.
    expect(codec.map((u) => u.json.fCnt)).toEqual([undefined, undefined, 1, 2]);
    expect(new Set(codec.map((u) => u.uplink.uplinkKey)).size).toBe(3);
    expect(codec[0]!.json).toMatchObject({
      time: '2026-11-20T02:00:00.000000000+00:00',
      deviceInfo: { tenantId: network.tenantId, applicationId: network.applicationId, deviceProfileName: 'waste-sim bin sensor (contract codec)', deviceName: 'BIN-00001', devEui: CODEC.devEui.toLowerCase(), tags: {} },
      fPort: 10,
      object: { fill_pct: 42.5, temp_c: 14.3, tilt_deg: 2.1, battery_v: 3.52, lid_opens: 3 },
      rxInfo: [{ rssi: -97 }],
      txInfo: { modulation: { lora: { bandwidth: 125_000 } } },
    });
    expect(codec[0]!.uplink).toMatchObject({ receivedAt: T0, fCnt: 0, rssi: -97 });
    expect(codec[3]!.uplink.receivedAt).toBe(T0 + 600_000);
    expect(codec[3]!.json.object).toMatchObject({ fill_pct: 91 });
    // The EM400-UDL sends its frame on port 85, without an object: the bridge decodes the bytes.
    const em400 = ups.find((u) => u.uplink.devEui === EM400.devEui)!;
    expect(em400.json).not.toHaveProperty('object');
    expect(em400.uplink).toMatchObject({ fPort: 85, fCnt: 0, receivedAt: T0 + 60_000 });
    expect(milesightEm400Udl.decode(85, em400.uplink.payload)).toEqual({ kind: 'reading', fields: { battery_pct: 42, temp_c: 14.3, distance_mm: 690, tilted: true } });
    expect(t.events).toEqual({ join: 2, up: 4, redelivered: 1, republished: 0 });
    expect(t.stats).toMatchObject({ acknowledged: 4, queued: 0, inFlight: 0, failed: 0 });
  });

  it('keeps what the broker did not acknowledge and publishes it again, the same events, once the broker is back', async () => {
    const { client, events } = await bridge('bridge-b');
    const t = transport({ maxInFlight: 5 });
    const n = 300;
    for (let i = 0; i < n; i++) t.send(publish(i % 2 ? 'BIN-00001' : 'BIN-00002', T0 + i * 1000, reading(T0 + i * 1000, { fill_pct: i % 100 })));
    await eventually(async () => t.stats.acknowledged, (x) => x >= 20, 5000);
    await broker.stop();
    await new Promise((r) => setTimeout(r, 300));
    expect(t.stats.acknowledged).toBeLessThan(n);
    await broker.start();
    await eventually(async () => t.stats.acknowledged, (x) => x === n, 20_000);
    await t.close(2000);
    expect(t.stats).toMatchObject({ acknowledged: n, queued: 0, inFlight: 0 });
    expect(t.stats.failed).toBeGreaterThan(0);
    expect(t.events.republished).toBe(t.stats.failed);
    // Every uplink reached the bridge's session (some twice: acknowledged by the broker, PUBACK lost).
    await eventually(async () => new Set(events.map((e) => (e.json as { deduplicationId: string }).deduplicationId)).size, (x) => x === n + 2, 10_000);
    await client.endAsync();
    const ups = events.filter((e) => e.parsed.kind === 'uplink').map((e) => e.parsed as Uplink);
    for (const devEui of [EM400.devEui, CODEC.devEui]) {
      const counters = [...new Set(ups.filter((u) => u.devEui === devEui).map((u) => u.fCnt))].sort((a, b) => a - b);
      expect(counters).toEqual(Array.from({ length: n / 2 }, (_, i) => i));
    }
  });

  it('takes the sensors from the bundle and says what to do when a bin has no DevEUI or a model without frames', () => {
    const city = generateCity({ seed: 4, trucks: 1, collectionTrucks: 1, bins: 6, constructionSites: 1 });
    const found = lorawanSensorsOf(city.bundle);
    expect([...found.values()].map((s) => [s.deviceId, s.model])).toEqual([
      ['BIN-00001', null],
      ['BIN-00002', 'milesight-em400-udl'],
      ['BIN-00003', null],
      ['BIN-00004', 'milesight-em400-udl'],
      ['BIN-00005', null],
      ['BIN-00006', 'milesight-em400-udl'],
    ]);
    expect(found.get('BIN-00003')!.depthMm).toBe((city.bundle.bins as { depth_mm: number }[])[2]!.depth_mm);
    expect([...withoutLidCounter(found)]).toEqual(['BIN-00002', 'BIN-00004', 'BIN-00006']);
    const devices = city.bundle.devices as Record<string, unknown>[];
    delete devices[0]!.lorawan_dev_eui;
    expect(() => lorawanSensorsOf(city.bundle)).toThrow(/1 of the city's 6 bins have no DevEUI \(lorawan_dev_eui\); generate the city again/);
    devices[0]!.lorawan_dev_eui = '0257530000000001';
    devices[0]!.lorawan_sensor = 'dragino-ldds75';
    expect(() => lorawanSensorsOf(city.bundle)).toThrow(/BIN-00001 is a dragino-ldds75; the simulator sends frames of milesight-em400-udl only/);
  });
});

describe('labels of what the sensors can observe', () => {
  it('labels no out-of-window drop-off on a bin without a lid counter; everything else is the same city, the same labels', () => {
    const city = generateCity({ seed: 12, trucks: 2, collectionTrucks: 2, bins: 60, constructionSites: 1 });
    const run = (lidless?: ReadonlySet<string>) => {
      const sim = new Simulation(city, { seed: 's', start: T0, rates: { ...uniformRates(0.3), out_of_window_dropoff: 1 }, noise: DEFAULT_NOISE, withoutLidCounter: lidless });
      const labels: Label[] = [];
      const messages: Outgoing[] = [];
      sim.advance(T0 + 36 * 3_600_000, (m) => messages.push(m), (l) => labels.push(l));
      sim.finish((l) => labels.push(l));
      return { labels, messages };
    };
    const lidless = withoutLidCounter(lorawanSensorsOf(city.bundle));
    const mqttRun = run();
    const lorawanRun = run(lidless);
    const outOfWindow = (labels: Label[]) => labels.filter((l) => l.type === 'out_of_window_dropoff');
    expect(outOfWindow(mqttRun.labels).some((l) => lidless.has(l.subject.device_id!))).toBe(true);
    expect(outOfWindow(lorawanRun.labels).some((l) => lidless.has(l.subject.device_id!))).toBe(false);
    expect(outOfWindow(lorawanRun.labels).length).toBeGreaterThan(0);
    // The drop-offs still happen (their waste is in the bins): the messages are the same, and so
    // are all other labels.
    expect(lorawanRun.messages).toEqual(mqttRun.messages);
    const rest = (labels: Label[]) => labels.filter((l) => l.type !== 'out_of_window_dropoff' || !lidless.has(l.subject.device_id!));
    expect(lorawanRun.labels).toEqual(rest(mqttRun.labels));
  });
});

describe('ByClassTransport with a transport per class', () => {
  /** A transport that records what it is sent and acknowledges on demand. */
  class Recording implements Transport {
    readonly stats: TransportStats = { connected: 1, acknowledged: 0, failed: 0, queued: 0, inFlight: 0, connects: 1, connectFailures: 0, lastError: null };
    readonly sent: Outgoing[] = [];
    send(message: Outgoing): void {
      this.sent.push(message);
      this.stats.queued++;
    }
    ack(): void {
      this.stats.queued--;
      this.stats.acknowledged++;
    }
    oldestPendingAt(): number | null {
      return this.sent.length > this.stats.acknowledged ? this.sent[this.stats.acknowledged]!.at : null;
    }
    async progress(): Promise<void> {}
    async backlogBelow(): Promise<void> {}
    async close(): Promise<void> {}
  }

  it('sends trucks, bins and weighbridges each their way and adds up the three', () => {
    const [trucks, bins, others] = [new Recording(), new Recording(), new Recording()];
    const all = new ByClassTransport({ trucks, bins }, others);
    all.send({ kind: 'publish', at: T0 + 3000, deviceId: 'GPS-truck-0001', deviceClass: 'trucks', payload: { ts: T0 } });
    all.send(publish('BIN-00001', T0 + 1000, reading(T0)));
    all.send({ kind: 'publish', at: T0 + 2000, deviceId: 'WB-dump-north', deviceClass: 'scales', payload: { ts: T0 } });
    expect([trucks, bins, others].map((t) => t.sent.map((m) => m.deviceId))).toEqual([['GPS-truck-0001'], ['BIN-00001'], ['WB-dump-north']]);
    expect(all.stats).toMatchObject({ connected: 3, queued: 3, connects: 3 });
    expect(all.oldestPendingAt()).toBe(T0 + 1000);
    bins.ack();
    expect(all.oldestPendingAt()).toBe(T0 + 2000);
    // One transport for two classes is counted once.
    const shared = new Recording();
    expect(new ByClassTransport({ bins: shared }, shared).stats.connected).toBe(1);
  });
});

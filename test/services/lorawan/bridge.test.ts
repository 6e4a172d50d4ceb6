// The LoRaWAN bridge against Debian's Mosquitto standing in for a network server's broker, with a
// real spool, ingest pipeline and registry: events published as ChirpStack and The Things Stack
// publish them (network-server-events.ts), readings timed by the network server, one reading per
// uplink however often it comes, unknown and disabled sensors refused with their reason, frame
// counter gaps counted, and nothing lost while the bridge is away from ChirpStack's broker.
import path from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ingestSchema, lorawanSchema } from '../../../services/config/schema.ts';
import type { Reading } from '../../../services/contract/payloads.ts';
import type { Intake } from '../../../services/contract/source.ts';
import { IngestPipeline } from '../../../services/ingest/pipeline.ts';
import { createLogger } from '../../../services/log.ts';
import { LorawanBridge } from '../../../services/lorawan/bridge.ts';
import { RegistryDb } from '../../../services/registry/db.ts';
import { DeviceStore } from '../../../services/registry/devices.ts';
import { Spool } from '../../../services/spool/spool.ts';
import { startTestMosquitto, type TestMosquitto } from '../../helpers/mosquitto.ts';
import { eventually, tempDir } from '../../helpers/service.ts';
import { CHIRPSTACK_JOIN_DOC, CHIRPSTACK_STATUS_DOC, CHIRPSTACK_UP_DOC, chirpstackEvent, ttsUplink } from './network-server-events.ts';

const log = createLogger('silent');
/** The documented events are from 2020 and 2022: older than the default 7 days. */
const ANY_AGE_MS = 20 * 365 * 86_400_000;
const USERS = { chirpstack: 'ns-secret', 'waste-bridge': 'bridge-secret' };
// The network server writes its topics; the bridge reads them (docs/lorawan.md "Broker accounts").
const ACL = 'user chirpstack\ntopic write application/#\ntopic write v3/#\n\nuser waste-bridge\ntopic read application/#\ntopic read v3/#\n';

const EUI = { doc: '0101010101010101', bin: '24E124136B502217', tts: '0004A30B001C0530' };
const upTopic = (devEui: string) => `application/17c82e96-be03-4f38-aef3-f83d48582d97/device/${devEui.toLowerCase()}/event/up`;

let mosquitto: TestMosquitto;
let ns: MqttClient;

beforeAll(async () => {
  mosquitto = await startTestMosquitto(USERS, { acl: ACL, persistence: true });
  ns = await mqtt.connectAsync(mosquitto.url, { username: 'chirpstack', password: USERS.chirpstack, clientId: 'chirpstack' });
});
afterAll(async () => {
  await ns?.endAsync();
  await mosquitto?.cleanup();
});

interface Rig {
  bridge: LorawanBridge;
  devices: DeviceStore;
  readings: Reading[];
  reports: { device_id: string | null; reason: string; topic: string; message: string }[];
  restart(): Promise<void>;
  stopBridge(): Promise<void>;
}
const rigs: { bridge: () => LorawanBridge; spool: Spool }[] = [];
afterEach(async () => {
  for (const rig of rigs.splice(0)) {
    await rig.bridge().stop();
    await rig.spool.close();
  }
});

/** What the rig hands the bridge instead of the pipeline itself, to inject faults. */
type IntakeWrapper = (pipeline: IngestPipeline) => Intake;

async function rig(servers: Record<string, unknown>[], wrap: IntakeWrapper = (pipeline) => pipeline): Promise<Rig> {
  const dir = await tempDir('waste-lorawan-');
  const spool = new Spool({ dir: path.join(dir, 'spool'), quotaBytes: 1 << 30, segmentBytes: 1 << 20, fsync: true });
  await spool.open();
  const db = new RegistryDb(path.join(dir, 'registry.db'));
  db.open();
  const devices = new DeviceStore(db);
  const readings: Reading[] = [];
  const reports: Rig['reports'] = [];
  const bus = { publish: async (_topic: string, payload: string | Buffer) => void reports.push(JSON.parse(payload.toString())) };
  const pipeline = new IngestPipeline(spool, ingestSchema.parse({ maxAgeMs: ANY_AGE_MS }), log, { listeners: [(r) => readings.push(...r)], reports: bus });
  const config = lorawanSchema.parse({ networkServers: servers.map((s) => ({ username: 'waste-bridge', password: USERS['waste-bridge'], url: mosquitto.url, ...s })) });
  const make = () => new LorawanBridge({ config, directory: devices, log });
  let bridge = make();
  rigs.push({ bridge: () => bridge, spool });
  const intake = wrap(pipeline);
  await bridge.start(intake);
  return {
    get bridge() {
      return bridge;
    },
    devices,
    readings,
    reports,
    stopBridge: () => bridge.stop(),
    restart: async () => {
      bridge = make();
      await bridge.start(intake);
    },
  };
}

const chirpstack = (name: string) => ({ name, kind: 'chirpstack', clientId: `bridge-${name}` });
const publish = (topic: string, payload: string, qos: 0 | 1 = 1) => ns.publishAsync(topic, payload, { qos });
const bins = (r: Rig) => r.readings.filter((reading) => reading.kind === 'bin');
/** The bin readings once the bridge has counted `n` of network server `server` durable. */
async function readingsOnceDurable(r: Rig, server: string, n: number, timeoutMs?: number): Promise<Reading[]> {
  await eventually(async () => r.bridge.stats()[server]!.readings, (count) => count === n, timeoutMs);
  return bins(r);
}

describe('ChirpStack v4', () => {
  it('turns the documented up event into a bin reading at ChirpStack\'s receive time, with the best RSSI', async () => {
    const r = await rig([chirpstack('cs-doc')]);
    await r.devices.add('BIN-DOC', 'bins', undefined, { devEui: EUI.doc });
    // The documented payload 0xAA is no bin sensor's; a device without a sensor model takes the
    // codec's object when it names the contract's fields.
    await publish(upTopic(EUI.doc), chirpstackEvent(CHIRPSTACK_UP_DOC, { object: { distance_mm: 420, battery_pct: 88 } }));
    const [reading] = await readingsOnceDurable(r, 'cs-doc', 1);
    expect(reading).toMatchObject({ kind: 'bin', deviceId: 'BIN-DOC', ts: Date.parse('2022-07-18T09:34:15.775Z'), distance_mm: 420, battery_pct: 88, rssi: -36 });
    expect(r.bridge.stats()['cs-doc']).toMatchObject({ readings: 1, rejected: 0 });
  });

  it('refuses the documented event verbatim for a device without a sensor model: no decoded object', async () => {
    const r = await rig([chirpstack('cs-verbatim')]);
    await r.devices.add('BIN-DOC', 'bins', undefined, { devEui: EUI.doc });
    await publish(upTopic(EUI.doc), CHIRPSTACK_UP_DOC);
    const [report] = await eventually(async () => r.reports, (x) => x.length === 1);
    expect(report).toMatchObject({ device_id: 'BIN-DOC', reason: 'undecodable', topic: `lorawan/cs-verbatim/${upTopic(EUI.doc)}` });
    expect(report!.message).toMatch(/no sensor model and the network server sent no decoded object/);
    expect(bins(r)).toEqual([]);
  });

  it('decodes a Milesight EM310-UDL uplink by the sensor model, from its bytes or from the vendor codec\'s object', async () => {
    const r = await rig([chirpstack('cs-em310')]);
    await r.devices.add('BIN-EM310', 'bins', undefined, { devEui: EUI.bin, sensor: 'milesight-em310-udl' });
    // Milesight-IoT/SensorDecoders em-series/em310-udl/README.md, "Example": battery 92 %, distance
    // 2116 mm, position tilt; sent on fPort 85 (TTN lorawan-devices vendor/milesight-iot/em310-udl-codec.yaml).
    const bytes = Buffer.from('01755C03824408040001', 'hex');
    await publish(upTopic(EUI.bin), chirpstackEvent(CHIRPSTACK_UP_DOC, { devEui: EUI.bin.toLowerCase(), deduplicationId: 'em310-bytes', fPort: 85, data: bytes }));
    // The same uplink as ChirpStack delivers it when the device profile runs Milesight's codec.
    await publish(upTopic(EUI.bin), chirpstackEvent(CHIRPSTACK_UP_DOC, { devEui: EUI.bin.toLowerCase(), deduplicationId: 'em310-object', time: '2022-07-18T09:44:15Z', fPort: 85, data: bytes, object: { battery: 92, distance: 2116, position: 'tilt' } }));
    const readings = await readingsOnceDurable(r, 'cs-em310', 2);
    for (const reading of readings) expect(reading).toMatchObject({ deviceId: 'BIN-EM310', distance_mm: 2116, battery_pct: 92, tilted: true });
  });

  it('rejects an uplink from an unknown DevEUI, and one from a disabled sensor, with their reasons', async () => {
    const r = await rig([chirpstack('cs-unknown')]);
    await r.devices.add('BIN-OFF', 'bins', undefined, { devEui: EUI.bin });
    r.devices.setEnabled('BIN-OFF', false);
    await publish(upTopic('70b3d57ed0000001'), chirpstackEvent(CHIRPSTACK_UP_DOC, { devEui: '70b3d57ed0000001', object: { fill_pct: 50 } }));
    await publish(upTopic(EUI.bin), chirpstackEvent(CHIRPSTACK_UP_DOC, { devEui: EUI.bin.toLowerCase(), object: { fill_pct: 50 } }));
    const reports = await eventually(async () => r.reports, (x) => x.length === 2);
    expect(reports.map((x) => [x.reason, x.device_id])).toEqual([
      ['unknown_dev_eui', null],
      ['device_disabled', 'BIN-OFF'],
    ]);
    expect(reports[0]!.message).toMatch(/DevEUI 70B3D57ED0000001 belongs to no device/);
    expect(bins(r)).toEqual([]);
  });

  it('takes an uplink delivered twice once, and counts the frame counter\'s gaps; a join starts the counter again', async () => {
    const r = await rig([chirpstack('cs-dup')]);
    await r.devices.add('BIN-1', 'bins', undefined, { devEui: EUI.bin });
    const up = (fCnt: number, second: number) =>
      chirpstackEvent(CHIRPSTACK_UP_DOC, { devEui: EUI.bin.toLowerCase(), deduplicationId: `00000000-0000-4000-8000-${String(second).padStart(12, '0')}`, fCnt, time: `2022-07-18T10:00:${String(second).padStart(2, '0')}Z`, object: { fill_pct: 10 + fCnt } });
    const topic = upTopic(EUI.bin);
    for (const [fCnt, second] of [[1, 1], [2, 2], [2, 2], [5, 5], [6, 6]] as const) await publish(topic, up(fCnt, second));
    await publish(topic.replace(/up$/, 'join'), chirpstackEvent(CHIRPSTACK_JOIN_DOC, { devEui: EUI.bin.toLowerCase() }));
    await publish(topic, up(0, 10));
    await publish(topic, up(1, 11));
    await readingsOnceDurable(r, 'cs-dup', 6);
    expect(bins(r).map((b) => (b as { fill_pct: number }).fill_pct)).toEqual([11, 12, 15, 16, 10, 11]);
    expect(r.bridge.stats()['cs-dup']).toMatchObject({ readings: 6, duplicates: 1, missing: 2, counterResets: 0, joins: 1 });
  });

  it('adds the battery level of a status event to readings without one', async () => {
    const r = await rig([chirpstack('cs-status')]);
    await r.devices.add('BIN-DOC', 'bins', undefined, { devEui: EUI.doc });
    await publish(upTopic(EUI.doc).replace(/up$/, 'status'), CHIRPSTACK_STATUS_DOC);
    await publish(upTopic(EUI.doc), chirpstackEvent(CHIRPSTACK_UP_DOC, { object: { distance_mm: 300 } }));
    const [reading] = await readingsOnceDurable(r, 'cs-status', 1);
    expect(reading).toMatchObject({ distance_mm: 300, battery_pct: 75.5 });
    expect(r.bridge.stats()['cs-status']).toMatchObject({ statuses: 1, readings: 1 });
  });

  it('refuses what is not a ChirpStack event, each with its reason, and carries on', async () => {
    const r = await rig([chirpstack('cs-hostile')]);
    await r.devices.add('BIN-DOC', 'bins', undefined, { devEui: EUI.doc });
    const topic = upTopic(EUI.doc);
    await publish(topic, 'not json {');
    await publish(topic, JSON.stringify({ hello: 'world' }));
    // A payload naming another device than its topic.
    await publish(upTopic('0202020202020202'), CHIRPSTACK_UP_DOC);
    await publish(topic, 'x'.repeat(70_000));
    await publish(topic, chirpstackEvent(CHIRPSTACK_UP_DOC, { time: 'yesterday', object: { fill_pct: 1 } }));
    await publish(topic, chirpstackEvent(CHIRPSTACK_UP_DOC, { object: { fill_pct: 101 } }));
    await publish(topic, chirpstackEvent(CHIRPSTACK_UP_DOC, { deduplicationId: 'last', object: { fill_pct: 55 } }));
    await readingsOnceDurable(r, 'cs-hostile', 1);
    expect(r.reports.map((x) => x.reason)).toEqual(['invalid_json', 'invalid_event', 'invalid_event', 'payload_too_large', 'invalid_event', 'out_of_range']);
    expect(r.reports[0]!.message).toMatch(/json = true/);
    expect(r.reports[2]!.message).toMatch(/DevEUI 0101010101010101 on the topic of 0202020202020202/);
    expect(r.bridge.stats()['cs-hostile']).toMatchObject({ readings: 1, rejected: 6 });
  });

  it('loses nothing published while the bridge is away: its session on ChirpStack\'s broker keeps it', async () => {
    const r = await rig([chirpstack('cs-away')]);
    await r.devices.add('BIN-1', 'bins', undefined, { devEui: EUI.bin });
    await r.stopBridge();
    for (let i = 1; i <= 40; i++) {
      await publish(upTopic(EUI.bin), chirpstackEvent(CHIRPSTACK_UP_DOC, { devEui: EUI.bin.toLowerCase(), deduplicationId: `away-${i}`, fCnt: i, time: new Date(Date.UTC(2022, 6, 18, 11, 0, i)).toISOString(), object: { fill_pct: i } }));
    }
    await r.restart();
    await readingsOnceDurable(r, 'cs-away', 40, 20_000);
    expect(bins(r).map((b) => (b as { fill_pct: number }).fill_pct)).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
  });
});

describe('what must not hold the stream up', () => {
  it('refuses an event that would make the bridge fail (a value nested without end) and takes the next ones', async () => {
    const r = await rig([chirpstack('cs-poison')]);
    await r.devices.add('BIN-DOC', 'bins', undefined, { devEui: EUI.doc });
    await r.devices.add('BIN-1', 'bins', undefined, { devEui: EUI.bin });
    // 25 of them: more than Mosquitto's 20 messages in flight, which unacknowledged events would fill.
    const nested = '['.repeat(10_000) + ']'.repeat(10_000);
    for (let i = 0; i < 25; i++) {
      const event = chirpstackEvent(CHIRPSTACK_UP_DOC, { deduplicationId: `poison-${i}`, object: { fill_pct: 1 } }).replace('{"fill_pct":1}', `{"distance_mm":${nested}}`);
      await publish(upTopic(EUI.doc), event);
    }
    for (let i = 1; i <= 5; i++) await publish(upTopic(EUI.bin), chirpstackEvent(CHIRPSTACK_UP_DOC, { devEui: EUI.bin.toLowerCase(), deduplicationId: `fine-${i}`, fCnt: i, object: { fill_pct: i } }));
    const readings = await readingsOnceDurable(r, 'cs-poison', 5);
    expect(readings.map((b) => b.deviceId)).toEqual(Array(5).fill('BIN-1'));
    expect(r.reports.filter((x) => x.device_id === 'BIN-DOC').map((x) => x.reason)).toEqual(Array(25).fill('undecodable'));
  });

  it('tries a reading the pipeline could not make durable again on the same connection, in order, and loses none', async () => {
    let failures = 3;
    const r = await rig([chirpstack('cs-flaky')], (pipeline) => ({
      accepting: () => pipeline.accepting(),
      ingest: (message) => (failures-- > 0 ? Promise.reject(new Error('disk I/O error (injected)')) : pipeline.ingest(message)),
      reject: (rejection, counted) => pipeline.reject(rejection, counted),
      countRefused: (reason, count) => pipeline.countRefused(reason, count),
      deviceStatus: (deviceClass, id, online) => pipeline.deviceStatus(deviceClass, id, online),
    }));
    await r.devices.add('BIN-1', 'bins', undefined, { devEui: EUI.bin });
    for (let i = 1; i <= 6; i++) await publish(upTopic(EUI.bin), chirpstackEvent(CHIRPSTACK_UP_DOC, { devEui: EUI.bin.toLowerCase(), deduplicationId: `flaky-${i}`, fCnt: i, object: { fill_pct: i } }));
    const readings = await readingsOnceDurable(r, 'cs-flaky', 6, 30_000);
    expect(readings.map((b) => (b as { fill_pct: number }).fill_pct)).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('takes an uplink read through two connections to the same network server once', async () => {
    const r = await rig([chirpstack('cs-twice-a'), chirpstack('cs-twice-b')]);
    await r.devices.add('BIN-1', 'bins', undefined, { devEui: EUI.bin });
    for (let i = 1; i <= 20; i++) await publish(upTopic(EUI.bin), chirpstackEvent(CHIRPSTACK_UP_DOC, { devEui: EUI.bin.toLowerCase(), deduplicationId: `twice-${i}`, fCnt: i, object: { fill_pct: i } }));
    await eventually(async () => r.bridge.stats(), (stats) => stats['cs-twice-a']!.readings + stats['cs-twice-a']!.duplicates === 20 && stats['cs-twice-b']!.readings + stats['cs-twice-b']!.duplicates === 20);
    const stats = r.bridge.stats();
    expect(stats['cs-twice-a']!.readings + stats['cs-twice-b']!.readings).toBe(20);
    expect(bins(r).map((b) => (b as { fill_pct: number }).fill_pct).sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
  });

  it('takes a missing frame counter that comes late off the uplinks missing', async () => {
    const r = await rig([chirpstack('cs-late')]);
    await r.devices.add('BIN-1', 'bins', undefined, { devEui: EUI.bin });
    // As a broker re-delivers after a reconnect: 3 and 4 after 5.
    for (const fCnt of [1, 2, 5, 3, 4, 6]) await publish(upTopic(EUI.bin), chirpstackEvent(CHIRPSTACK_UP_DOC, { devEui: EUI.bin.toLowerCase(), deduplicationId: `late-${fCnt}`, fCnt, object: { fill_pct: fCnt } }));
    await readingsOnceDurable(r, 'cs-late', 6);
    expect(r.bridge.stats()['cs-late']).toMatchObject({ missing: 0, counterResets: 0 });
  });

  it('refuses a status or a join of an unknown DevEUI, and reads the bytes when the codec object is another codec\'s', async () => {
    const r = await rig([chirpstack('cs-misc')]);
    await r.devices.add('BIN-EM310', 'bins', undefined, { devEui: EUI.bin, sensor: 'milesight-em310-udl' });
    await publish(upTopic('70b3d57ed0000001').replace(/up$/, 'status'), CHIRPSTACK_STATUS_DOC.replace('0101010101010101', '70b3d57ed0000001'));
    await publish(upTopic('70b3d57ed0000001').replace(/up$/, 'join'), CHIRPSTACK_JOIN_DOC.replace('0101010101010101', '70b3d57ed0000001'));
    // Milesight's example bytes with an object made by some other codec (no battery/distance/position).
    await publish(upTopic(EUI.bin), chirpstackEvent(CHIRPSTACK_UP_DOC, { devEui: EUI.bin.toLowerCase(), fPort: 85, data: Buffer.from('01755C03824408040001', 'hex'), object: { data: { level: 3 } } }));
    const [reading] = await readingsOnceDurable(r, 'cs-misc', 1);
    expect(reading).toMatchObject({ distance_mm: 2116, battery_pct: 92, tilted: true });
    expect(r.reports.map((x) => x.reason)).toEqual(['unknown_dev_eui', 'unknown_dev_eui']);
    expect(r.bridge.stats()['cs-misc']).toMatchObject({ statuses: 0, joins: 0, rejected: 2 });
  });
});

describe('The Things Stack v3', () => {
  it('turns the documented uplink into a reading at the network server\'s receive time, and counts f_cnt gaps of its QoS 0 stream', async () => {
    const r = await rig([{ name: 'tts-1', kind: 'tts', clientId: 'bridge-tts-1' }]);
    await r.devices.add('BIN-TTS', 'bins', undefined, { devEui: EUI.tts });
    const topic = 'v3/app1@ttn/devices/dev1/up';
    // The documented decoded_payload (temperature, luminosity) is no bin reading; ours names the contract's fields.
    for (const fCnt of [25, 26, 30]) {
      await publish(topic, ttsUplink({ fCnt, receivedAt: `2020-02-12T15:${fCnt}:49.628054542Z`, decoded: { distance_mm: 500 + fCnt } }), 0);
    }
    const readings = await readingsOnceDurable(r, 'tts-1', 3);
    expect(readings[0]).toMatchObject({ deviceId: 'BIN-TTS', ts: Date.parse('2020-02-12T15:25:49.628Z'), distance_mm: 525, rssi: -35 });
    expect(r.bridge.stats()['tts-1']).toMatchObject({ readings: 3, missing: 3 });
  });

  it('refuses a message naming another device than its topic', async () => {
    const r = await rig([{ name: 'tts-3', kind: 'tts', clientId: 'bridge-tts-3' }]);
    await r.devices.add('BIN-TTS', 'bins', undefined, { devEui: EUI.tts });
    await publish('v3/other-app@ttn/devices/another-device/up', ttsUplink({ decoded: { distance_mm: 500 } }), 0);
    const [report] = await eventually(async () => r.reports, (x) => x.length === 1);
    expect(report).toMatchObject({ reason: 'invalid_event', message: expect.stringMatching(/for device dev1 on the topic of another-device/) });
  });

  it('decodes a Dragino LDDS75 uplink from its bytes when the application has no payload formatter', async () => {
    const r = await rig([{ name: 'tts-2', kind: 'tts', clientId: 'bridge-tts-2' }]);
    await r.devices.add('BIN-LDDS75', 'bins', undefined, { devEui: EUI.tts, sensor: 'dragino-ldds75' });
    // TTN lorawan-devices vendor/dragino/ldds45-codec.yaml, example "Distance Detection" (the LDDS75's
    // frame): fPort 2, 0D3B0AEF00000001: 3.387 V, 2799 mm, 0.00 °C, sensor flag 1.
    const message = JSON.parse(ttsUplink({ fPort: 2, payload: Buffer.from('0D3B0AEF00000001', 'hex') })) as { uplink_message: Record<string, unknown> };
    delete message.uplink_message.decoded_payload;
    await publish('v3/app1@ttn/devices/dev1/up', JSON.stringify(message), 0);
    const [reading] = await readingsOnceDurable(r, 'tts-2', 1);
    expect(reading).toMatchObject({ deviceId: 'BIN-LDDS75', ts: Date.parse('2020-02-12T15:15:49.628Z'), distance_mm: 2799, battery_v: 3.387, temp_c: 0 });
  });
});

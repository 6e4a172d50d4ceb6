// The embedded broker and ingest, end to end over real sockets into a real InfluxDB.
import net from 'node:net';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { invalidSample, invalidSamplesFor } from '../../../device-sim/samples.ts';
import type { Config } from '../../../services/config/schema.ts';
import { DEVICE_CLASSES, REJECTED_TOPIC, topics } from '../../../services/contract/topics.ts';
import { startTestInfluxd, type TestInfluxd } from '../../helpers/influxd.ts';
import { connectDevice, eventually, provision, provisionService, startTestService, testConfig, withRegistry, type TestService } from '../../helpers/service.ts';

let influxd: TestInfluxd;
let config: Config;
let svc: TestService;
let secrets: Record<string, string>;
let watcher: MqttClient;
const rejected: Record<string, unknown>[] = [];
const statusMessages: { topic: string; payload: string; retain: boolean }[] = [];

const query = (q: string, params: Record<string, string> = {}) => influxd.store().query(q, params);
beforeAll(async () => {
  influxd = await startTestInfluxd();
  config = await testConfig(influxd.url);
  secrets = await provision(config, [
    ['T1', 'trucks'], ['T2', 'trucks'], ['B1', 'bins'], ['S1', 'scales'],
    ['BAD-bins', 'bins'], ['BAD-trucks', 'trucks'], ['BAD-scales', 'scales'], ['OFF', 'trucks'], ['WS1', 'bins'], ['GONE', 'trucks'],
  ]);
  secrets['waste-watch'] = await provisionService(config, 'waste-watch');
  svc = await startTestService(config);
  svc.service.devices.setEnabled('OFF', false);
  watcher = await mqtt.connectAsync(svc.url, { username: 'waste-watch', password: secrets['waste-watch'], clientId: 'waste-watch-1' });
  watcher.on('message', (topic, payload, packet) => {
    if (topic === REJECTED_TOPIC) rejected.push(JSON.parse(payload.toString()) as Record<string, unknown>);
    else statusMessages.push({ topic, payload: payload.toString(), retain: packet.retain });
  });
  await watcher.subscribeAsync([REJECTED_TOPIC, 'waste/+/+/status'], { qos: 1 });
});

afterAll(async () => {
  await watcher?.endAsync();
  await svc?.stop();
  await influxd?.cleanup();
});

describe('authentication', () => {
  const refusal = (options: mqtt.IClientOptions) =>
    mqtt.connectAsync(svc.url, { reconnectPeriod: 0, ...options }).then(
      (client) => client.endAsync().then(() => 'connected'),
      (error: Error & { code?: number }) => error.code,
    );

  it('refuses a wrong secret, an unknown device, a missing secret and a disabled device', async () => {
    expect(await refusal({ username: 'T1', password: 'not-the-secret' })).toBe(4);
    expect(await refusal({ username: 'NOBODY', password: secrets.T1 })).toBe(4);
    expect(await refusal({ username: 'T1' })).toBe(4);
    expect(await refusal({})).toBe(4);
    expect(await refusal({ username: 'OFF', password: secrets.OFF })).toBe(5);
    expect(await refusal({ username: 'T1', password: secrets.T1, clientId: 'waste-ingest-1' })).toBe(2);
    expect(await refusal({ username: 'T1', password: secrets.T1 })).toBe('connected');
  });

  it('disconnects a connected device at once when it is disabled, and one whose secret is rotated', async () => {
    const first = await svc.service.devices.add('REVOKE-1', 'trucks');
    const second = await svc.service.devices.add('REVOKE-2', 'trucks');
    const a = await eventually(() => connectDevice(svc.url, 'REVOKE-1', first).catch(() => null), (c) => c !== null, 5000);
    const b = await eventually(() => connectDevice(svc.url, 'REVOKE-2', second).catch(() => null), (c) => c !== null, 5000);
    const closedA = new Promise<void>((resolve) => a!.once('close', () => resolve()));
    const closedB = new Promise<void>((resolve) => b!.once('close', () => resolve()));
    // Another process (the CLI) changes the registry; the running service notices.
    await withRegistry(config, (cli) => cli.setEnabled('REVOKE-1', false));
    await closedA;
    const newSecret = await withRegistry(config, (cli) => cli.rotate('REVOKE-2'));
    await closedB;
    const old = await mqtt.connectAsync(svc.url, { username: 'REVOKE-2', password: second, reconnectPeriod: 0 }).then(() => 'connected', (e: { code?: number }) => e.code);
    expect(old).toBe(4);
    const renewed = await eventually(() => connectDevice(svc.url, 'REVOKE-2', newSecret).catch(() => null), (c) => c !== null, 5000);
    await renewed!.endAsync();
    a!.end(true);
    b!.end(true);
  });

  it('lets a device added while running connect at once', async () => {
    const secret = await withRegistry(config, (cli) => cli.add('LATE-1', 'bins'));
    const client = await eventually(() => connectDevice(svc.url, 'LATE-1', secret).catch(() => null), (c) => c !== null, 5000);
    expect(client).not.toBeNull();
    await client!.endAsync();
  });
});

describe('ingest', () => {
  it('writes exactly the published values, tags and timestamps', async () => {
    const truck = await connectDevice(svc.url, 'T1', secrets.T1!);
    const bin = await connectDevice(svc.url, 'B1', secrets.B1!);
    const scale = await connectDevice(svc.url, 'S1', secrets.S1!);
    const t0 = Date.now() - 60_000;
    await truck.publishAsync(topics.data('trucks', 'T1'), JSON.stringify([
      { ts: t0, lat: 31.29891, lon: 120.58532, speed_kmh: 36.5, heading: 271, ignition: true, tipper_up: false, cover_closed: true, load_kg: 18250 },
      { ts: new Date(t0 + 10_000).toISOString().replace('Z', '+00:00'), lat: 31.29911, lon: 120.58512, speed_kmh: 0, heading: 0 },
    ]), { qos: 1 });
    const binTs = new Date(t0);
    const local = new Date(binTs.getTime() + 8 * 3600_000).toISOString().slice(0, 19) + '+08:00';
    await bin.publishAsync(topics.data('bins', 'B1'), JSON.stringify({ ts: local, fill_pct: 87.5, temp_c: 24.25, tilt_deg: 2, battery_v: 3.61, rssi: -97, lid_opens: 12, firmware: 'ignored' }), { qos: 1 });
    await scale.publishAsync(topics.data('scales', 'S1'), JSON.stringify({ ticket_id: 'WB-2026-0001', ts: t0, plate: '苏E·12345', gross_kg: 31200, tare_kg: 12700, net_kg: 18500, category: 'construction', direction: 'out', origin: 'site-7' }), { qos: 1 });

    const fixes = await eventually(() => query('SELECT * FROM truck_position WHERE device_id = $id', { id: 'T1' }), (s) => s[0]?.values.length === 2);
    const columns = fixes[0]!.columns;
    const rows = fixes[0]!.values.map((row) => Object.fromEntries(columns.map((c, i) => [c, row[i]])));
    expect(rows).toEqual([
      { time: t0, device_id: 'T1', lat: 31.29891, lon: 120.58532, speed_kmh: 36.5, heading: 271, ignition: true, tipper_up: false, cover_closed: true, load_kg: 18250 },
      { time: t0 + 10_000, device_id: 'T1', lat: 31.29911, lon: 120.58512, speed_kmh: 0, heading: 0, ignition: null, tipper_up: null, cover_closed: null, load_kg: null },
    ]);
    // InfluxDB 1.x indexes a point's fields one by one: wait until the last of them is readable.
    const bins = await eventually(() => query('SELECT * FROM bin_level WHERE device_id = $id', { id: 'B1' }), (s) => s[0]?.values[0]?.every((v) => v !== null) === true);
    expect(bins[0]!.columns).not.toContain('firmware');
    expect(Object.fromEntries(bins[0]!.columns.map((c, i) => [c, bins[0]!.values[0]![i]]))).toEqual({
      time: Math.floor(t0 / 1000) * 1000, device_id: 'B1', fill_pct: 87.5, temp_c: 24.25, tilt_deg: 2, battery_v: 3.61, rssi: -97, lid_opens: 12,
    });
    const tickets = await eventually(() => query('SELECT * FROM weigh_ticket WHERE device_id = $id', { id: 'S1' }), (s) => s.length > 0);
    expect(Object.fromEntries(tickets[0]!.columns.map((c, i) => [c, tickets[0]!.values[0]![i]]))).toEqual({
      time: t0, device_id: 'S1', category: 'construction', direction: 'out', ticket_id: 'WB-2026-0001', plate: '苏E·12345', gross_kg: 31200, tare_kg: 12700, net_kg: 18500, origin: 'site-7',
    });
    await Promise.all([truck.endAsync(), bin.endAsync(), scale.endAsync()]);
  });

  it('writes a reading delivered twice as one point', async () => {
    const truck = await connectDevice(svc.url, 'T2', secrets.T2!);
    const payload = JSON.stringify({ ts: Date.now() - 5000, lat: 31.3, lon: 120.6, speed_kmh: 20, heading: 10 });
    await truck.publishAsync(topics.data('trucks', 'T2'), payload, { qos: 1 });
    await truck.publishAsync(topics.data('trucks', 'T2'), payload, { qos: 1, dup: true });
    await truck.publishAsync(topics.data('trucks', 'T2'), payload, { qos: 0 });
    await eventually(() => svc.service.shipper.drained(5000), (done) => done);
    expect(await influxd.count('truck_position', 'lat', 'T2')).toBe(1);
    await truck.endAsync();
  });
});

describe('rejections', () => {
  for (const deviceClass of DEVICE_CLASSES) {
    it(`publishes every rejection reason for ${deviceClass} and stores none of it`, async () => {
      const deviceId = `BAD-${deviceClass}`;
      const device = await connectDevice(svc.url, deviceId, secrets[deviceId]!);
      const before = rejected.length;
      const samples = invalidSamplesFor(deviceClass);
      for (const name of samples) {
        const sample = invalidSample(name, deviceClass, deviceId);
        const topic = sample.topic === 'data' ? topics.data(deviceClass, deviceId) : sample.topic;
        await device.publishAsync(topic, sample.payload, { qos: 1 });
      }
      const reports = await eventually(async () => rejected.slice(before).filter((r) => r.device_id === deviceId), (r) => r.length >= samples.length);
      expect(reports.map((r) => r.reason).sort()).toEqual([...samples].sort());
      for (const report of reports) {
        expect(report.message).toEqual(expect.any(String));
        expect(report.topic).toMatch(/^waste\//);
      }
      await eventually(() => svc.service.shipper.drained(5000), (done) => done);
      const [measurement, field] = ({ bins: ['bin_level', 'fill_pct'], trucks: ['truck_position', 'lat'], scales: ['weigh_ticket', 'net_kg'] } as const)[deviceClass];
      expect(await influxd.count(measurement, field, deviceId)).toBe(0);
      expect(await influxd.count(measurement, field, 'OTHER-DEVICE')).toBe(0);
      expect(svc.service.pipeline.rejections.totals().unauthorised_topic).toBeGreaterThan(0);
      await device.endAsync();
    });
  }

  it('closes the connection of a device sending a packet over the limit, and reports it', async () => {
    const device = await connectDevice(svc.url, 'T1', secrets.T1!);
    const before = rejected.length;
    const closed = new Promise<void>((resolve) => device.once('close', () => resolve()));
    device.publish(topics.data('trucks', 'T1'), Buffer.alloc(2 * 1024 * 1024, 32), { qos: 1 });
    await closed;
    const reports = await eventually(async () => rejected.slice(before), (r) => r.some((x) => x.reason === 'payload_too_large'));
    expect(reports.find((r) => r.reason === 'payload_too_large')).toMatchObject({ device_id: 'T1' });
    device.end(true);
  });

  it('refuses a device subscription outside its downlink (SUBACK 0x80) and keeps it connected', async () => {
    const device = await connectDevice(svc.url, 'T1', secrets.T1!);
    const refused = await device.subscribeAsync('waste/#', { qos: 1 }).catch((error: { packet?: { granted?: number[] } }) => error.packet?.granted);
    expect(refused).toEqual([128]);
    const granted = await device.subscribeAsync(topics.downlink('trucks', 'T1'), { qos: 1 });
    expect(granted.map((g) => g.qos)).toEqual([1]);
    expect(device.connected).toBe(true);
    await device.endAsync();
  });

  it('does not forward a publish on another device\'s topic to subscribers', async () => {
    const seen: string[] = [];
    const spy = await mqtt.connectAsync(svc.url, { username: 'waste-watch', password: secrets['waste-watch'], clientId: 'waste-watch-2' });
    spy.on('message', (topic) => seen.push(topic));
    await spy.subscribeAsync('waste/trucks/+/position', { qos: 1 });
    const device = await connectDevice(svc.url, 'T1', secrets.T1!);
    await device.publishAsync(topics.data('trucks', 'T2'), JSON.stringify({ ts: Date.now(), lat: 1, lon: 1, speed_kmh: 1, heading: 1 }), { qos: 1 });
    await device.publishAsync(topics.data('trucks', 'T1'), JSON.stringify({ ts: Date.now(), lat: 1, lon: 1, speed_kmh: 1, heading: 1 }), { qos: 1 });
    await eventually(async () => seen, (s) => s.length > 0);
    expect(seen).toEqual([topics.data('trucks', 'T1')]);
    await Promise.all([device.endAsync(), spy.endAsync()]);
  });
});

describe('device status', () => {
  it('keeps a retained status that goes offline when the connection dies', async () => {
    const device = await connectDevice(svc.url, 'GONE', secrets.GONE!, { keepalive: 60 });
    const statusTopic = topics.status('trucks', 'GONE');
    await eventually(async () => statusMessages.filter((m) => m.topic === statusTopic), (m) => m.some((x) => x.payload === '{"online":true}'));
    (device.stream as net.Socket).destroy(); // no DISCONNECT: the will fires
    await eventually(async () => statusMessages.filter((m) => m.topic === statusTopic), (m) => m.at(-1)?.payload === '{"online":false}');
    device.end(true);

    const late = await mqtt.connectAsync(svc.url, { username: 'waste-watch', password: secrets['waste-watch'], clientId: 'waste-watch-3' });
    const retained = new Promise<{ payload: string; retain: boolean }>((resolve) => late.on('message', (_t, payload, packet) => resolve({ payload: payload.toString(), retain: packet.retain })));
    await late.subscribeAsync(statusTopic, { qos: 1 });
    expect(await retained).toEqual({ payload: '{"online":false}', retain: true });
    await late.endAsync();
    const series = await eventually(() => query('SELECT online FROM device_status WHERE device_id = $id', { id: 'GONE' }), (s) => (s[0]?.values.length ?? 0) >= 2);
    expect(series[0]!.values.map((v) => v[1])).toEqual([true, false]);
  });
});

describe('MQTT over WebSocket', () => {
  it('accepts a device over ws:// and ingests its data', async () => {
    const device = await mqtt.connectAsync(`ws://127.0.0.1:${svc.ports.wsPort}/mqtt`, { username: 'WS1', password: secrets.WS1, reconnectPeriod: 0 });
    await device.publishAsync(topics.data('bins', 'WS1'), JSON.stringify({ ts: Date.now(), fill_pct: 12 }), { qos: 1 });
    expect(await eventually(() => influxd.count('bin_level', 'fill_pct', 'WS1'), (n) => n === 1)).toBe(1);
    await device.endAsync();
  });

  it('closes a WebSocket connection sending a packet over the limit', async () => {
    const device = await mqtt.connectAsync(`ws://127.0.0.1:${svc.ports.wsPort}/mqtt`, { username: 'WS1', password: secrets.WS1, reconnectPeriod: 0 });
    const closed = new Promise<void>((resolve) => device.once('close', () => resolve()));
    device.publish(topics.data('bins', 'WS1'), Buffer.alloc(3 * 1024 * 1024, 32), { qos: 1 });
    await closed;
    expect(await influxd.count('bin_level', 'fill_pct', 'WS1')).toBe(1);
    device.end(true);
  });
});

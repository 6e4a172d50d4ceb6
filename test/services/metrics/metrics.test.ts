// /metrics on the running service: Prometheus text format, behind an admin or operator token unless
// metrics.public, with the counts of what really went through (devices on the embedded broker, a
// real InfluxDB).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ENTITIES } from '../../../services/registry/entities.ts';
import { startTestInfluxd, type TestInfluxd } from '../../helpers/influxd.ts';
import { freePort } from '../../helpers/ports.ts';
import { connectDevice, eventually, provision, startTestService, testConfig, type TestService } from '../../helpers/service.ts';

let influxd: TestInfluxd;
beforeAll(async () => {
  influxd = await startTestInfluxd();
});
afterAll(async () => {
  await influxd?.cleanup();
});

/** The value of one sample of the exposition text, by metric name and exact label set. */
function sample(text: string, name: string, labels = ''): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels ? `{${labels}}` : ''} `));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
}

async function service(overrides: Record<string, unknown> = {}): Promise<{ svc: TestService; metrics: (token?: string) => Promise<Response> }> {
  const svc = await startTestService(await testConfig(influxd.url, { 'api.port': await freePort(), 'api.host': '127.0.0.1', ...overrides }));
  const url = `http://127.0.0.1:${svc.ports.apiPort}/metrics`;
  return { svc, metrics: (token) => fetch(url, token ? { headers: { authorization: `Bearer ${token}` } } : {}) };
}

describe('/metrics', () => {
  it('needs an admin or operator token by default', async () => {
    const { svc, metrics } = await service();
    expect((await metrics()).status).toBe(401);
    expect((await metrics(svc.service.tokens.create({ name: 'i', role: 'integrator' }).token)).status).toBe(403);
    const answer = await metrics(svc.service.tokens.create({ name: 'prometheus', role: 'operator' }).token);
    expect(answer.status).toBe(200);
    expect(answer.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    await svc.stop();
  });

  it('counts messages by class, rejects by reason, writes, rule evaluations and alerts', async () => {
    const { svc, metrics } = await service({ 'metrics.public': true });
    const secrets = await provision(svc.config, [['MET-BIN-1', 'bins'], ['MET-TRUCK-1', 'trucks']]);
    svc.service.entities.create(ENTITIES.bins, 'met-bin-1', { category: 'other', depth_mm: 1000, device_id: 'MET-BIN-1', location: { type: 'Point', coordinates: [120.6, 31.3] } });
    svc.service.city.reload();
    const bin = await connectDevice(svc.url, 'MET-BIN-1', secrets['MET-BIN-1']!);
    const truck = await connectDevice(svc.url, 'MET-TRUCK-1', secrets['MET-TRUCK-1']!);
    const now = Date.now();
    // 80 °C: a fire risk on a registered bin.
    await bin.publishAsync('waste/bins/MET-BIN-1/telemetry', JSON.stringify({ ts: now, fill_pct: 40, temp_c: 80 }), { qos: 1 });
    await truck.publishAsync('waste/trucks/MET-TRUCK-1/position', JSON.stringify([{ ts: now - 1000, lat: 31.3, lon: 120.6, speed_kmh: 20, heading: 0 }, { ts: now, lat: 31.3001, lon: 120.6, speed_kmh: 20, heading: 0 }]), { qos: 1 });
    await truck.publishAsync('waste/trucks/MET-TRUCK-1/position', JSON.stringify({ ts: now, lat: 95, lon: 120.6, speed_kmh: 20, heading: 0 }), { qos: 1 });
    await truck.publishAsync('waste/trucks/MET-TRUCK-1/position', '{not json', { qos: 1 });
    await svc.service.shipper.drained(10_000);

    const text = await eventually(async () => (await metrics()).text(), (t) => (sample(t, 'waste_influx_write_seconds_count') ?? 0) > 0);
    expect(sample(text, 'waste_ingest_received_total', 'device_class="trucks"')).toBe(3);
    expect(sample(text, 'waste_ingest_received_total', 'device_class="bins"')).toBe(1);
    expect(sample(text, 'waste_ingest_received_total', 'device_class="scales"')).toBe(0);
    expect(sample(text, 'waste_ingest_rejected_total', 'reason="out_of_range"')).toBe(1);
    expect(sample(text, 'waste_ingest_rejected_total', 'reason="invalid_json"')).toBe(1);
    // 3 readings, and the two devices' connections.
    expect(sample(text, 'waste_ingest_accepted_total')).toBe(5);
    // The bin's message and the truck's batch; not the two connections (status readings are
    // stored, not judged), nor an empty slice of the start-up replay.
    expect(sample(text, 'waste_rules_evaluation_seconds_count')).toBe(2);
    expect(sample(text, 'waste_alerts_raised_total', 'type="fire_risk"')).toBe(1);
    expect(sample(text, 'waste_alerts_open', 'type="fire_risk",jurisdiction="unassigned",severity="critical",status="open"')).toBe(1);
    expect(sample(text, 'waste_webhook_outbox_depth')).toBe(0);
    expect(sample(text, 'waste_broker_connected_clients')).toBe(2);
    expect(sample(text, 'waste_influx_up')).toBe(1);
    expect(sample(text, 'waste_spool_backlog_bytes')).toBe(svc.service.spool.backlogBytes());
    expect(sample(text, 'waste_ingest_waiting_messages')).toBe(0);
    expect(sample(text, 'waste_influx_delivered_lines_total')).toBe(svc.service.shipper.stats.deliveredLines);
    expect(text).toMatch(/^process_resident_memory_bytes \d+/m);
    await bin.endAsync();
    await truck.endAsync();
    await svc.stop();
  });
});

// The dashboards: each JSON parses, is what dashboards/src builds, and uses only the provisioned data
// source; every panel, variable and annotation query, with Grafana's macros expanded, runs against a
// real InfluxDB filled by a short simulator run plus a few hand-made devices, and returns series.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DASHBOARDS, fileOf, JSON_DIR, render } from '../../dashboards/src/build.ts';
import { DATASOURCE, type Json } from '../../dashboards/src/grafana.ts';
import { localDate } from '../../services/contract/local-time.ts';
import { ENTITIES } from '../../services/registry/entities.ts';
import { startTestInfluxd, type TestInfluxd } from '../helpers/influxd.ts';
import { freePort } from '../helpers/ports.ts';
import { connectDevice, eventually, provision, sleep, startTestService, tempDir, testConfig, type TestService } from '../helpers/service.ts';

const run = promisify(execFile);
const MINUTE = 60_000;
const STATS_INTERVAL_MS = 1000;

interface PanelQuery {
  dashboard: string;
  panel: string;
  query: string;
  /** The time range the query runs over: the panel's own, else the dashboard's. */
  range: string;
  /** The panel's smallest $__interval. */
  minInterval: string | null;
}

const files = fs.readdirSync(JSON_DIR).filter((f) => f.endsWith('.json'));
const dashboards = files.map((f) => JSON.parse(fs.readFileSync(path.join(JSON_DIR, f), 'utf8')) as Json);

/** Every object under `node` with a `datasource` key. */
function datasourceRefs(node: unknown, out: unknown[] = []): unknown[] {
  if (Array.isArray(node)) for (const item of node) datasourceRefs(item, out);
  else if (node && typeof node === 'object') {
    if ('datasource' in node) out.push((node as Json).datasource);
    for (const value of Object.values(node)) datasourceRefs(value, out);
  }
  return out;
}

function panelQueries(d: Json): PanelQuery[] {
  const from = (d.time as { from: string }).from;
  const queries: PanelQuery[] = [];
  for (const p of d.panels as Json[]) {
    for (const t of (p.targets as Json[] | undefined) ?? []) {
      queries.push({ dashboard: d.uid as string, panel: p.title as string, query: t.query as string, range: (p.timeFrom as string | undefined) ?? from, minInterval: (p.interval as string | undefined) ?? null });
    }
  }
  for (const a of (d.annotations as { list: Json[] }).list) queries.push({ dashboard: d.uid as string, panel: `annotation ${a.name as string}`, query: (a.target as { query: string }).query, range: from, minInterval: null });
  return queries;
}

const durationMs = (text: string) => {
  const match = /^(\d+)([smhd])$/.exec(text);
  if (!match) throw new Error(`not a duration: ${text}`);
  return Number(match[1]) * { s: 1000, m: MINUTE, h: 60 * MINUTE, d: 24 * 60 * MINUTE }[match[2] as 's' | 'm' | 'h' | 'd'];
};

/**
 * Grafana's expansion of a query: $timeFilter for the range ('now/d', today so far, is checked as the
 * last 24 h, so the test does not depend on the hour it runs at), $__interval as Grafana picks it
 * for a panel about 1,000 px wide (never below the panel's own minimum), and each variable as given
 * (All is the variables' allValue, .*).
 */
const rangeMs = (q: PanelQuery) => (q.range === 'now/d' ? durationMs('1d') : durationMs(q.range.replace(/^now-/, '')));
const intervalMs = (q: PanelQuery) => Math.max(Math.round(rangeMs(q) / 1000 / 1000) * 1000, q.minInterval ? durationMs(q.minInterval) : 1000, 1000);

function expand(q: PanelQuery, variables: Record<string, string>): string {
  let text = q.query
    .replaceAll('$timeFilter', `time > now() - ${rangeMs(q)}ms`)
    .replaceAll('$__interval_ms', String(intervalMs(q)))
    .replaceAll('$__interval', `${intervalMs(q)}ms`);
  for (const [name, value] of Object.entries(variables)) text = text.replaceAll(`$${name}`, value);
  return text;
}

describe('dashboard files', () => {
  it('are the five dashboards dashboards/src builds, each with its own stable uid', () => {
    expect(files.sort()).toEqual(DASHBOARDS.map((d) => path.basename(fileOf(d))).sort());
    for (const d of DASHBOARDS) expect(fs.readFileSync(fileOf(d), 'utf8'), `${String(d.uid)}: run npm run dashboards`).toBe(render(d));
    const uids = dashboards.map((d) => d.uid);
    expect(uids.sort()).toEqual(['waste-bins', 'waste-command-centre', 'waste-muck-enforcement', 'waste-platform', 'waste-sorting']);
  });

  it('reference only the provisioned InfluxQL data source', () => {
    const provisioned = fs.readFileSync(path.join(JSON_DIR, '..', 'provisioning', 'datasources', 'influxdb.yaml'), 'utf8');
    expect(provisioned).toMatch(new RegExp(`^\\s+uid: ${DATASOURCE.uid}$`, 'm'));
    expect(provisioned).toMatch(/^\s+type: influxdb$/m);
    expect(provisioned).toMatch(/^\s+version: InfluxQL$/m);
    for (const d of dashboards) {
      const refs = datasourceRefs(d);
      expect(refs.length).toBeGreaterThan(5);
      for (const ref of refs) expect(ref, String(d.uid)).toEqual(DATASOURCE);
    }
  });

  it('have the district, jurisdiction and company variables between them, and alert changes as annotations', () => {
    const variables = new Set(dashboards.flatMap((d) => (d.templating as { list: Json[] }).list.map((v) => v.name)));
    for (const name of ['district', 'jurisdiction', 'company']) expect(variables).toContain(name);
    for (const d of dashboards) {
      const annotations = (d.annotations as { list: Json[] }).list;
      expect(annotations.map((a) => (a.target as { query: string }).query).join('\n')).toMatch(/FROM "alert" WHERE \$timeFilter/);
    }
  });

  it('are loaded from where the compose file mounts them', () => {
    const provider = fs.readFileSync(path.join(JSON_DIR, '..', 'provisioning', 'dashboards', 'waste.yaml'), 'utf8');
    const compose = fs.readFileSync(path.join(JSON_DIR, '..', '..', 'docker-compose.yml'), 'utf8');
    const mountedAt = /\.\/dashboards\/json:([^:]+):ro/.exec(compose)?.[1];
    expect(mountedAt).toBeTruthy();
    expect(provider).toContain(`path: ${mountedAt}`);
    expect(compose).toContain('./dashboards/provisioning:/etc/grafana/provisioning:ro');
  });
});

describe('every query against InfluxDB after a simulator run', () => {
  let influxd: TestInfluxd;
  let svc: TestService;
  let truck: MqttClient;

  beforeAll(async () => {
    influxd = await startTestInfluxd();
    const startedAt = Date.now();
    svc = await startTestService(
      await testConfig(influxd.url, { 'api.port': await freePort(), 'api.host': '127.0.0.1', 'ingest.statsIntervalMs': STATS_INTERVAL_MS, 'snapshots.intervalS': 2, 'snapshots.binIntervalS': 2 }),
    );
    const api = `http://127.0.0.1:${svc.ports.apiPort}`;
    const { token } = svc.service.tokens.create({ name: 'test', role: 'admin' });
    const city = await tempDir('waste-dash-city-');
    const sim = (args: string[]) => run(process.execPath, ['--import', 'tsx', 'device-sim/sim.ts', ...args], { timeout: 180_000 });
    await sim(['city', '--seed', '12', '--trucks', '8', '--collection-trucks', '3', '--bins', '40', '--sites', '3', '--out', city, '--api', api, '--token', token]);
    await sim(['run', '--city', city, '--url', svc.url, '--speed', 'max', '--start=-3h', '--duration', '3h', '--violations', 'all=0.2', '--progress-every', '30']);

    // Hand-made on top: what a 3-hour run may not show at every hour of the day.
    const bundle = JSON.parse(fs.readFileSync(path.join(city, 'registry-bundle.json'), 'utf8')) as Record<string, Json[]>;
    const { secret } = JSON.parse(fs.readFileSync(path.join(city, 'city.json'), 'utf8')) as { secret: string };
    const muck = bundle.trucks!.find((t) => t.fleet === 'muck')!;
    const transferScale = bundle.weighbridges!.find((w) => String(w.site_id).startsWith('transfer'))!;
    const community = bundle.communities![0]!;
    const now = Date.now();

    // A muck truck driving now at 90 km/h, loaded with its cover open (speeding, uncovered
    // transport, a spillage route); it stays connected, so one device is online.
    truck = await connectDevice(svc.url, muck.device_id as string, secret);
    const fixes = Array.from({ length: 24 }, (_, i) => ({ ts: now - (23 - i) * 5000, lat: 31.3, lon: 120.55 + i * 0.0013, speed_kmh: 90, heading: 90, ignition: true, cover_closed: false, load_kg: 20_000 }));
    await truck.publishAsync(`waste/trucks/${String(muck.device_id)}/position`, JSON.stringify(fixes), { qos: 1 });

    // Household tickets at a transfer station: today, and yesterday with too little kitchen waste
    // (a community below its target on a complete day).
    const scale = await connectDevice(svc.url, transferScale.device_id as string, secret);
    const tickets: [ts: number, category: string, netKg: number][] = [
      ...['kitchen', 'other', 'recyclable', 'hazardous'].map((category, i): [number, string, number] => [now - MINUTE + i, category, 3000]),
      [now - 24 * 60 * MINUTE, 'kitchen', 500],
      [now - 24 * 60 * MINUTE + 1, 'other', 5000],
    ];
    for (const [i, [ts, category, netKg]] of tickets.entries()) {
      const ticket = { ticket_id: `T-DASH-${i}`, ts, plate: '苏E·D0001', gross_kg: 6000 + netKg, tare_kg: 6000, net_kg: netKg, category, direction: 'in', origin: community.id };
      await scale.publishAsync(`waste/scales/${String(transferScale.device_id)}/tickets`, JSON.stringify(ticket), { qos: 1 });
    }
    await scale.endAsync();

    // A bin that overflowed with a low battery five hours ago and has been silent since (offline),
    // and one reading out of range (a rejection).
    const secrets = await provision(svc.config, [['BIN-DASH-1', 'bins']]);
    svc.service.entities.create(ENTITIES.bins, 'bin-dash-1', { category: 'other', community_id: community.id, depth_mm: 1000, device_id: 'BIN-DASH-1', location: { type: 'Point', coordinates: [120.58, 31.3] } });
    svc.service.city.reload();
    const bin = await connectDevice(svc.url, 'BIN-DASH-1', secrets['BIN-DASH-1']!);
    const readings = [92, 95, 97].map((fill, i) => ({ ts: now - 5 * 60 * MINUTE + i * 10 * MINUTE, fill_pct: fill, battery_v: 3.1, temp_c: 20 }));
    await bin.publishAsync('waste/bins/BIN-DASH-1/telemetry', JSON.stringify(readings), { qos: 1 });
    await bin.publishAsync('waste/bins/BIN-DASH-1/telemetry', JSON.stringify({ ts: now, fill_pct: 150 }), { qos: 1 });
    await bin.endAsync();

    const recompute = await fetch(`${api}/api/v1/sorting/recompute`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ from: localDate(now - 24 * 60 * MINUTE), to: localDate(now) }),
    });
    expect(recompute.status).toBe(200);
    // Offline is judged every second; snapshots every 2 s; then everything has to reach InfluxDB.
    await eventually(async () => svc.service.alerts.store.ongoing(['device_offline']), (m) => m.has('bin-dash-1'));
    await sleep(5000);
    // A derivative needs the service's counters in two of its time buckets (aligned to the epoch):
    // on a fast machine the whole run can fit in one, so wait for a stats point past the boundary.
    const bucketMs = Math.max(...dashboards.flatMap(panelQueries).filter((q) => q.query.includes('derivative(')).map(intervalMs));
    const boundary = Math.ceil((startedAt + STATS_INTERVAL_MS) / bucketMs) * bucketMs;
    await sleep(boundary + 2 * STATS_INTERVAL_MS - Date.now());
    // Under load the stats timer runs late: wait until InfluxDB holds a stats point past the boundary.
    const pastBoundary = async () =>
      Number((await influxd.store().query('SELECT count("delivered_lines") FROM "ingest_stats" WHERE time >= $from', { from: new Date(boundary).toISOString() }))[0]?.values[0]?.[1] ?? 0);
    expect(await eventually(pastBoundary, (n) => n > 0, 30_000)).toBeGreaterThan(0);
    expect(await svc.service.shipper.drained(30_000)).toBe(true);
  }, 300_000);

  afterAll(async () => {
    await truck?.endAsync();
    await svc?.stop();
    await influxd?.cleanup();
  });

  const all = (d: Json) => Object.fromEntries((d.templating as { list: Json[] }).list.map((v) => [v.name as string, v.type === 'textbox' ? String(v.query) : '.*']));

  it('every variable query lists values', async () => {
    const store = influxd.store();
    for (const d of dashboards) {
      for (const v of (d.templating as { list: Json[] }).list) {
        if (v.type !== 'query') continue;
        const series = await store.query(v.query as string);
        expect(series.flatMap((s) => s.values).length, `${String(d.uid)} $${String(v.name)}`).toBeGreaterThan(0);
      }
    }
  });

  it('every panel and annotation query returns series with every variable at All', async () => {
    const store = influxd.store();
    const empty: string[] = [];
    let checked = 0;
    for (const d of dashboards) {
      for (const q of panelQueries(d)) {
        const text = expand(q, all(d));
        expect(text, `${q.dashboard} / ${q.panel}: a macro left unexpanded`).not.toMatch(/\$[a-zA-Z_]/);
        const series = await store.query(text);
        if (series.length === 0 || series.every((s) => s.values.length === 0)) empty.push(`${q.dashboard} / ${q.panel}: ${text}`);
        checked++;
      }
    }
    expect(empty).toEqual([]);
    expect(checked).toBeGreaterThan(45);
  });

  it('every query runs with each variable narrowed to one of its values', async () => {
    const store = influxd.store();
    for (const d of dashboards) {
      const variables = all(d);
      for (const v of (d.templating as { list: Json[] }).list) {
        if (v.type !== 'query') continue;
        const first = (await store.query(v.query as string))[0]?.values[0]?.[1] as string;
        // Grafana escapes a value's regex characters inside /.../.
        const narrowed = { ...variables, [v.name as string]: first.replace(/[.*+?^${}()|[\]\\/-]/g, '\\$&') };
        for (const q of panelQueries(d)) await expect(store.query(expand(q, narrowed)), `${q.dashboard} / ${q.panel} with $${String(v.name)}=${first}`).resolves.toBeDefined();
      }
    }
  });
});

// `npm run bench:rules`: the cost of the truck rules per fix against a city of 10,000 permits
// (200-vertex routes), and the publish-to-alert latency through the running service at 10,000
// fixes/s. Progress goes to stderr; the last line on stdout is one JSON object with every figure.
import { spawn, type ChildProcess } from 'node:child_process';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import readline from 'node:readline';
import mqtt, { type MqttClient } from 'mqtt';
import { rulesSchema } from '../../services/config/schema.ts';
import type { TruckFix } from '../../services/contract/findings.ts';
import { Route } from '../../services/geo.ts';
import { PRIVATE_INFLUXD_NICENESS, startInfluxd } from '../../services/influx/influxd.ts';
import { createLogger } from '../../services/log.ts';
import { CityIndex } from '../../services/registry/city-index.ts';
import { AlertStore } from '../../services/alerts/alert-store.ts';
import { RegistryDb, isPostgresLocation } from '../../services/registry/db.ts';
import { DeviceStore } from '../../services/registry/devices.ts';
import { EntityStore } from '../../services/registry/entity-store.ts';
import { RulesEngine } from '../../services/rules/engine.ts';
import { freePort } from '../../test/helpers/ports.ts';
import { startTestPostgres } from '../../test/helpers/postgres.ts';
import { cpuMs, peakRssMb } from '../proc.ts';
import { SERVICE_NODE_OPTIONS, benchServiceEnv } from '../service-env.ts';
import { root, say, sleep } from '../child.ts';
import { ROUTE_VERTICES, SECRET, writeBenchCity, type BenchCity } from './city.ts';

const HELP = `Usage: npm run bench:rules -- [--trucks N] [--rounds R] [--rate F[,F...]] [--active A] [--seconds S] [--warmup W] [--database sqlite|postgres|sqlite,postgres] [--skip-latency] [--profile DIR]

1. Engine: N trucks with one permit each (${ROUTE_VERTICES}-vertex routes) drive R rounds of fixes through the
   rules in process; prints the cost per fix and of one route check.
2. Latency: the service (embedded broker, private InfluxDB) takes F fixes/s for S seconds from A
   of those trucks over MQTT (QoS 1); each truck dumps its load off-site every 150 fixes, and the time
   from publishing that fix to its alert on waste/alerts/# is measured (p50, p99, max), with the
   share of one core the service used meanwhile, and the publish-to-PUBACK time (a fix is
   acknowledged once it is durable in the spool). Each rate first runs W seconds unmeasured, for the
   service's JIT compiler and the trucks' first fixes; the worst latency in that warm-up is shown
   apart. Several rates (comma-separated) run one after the other against the same service, to show
   where it saturates.
3. Alert writes: 2,000 findings of distinct subjects recorded one after the other in the alert
   store (each a transaction: lock, look-up, insert, jurisdictions, history), per second.
--database runs all of it on each registry backend named, one after the other: SQLite (a file) or
   PostgreSQL (a throwaway cluster from Debian's postgresql, initdb in a temp directory); with both,
   the last line compares PostgreSQL's p99 with SQLite's.
--profile DIR writes a V8 CPU profile of the service (.cpuprofile).
Defaults: N=10000, R=20, F=2500,5000,10000, A=2000, S=20, W=5, database sqlite.
`;

const { values } = parseArgs({
  options: {
    trucks: { type: 'string', default: '10000' },
    rounds: { type: 'string', default: '20' },
    rate: { type: 'string', default: '2500,5000,10000' },
    active: { type: 'string', default: '2000' },
    seconds: { type: 'string', default: '20' },
    warmup: { type: 'string', default: '5' },
    'skip-latency': { type: 'boolean', default: false },
    database: { type: 'string', default: 'sqlite' },
    profile: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
});
if (values.help) {
  process.stdout.write(HELP);
  process.exit(0);
}
const TRUCKS = Number(values.trucks);
const BACKENDS = values.database!.split(',').map((b) => b.trim());
if (BACKENDS.length === 0 || BACKENDS.some((b) => b !== 'sqlite' && b !== 'postgres') || new Set(BACKENDS).size !== BACKENDS.length) {
  process.stderr.write(`--database must be sqlite, postgres or sqlite,postgres; got ${values.database}\n`);
  process.exit(2);
}
const ROUNDS = Number(values.rounds);
const RATES = values.rate.split(',').map(Number);
if (RATES.some((r) => !(r > 0))) {
  process.stderr.write(`--rate must be one or more positive numbers, comma-separated; got ${values.rate}\n`);
  process.exit(2);
}
const ACTIVE = Math.min(Number(values.active), TRUCKS);
if (!values['skip-latency'] && ACTIVE * RATES.length > TRUCKS) {
  process.stderr.write(`each rate drives its own ${ACTIVE} trucks: --active times the number of rates must be at most --trucks (${TRUCKS})\n`);
  process.exit(2);
}
const SECONDS = Number(values.seconds);
const WARMUP = Number(values.warmup);
if (!(SECONDS > 0) || !(WARMUP >= 0)) {
  process.stderr.write(`--seconds must be a positive number and --warmup zero or more; got ${values.seconds} and ${values.warmup}\n`);
  process.exit(2);
}
const percentile = (sorted: number[], p: number) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]! : null);
const round = (x: number, digits = 2) => Math.round(x * 10 ** digits) / 10 ** digits;



function engineBench(location: string, city: BenchCity) {
  const db = new RegistryDb(location);
  db.open();
  let started = performance.now();
  const index = new CityIndex(db, new EntityStore(db));
  const registry = index.current;
  const registryLoadMs = performance.now() - started;
  say(`registry snapshot: ${registry.permitCount()} permits in ${Math.round(registryLoadMs)} ms`);
  let findings = 0;
  const engine = new RulesEngine({
    config: rulesSchema.parse({}),
    registry: () => registry,
    speedLimitAt: () => 60,
    onFinding: () => findings++,
    onSpill: () => {},
    log: createLogger('warn'),
  });
  // Every truck drives its route loaded, covered, on time, with 10 m of GPS jitter: every rule runs, none fires.
  const base = Date.now() - 3_600_000;
  const fixes: TruckFix[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    for (let i = 0; i < TRUCKS; i++) {
      const route = city.routes[i]!;
      const v = Math.floor(((r + 1) / (ROUNDS + 1)) * (route.length - 1));
      const jitter = () => (Math.random() - 0.5) * 0.0002;
      fixes.push({ kind: 'truck', deviceId: city.deviceOf(i), ts: base + r * 15_000 + i, lon: route[v]![0] + jitter(), lat: route[v]![1] + jitter(), speed_kmh: 36, heading: 90, ignition: true, cover_closed: true, tipper_up: false, load_kg: 20_000 });
    }
  }
  say(`engine: ${fixes.length} fixes of ${TRUCKS} trucks...`);
  started = performance.now();
  for (const fix of fixes) engine.consume([fix]);
  const engineMs = performance.now() - started;
  const route = new Route({ type: 'LineString', coordinates: city.routes[0]! });
  const probes = city.routes.slice(0, 1000).map((r) => r[50]!);
  const calls = 200_000;
  started = performance.now();
  let sink = 0;
  for (let k = 0; k < calls; k++) sink += route.distanceTo(probes[k % probes.length]!);
  const routeCheckUs = ((performance.now() - started) * 1000) / calls;
  db.close();
  const usPerFix = (engineMs * 1000) / fixes.length;
  say(`engine: ${round(usPerFix)} µs per fix (${findings} findings, expected 0); one route check ${round(routeCheckUs, 3)} µs${sink < 0 ? '' : ''}`);
  return { registryLoadMs, usPerFix, routeCheckUs, fixes: fixes.length, findings };
}

async function latencyBench(dir: string, location: string, city: BenchCity) {
  const influxd = await startInfluxd({ dir: path.join(dir, 'influxdb'), port: await freePort(), rpcPort: 0, niceness: PRIVATE_INFLUXD_NICENESS });
  const db = new RegistryDb(location);
  db.open();
  const watcherSecret = await new DeviceStore(db).addService('waste-bench');
  db.close();
  const mqttPort = await freePort();
  const profile = values.profile ? ['--cpu-prof', `--cpu-prof-dir=${path.resolve(values.profile)}`] : [];
  const service = spawn(process.execPath, [...SERVICE_NODE_OPTIONS, ...profile, '--import', 'tsx', 'services/main.ts'], {
    cwd: root,
    env: { ...process.env, ...benchServiceEnv(path.join(dir, 'data'), mqttPort, influxd.url), WASTE_ALERTS_MERGE_GAP_S: '1', ...(isPostgresLocation(location) ? { WASTE_DATABASE_URL: location } : {}) },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const stopAll = async () => {
    if (service.exitCode === null) {
      service.kill('SIGTERM');
      await new Promise((r) => service.once('exit', r));
    }
    await influxd.stop();
  };
  process.once('exit', () => service.kill('SIGKILL'));
  try {
    return await measure(service, `mqtt://127.0.0.1:${mqttPort}`, watcherSecret, dir, location, city);
  } finally {
    await stopAll();
  }
}

/** The publisher's last line (publisher.ts). */
interface PublisherDone {
  published: number;
  acknowledged: number;
  measured: number;
  dumps: number;
  elapsedS: number;
  ackP50Ms: number | null;
  ackP99Ms: number | null;
}

interface RateResult {
  rate: number;
  published: number;
  acknowledged: number;
  achieved: number;
  dumps: number;
  latencies: number[];
  warmupMaxMs: number;
  ackP50Ms: number | null;
  ackP99Ms: number | null;
  serviceCpuPct: number;
}

async function measure(service: ChildProcess, url: string, watcherSecret: string, dir: string, location: string, city: BenchCity) {
  let watcher: MqttClient | null = null;
  for (let i = 0; i < 600 && !watcher; i++) {
    watcher = await mqtt.connectAsync(url, { username: 'waste-bench', password: watcherSecret, clientId: 'bench-watcher', reconnectPeriod: 0 }).catch(() => null);
    if (!watcher) await sleep(100);
  }
  if (!watcher) throw new Error('the service did not come up within 60 s');
  /** Alerts of the current rate: when their dump fix was published (epoch ms) and how long the alert took. */
  let alerts: { sent: number; ms: number }[] = [];
  const seen = new Set<string>();
  watcher.on('message', (_topic, payload) => {
    const alert = JSON.parse(payload.toString()) as { id: string; version: number; subject: { device_id?: string }; evidence: { ts: number }[] };
    if (alert.version !== 1 || seen.has(alert.id)) return;
    seen.add(alert.id);
    // The dump fix's ts is the wall-clock time it was published (publisher.ts).
    const sent = alert.evidence.at(-1)?.ts;
    if (sent !== undefined) alerts.push({ sent, ms: performance.timeOrigin + performance.now() - sent });
  });
  await watcher.subscribeAsync('waste/alerts/#', { qos: 1 });

  // Each rate drives trucks of its own, so no truck's state carries over from one rate to the next.
  // Each truck stands on its route, at a vertex outside every disposal site (where tipping is allowed).
  const db = new RegistryDb(location);
  db.open();
  const registry = new CityIndex(db, new EntityStore(db)).current;
  const trucksOfRun = (run: number) =>
    Array.from({ length: ACTIVE }, (_, k) => {
      const i = run * ACTIVE + k;
      const [lon, lat] = city.routes[i]!.slice(100).find((p) => registry.disposalSitesAt(p, 100).length === 0)!;
      return { id: city.deviceOf(i), lon, lat };
    });
  const trucksFiles = await Promise.all(
    RATES.map(async (_, run) => {
      const file = path.join(dir, `trucks-${run}.json`);
      await fsp.writeFile(file, JSON.stringify(trucksOfRun(run)));
      return file;
    }),
  );
  db.close();
  const results: RateResult[] = [];
  for (const [run, rate] of RATES.entries()) {
    const trucksFile = trucksFiles[run]!;
    say(`publishing ${rate} fixes/s for ${SECONDS} s from ${ACTIVE} trucks (each dumps its load off-site every 150 fixes)...`);
    alerts = [];
    const publisher = spawn(process.execPath, ['--import', 'tsx', 'bench/rules/publisher.ts', '--url', url, '--trucks', trucksFile, '--secret', SECRET, '--rate', String(rate), '--seconds', String(SECONDS), '--warmup', String(WARMUP)], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
    let done: PublisherDone | null = null;
    let measuredFrom = Number.POSITIVE_INFINITY;
    let cpuAtStart = 0;
    let cpuAtEnd = 0;
    readline.createInterface({ input: publisher.stdout }).on('line', (line) => {
      const event = JSON.parse(line) as PublisherDone & { event: string; from: number };
      if (event.event === 'measuring') {
        cpuAtStart = cpuMs(service.pid);
        measuredFrom = event.from;
        say(`warm-up over (${WARMUP} s); measuring for ${SECONDS} s`);
      }
      if (event.event === 'progress') say(`published ${event.published}, acknowledged ${event.acknowledged}, alerts ${alerts.length}`);
      if (event.event === 'published') cpuAtEnd = cpuMs(service.pid);
      if (event.event === 'done') done = event;
    });
    await new Promise((resolve) => publisher.once('exit', resolve));
    if (!done) throw new Error('the publisher failed');
    const result: PublisherDone = done;
    const measuredAlerts = () => alerts.filter((a) => a.sent >= measuredFrom);
    const deadline = Date.now() + 10_000;
    while (measuredAlerts().length < result.dumps && Date.now() < deadline) await sleep(100);
    const latencies = measuredAlerts().map((a) => a.ms).sort((a, b) => a - b);
    const warmupMaxMs = Math.max(0, ...alerts.filter((a) => a.sent < measuredFrom).map((a) => a.ms));
    const serviceCpuPct = (100 * (cpuAtEnd - cpuAtStart)) / (result.elapsedS * 1000);
    const achieved = result.measured / result.elapsedS;
    say(`latency: ${latencies.length}/${result.dumps} alerts; p50 ${round(percentile(latencies, 0.5) ?? NaN, 1)} ms, p99 ${round(percentile(latencies, 0.99) ?? NaN, 1)} ms at ${Math.round(achieved)} fixes/s; service CPU ${Math.round(serviceCpuPct)} % of one core (warm-up: worst ${Math.round(warmupMaxMs)} ms); PUBACK p50 ${round(result.ackP50Ms ?? NaN, 1)} ms, p99 ${round(result.ackP99Ms ?? NaN, 1)} ms`);
    results.push({ rate, published: result.published, acknowledged: result.acknowledged, achieved, dumps: result.dumps, latencies, warmupMaxMs, ackP50Ms: result.ackP50Ms, ackP99Ms: result.ackP99Ms, serviceCpuPct });
  }
  const serviceRssMb = peakRssMb(service.pid);
  await watcher.endAsync();
  return { results, serviceRssMb };
}

/** 2,000 findings of distinct subjects, one transaction each, as the rules raise them. */
function alertWriteBench(location: string) {
  const db = new RegistryDb(location).open();
  const store = new AlertStore(db, { mergeGapMs: () => 60_000, evidenceMax: 50 });
  const count = 2000;
  const base = Date.now() - 3_600_000;
  const started = performance.now();
  for (let i = 0; i < count; i++) {
    const ts = base + i;
    store.record(
      {
        type: 'illegal_dump',
        severity: 'critical',
        subject: { kind: 'truck', id: `BENCH-T${i}`, deviceId: `BENCH-G${i}`, plate: `苏E${String(i).padStart(5, '0')}` },
        startedAt: ts,
        endedAt: ts,
        location: [120.6, 31.3],
        jurisdictions: ['J0'],
        evidence: [{ kind: 'fix', device_id: `BENCH-G${i}`, ts, lon: 120.6, lat: 31.3, speed_kmh: 0 }],
        permit: null,
        detail: {},
      },
      Date.now(),
    );
  }
  const perSecond = count / ((performance.now() - started) / 1000);
  db.close();
  say(`alert writes: ${Math.round(perSecond)} per second (${count} findings, one transaction each)`);
  return perSecond;
}

async function runOn(backend: 'sqlite' | 'postgres') {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'waste-bench-rules-'));
  const postgres = backend === 'postgres' ? await startTestPostgres() : null;
  try {
    say(`${backend}: ${TRUCKS} trucks and permits, ${os.cpus().length} cores, Node ${process.version}`);
    const location = postgres ? await postgres.createDatabase('bench') : path.join(dir, 'data', 'registry.db');
    const city = await writeBenchCity(location, TRUCKS, say);
    const engine = engineBench(location, city);
    const alertWritesPerS = alertWriteBench(location);
    const latency = values['skip-latency'] ? null : await latencyBench(dir, location, city);
    return {
      database: backend,
      trucks: TRUCKS,
      permits: TRUCKS,
      route_vertices: ROUTE_VERTICES,
      registry_snapshot_ms: Math.round(engine.registryLoadMs),
      engine_fixes: engine.fixes,
      engine_us_per_fix: round(engine.usPerFix),
      route_check_us: round(engine.routeCheckUs, 3),
      engine_false_findings: engine.findings,
      alert_writes_per_s: Math.round(alertWritesPerS),
      active_trucks: ACTIVE,
      latency: latency?.results.map((r) => ({
        target_fixes_per_s: r.rate,
        achieved_fixes_per_s: Math.round(r.achieved),
        published: r.published,
        acknowledged: r.acknowledged,
        dumps: r.dumps,
        alerts: r.latencies.length,
        p50_ms: round(percentile(r.latencies, 0.5) ?? NaN, 1),
        p99_ms: round(percentile(r.latencies, 0.99) ?? NaN, 1),
        max_ms: round(r.latencies.at(-1) ?? NaN, 1),
        warmup_max_ms: round(r.warmupMaxMs, 1),
        puback_p50_ms: round(r.ackP50Ms ?? NaN, 1),
        puback_p99_ms: round(r.ackP99Ms ?? NaN, 1),
        service_cpu_pct: Math.round(r.serviceCpuPct),
      })) ?? null,
      service_peak_rss_mb: latency ? Math.round(latency.serviceRssMb) : null,
    };
  } finally {
    await postgres?.cleanup();
    await fsp.rm(dir, { recursive: true, force: true });
  }
}

const runs = [];
for (const backend of BACKENDS as ('sqlite' | 'postgres')[]) runs.push(await runOn(backend));
const bench_peak_rss_mb = Math.round(peakRssMb(process.pid));
if (runs.length === 1) {
  process.stdout.write(JSON.stringify({ ...runs[0], bench_peak_rss_mb }) + '\n');
} else {
  // PostgreSQL's p99 publish-to-alert over SQLite's, rate by rate.
  const [sqlite, postgres] = runs as [Awaited<ReturnType<typeof runOn>>, Awaited<ReturnType<typeof runOn>>];
  const p99_ratio = sqlite.latency?.map((r, k) => ({ target_fixes_per_s: r.target_fixes_per_s, postgres_over_sqlite: round((postgres.latency?.[k]?.p99_ms ?? NaN) / r.p99_ms, 2) })) ?? null;
  for (const r of p99_ratio ?? []) say(`p99 publish-to-alert at ${r.target_fixes_per_s} fixes/s: PostgreSQL ${r.postgres_over_sqlite}× SQLite's`);
  process.stdout.write(JSON.stringify({ sqlite, postgres, p99_ratio, alert_writes_ratio: round(postgres.alert_writes_per_s / sqlite.alert_writes_per_s, 2), bench_peak_rss_mb }) + '\n');
}

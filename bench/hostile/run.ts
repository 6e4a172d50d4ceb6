// `npm run bench:hostile`: how long one hostile or faulty device can hold the service's event loop.
// The service runs as `npm start` runs it (embedded broker, private InfluxDB); a well-behaved truck
// publishes a fix every 20 ms throughout and its publish-to-PUBACK time is measured, while one
// device at a time floods it with the worst traffic it may send. The reference is the same probe
// against a bare aedes (the broker hop alone) and against the service with no hostile traffic.
// The service's own event-loop delay comes from its /metrics (prom-client's
// nodejs_eventloop_lag_max_seconds, reset at each scrape). Progress goes to stderr; the last line
// on stdout is one JSON object with every figure.
import { spawn, type ChildProcess } from 'node:child_process';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { parseArgs } from 'node:util';
import mqtt, { type MqttClient } from 'mqtt';
import { hashSecret } from '../../services/broker/secrets.ts';
import { PRIVATE_INFLUXD_NICENESS, startInfluxd } from '../../services/influx/influxd.ts';
import { RegistryDb } from '../../services/registry/db.ts';
import { DeviceStore } from '../../services/registry/devices.ts';
import { ENTITIES } from '../../services/registry/entities.ts';
import { EntityStore } from '../../services/registry/entity-store.ts';
import { freePort } from '../../test/helpers/ports.ts';
import { writeBenchCity, SECRET, type BenchCity } from '../rules/city.ts';
import { cpuMs, peakRssMb } from '../proc.ts';
import { SERVICE_NODE_OPTIONS, benchServiceEnv } from '../service-env.ts';
import { root, say, sleep } from '../child.ts';

const HELP = `Usage: npm run bench:hostile -- [--seconds S] [--scenario NAME[,NAME...]] [--profile DIR] [--trace-gc]

Runs the service (embedded broker, private InfluxDB, 100 trucks with permits, one bin) and, for S
seconds per scenario, lets one device flood it while a well-behaved truck publishes a fix every
20 ms. Scenarios:
  reversed-fixes    1,000-fix batches, newest first, each batch among the fixes already kept
  reversed-bins     1,000-reading bin batches, newest first, the same way
  older-singles     one fix a message, each older than the one before
  invalid-batches   1,000-item batches of invalid readings (deep arrays, bad types), 200 KiB each
  bad-secrets       CONNECTs with wrong secrets as fast as the socket takes them
Prints, per scenario: the service's longest event-loop delay, the probe's PUBACK p50/p99/max, the
hostile device's messages/s and the service's CPU and peak RSS; the reference is the probe against
a bare aedes and against the idle service. --profile DIR writes a V8 CPU profile of the service; --trace-gc prints its garbage collections.
Defaults: S=10, every scenario.
`;

const SCENARIOS = ['reversed-fixes', 'reversed-bins', 'older-singles', 'invalid-batches', 'bad-secrets'] as const;
type Scenario = (typeof SCENARIOS)[number];

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '10' },
    scenario: { type: 'string', default: SCENARIOS.join(',') },
    profile: { type: 'string' },
    'trace-gc': { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h' },
  },
});
if (values.help) {
  process.stdout.write(HELP);
  process.exit(0);
}
const SECONDS = Number(values.seconds);
const chosen = values.scenario.split(',') as Scenario[];
if (!(SECONDS > 0) || chosen.some((s) => !SCENARIOS.includes(s))) {
  process.stderr.write(`--seconds must be positive and --scenario one or more of ${SCENARIOS.join(', ')}\n`);
  process.exit(2);
}

const round = (x: number, digits = 1) => Math.round(x * 10 ** digits) / 10 ** digits;
const percentile = (sorted: number[], p: number) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]! : null);
const BIN = 'BIN-H';



/** A truck that publishes one fix every 20 ms at QoS 1 and times each PUBACK. */
function startProbe(client: MqttClient, topic: string, position: [number, number]) {
  const latencies: number[] = [];
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      const sent = performance.now();
      const fix = { ts: Date.now(), lon: position[0], lat: position[1], speed_kmh: 0, heading: 0, ignition: true, cover_closed: true };
      await client.publishAsync(topic, JSON.stringify(fix), { qos: 1 });
      latencies.push(performance.now() - sent);
      await sleep(20);
    }
  })();
  return {
    async stop() {
      stopped = true;
      await loop;
      const sorted = latencies.sort((a, b) => a - b);
      return { probes: sorted.length, p50Ms: percentile(sorted, 0.5), p99Ms: percentile(sorted, 0.99), maxMs: sorted.at(-1) ?? null };
    },
  };
}

async function bareBrokerProbe() {
  const broker = spawn(process.execPath, ['--import', 'tsx', 'bench/ingest/bare-broker.ts', '0'], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve) => {
    readline.createInterface({ input: broker.stdout! }).on('line', (line) => {
      const event = JSON.parse(line) as { event: string; port?: number };
      if (event.event === 'ready') resolve(event.port!);
    });
  });
  const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { clientId: 'probe', reconnectPeriod: 0 });
  const probe = startProbe(client, 'waste/trucks/GPS-00001/position', [120.6, 31.3]);
  await sleep(SECONDS * 1000);
  const figures = await probe.stop();
  await client.endAsync();
  broker.kill('SIGTERM');
  say(`bare broker: probe PUBACK p50 ${round(figures.p50Ms ?? 0, 2)} ms, p99 ${round(figures.p99Ms ?? 0, 2)} ms`);
  return figures;
}

async function metricsOf(apiUrl: string): Promise<{ lagMaxMs: number }> {
  const text = await (await fetch(`${apiUrl}/metrics`)).text();
  const lag = /^nodejs_eventloop_lag_max_seconds (\S+)$/m.exec(text)?.[1];
  return { lagMaxMs: Number(lag ?? NaN) * 1000 };
}

/** One device's worst traffic, sent as fast as its PUBACKs come back (ten messages in flight). */
async function flood(scenario: Scenario, url: string, city: BenchCity, until: number): Promise<number> {
  if (scenario === 'bad-secrets') {
    let attempts = 0;
    while (Date.now() < until) {
      await Promise.all(
        Array.from({ length: 50 }, () =>
          mqtt
            .connectAsync(url, { username: city.deviceOf(2), password: 'wrong', clientId: `bad-${attempts++}`, reconnectPeriod: 0, connectTimeout: 5000 })
            .then((c) => c.endAsync(true), () => {}),
        ),
      );
    }
    return attempts;
  }
  const device = scenario === 'reversed-bins' ? BIN : city.deviceOf(0);
  const topic = scenario === 'reversed-bins' ? `waste/bins/${BIN}/telemetry` : `waste/trucks/${device}/position`;
  const client = await mqtt.connectAsync(url, { username: device, password: SECRET, clientId: `${device}-hostile`, reconnectPeriod: 0 });
  const route = city.routes[0]!;
  const base = Date.now() - 600_000;
  let sent = 0;
  const message = (k: number): string => {
    switch (scenario) {
      case 'reversed-fixes':
        // 1,000 fixes 0.5 s apart, each batch interleaved 1 ms after the last, sent newest first.
        return JSON.stringify(
          Array.from({ length: 1000 }, (_, j) => {
            const [lon, lat] = route[Math.floor((j / 1000) * route.length)]!;
            return { ts: base + j * 500 + (k % 400), lat, lon, speed_kmh: 30, heading: 90, ignition: true, cover_closed: true };
          }).reverse(),
        );
      case 'reversed-bins':
        return JSON.stringify(Array.from({ length: 1000 }, (_, j) => ({ ts: base + j * 500 + (k % 400), fill_pct: (j * 7) % 100, temp_c: 20 })).reverse());
      case 'older-singles': {
        const [lon, lat] = route[100]!;
        return JSON.stringify({ ts: Date.now() - 1000 - k * 10, lat, lon, speed_kmh: 0, heading: 0, ignition: true, cover_closed: true });
      }
      case 'invalid-batches': {
        const deep = '['.repeat(90) + ']'.repeat(90);
        return `[${Array.from({ length: 1000 }, (_, j) => (j % 2 ? `{"ts":${Date.now()},"lat":${deep},"lon":"x","speed_kmh":-1,"heading":999}` : `{"ts":1e20,"lat":"${'y'.repeat(10)}"}`)).join(',')}]`;
      }
    }
  };
  const inFlight = new Set<Promise<unknown>>();
  while (Date.now() < until) {
    const p = client.publishAsync(topic, message(sent++), { qos: 1 }).finally(() => inFlight.delete(p));
    inFlight.add(p);
    if (inFlight.size >= 10) await Promise.race(inFlight);
  }
  await Promise.all(inFlight);
  await client.endAsync();
  return sent;
}

async function run() {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'waste-bench-hostile-'));
  const registryFile = path.join(dir, 'data', 'registry.db');
  await fsp.mkdir(path.dirname(registryFile), { recursive: true });
  const city = await writeBenchCity(registryFile, 100, say);
  {
    const db = new RegistryDb(registryFile);
    db.open();
    const now = new Date().toISOString();
    new DeviceStore(db).importCredentials([{ id: BIN, class: 'bins', secret_hash: await hashSecret(SECRET), enabled: true, created_at: now }], []);
    new EntityStore(db).create(ENTITIES.bins, 'B-H', { category: 'other', location: { type: 'Point', coordinates: [120.6, 31.3] }, depth_mm: 1000, device_id: BIN });
    db.close();
  }
  const reference = await bareBrokerProbe();

  const influxd = await startInfluxd({ dir: path.join(dir, 'influxdb'), port: await freePort(), rpcPort: 0, niceness: PRIVATE_INFLUXD_NICENESS });
  const mqttPort = await freePort();
  const apiPort = await freePort();
  const profile = [...(values.profile ? ['--cpu-prof', `--cpu-prof-dir=${path.resolve(values.profile)}`] : []), ...(values['trace-gc'] ? ['--trace-gc'] : [])];
  const service: ChildProcess = spawn(process.execPath, [...SERVICE_NODE_OPTIONS, ...profile, '--import', 'tsx', 'services/main.ts'], {
    cwd: root,
    env: { ...process.env, ...benchServiceEnv(path.join(dir, 'data'), mqttPort, influxd.url), WASTE_API_PORT: String(apiPort), WASTE_METRICS_PUBLIC: 'true' },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  process.once('exit', () => service.kill('SIGKILL'));
  const url = `mqtt://127.0.0.1:${mqttPort}`;
  const apiUrl = `http://127.0.0.1:${apiPort}`;
  try {
    let probeClient: MqttClient | null = null;
    for (let i = 0; i < 600 && !probeClient; i++) {
      if (service.exitCode !== null) throw new Error(`the service exited with code ${service.exitCode} before it took connections`);
      probeClient = await mqtt.connectAsync(url, { username: city.deviceOf(1), password: SECRET, clientId: 'probe', reconnectPeriod: 0 }).catch(() => null);
      if (!probeClient) await sleep(100);
    }
    if (!probeClient) throw new Error('the service did not come up within 60 s');
    const position = city.routes[1]![100]!;
    const results: Record<string, unknown>[] = [];
    for (const scenario of ['idle', ...chosen] as const) {
      await metricsOf(apiUrl); // resets the event-loop histogram
      const cpuBefore = cpuMs(service.pid);
      const started = Date.now();
      const probe = startProbe(probeClient, `waste/trucks/${city.deviceOf(1)}/position`, position);
      const messages = scenario === 'idle' ? (await sleep(SECONDS * 1000), 0) : await flood(scenario, url, city, started + SECONDS * 1000);
      const elapsedS = (Date.now() - started) / 1000;
      const figures = await probe.stop();
      const { lagMaxMs } = await metricsOf(apiUrl);
      const result = {
        scenario,
        hostile_msgs_per_s: round(messages / elapsedS),
        event_loop_max_ms: round(lagMaxMs),
        probe_puback_p50_ms: round(figures.p50Ms ?? 0, 2),
        probe_puback_p99_ms: round(figures.p99Ms ?? 0, 2),
        probe_puback_max_ms: round(figures.maxMs ?? 0, 2),
        service_cpu_pct: round(((cpuMs(service.pid) - cpuBefore) / (elapsedS * 1000)) * 100),
        service_peak_rss_mb: round(peakRssMb(service.pid)),
      };
      say(
        `${scenario}: ${result.hostile_msgs_per_s} hostile msg/s; event loop held at most ${result.event_loop_max_ms} ms; ` +
          `probe PUBACK p50 ${result.probe_puback_p50_ms} ms, p99 ${result.probe_puback_p99_ms} ms, max ${result.probe_puback_max_ms} ms; ` +
          `service ${result.service_cpu_pct} % of a core, peak RSS ${result.service_peak_rss_mb} MB`,
      );
      results.push(result);
    }
    await probeClient.endAsync();
    return { reference_bare_broker_puback_p50_ms: round(reference.p50Ms ?? 0, 2), reference_bare_broker_puback_p99_ms: round(reference.p99Ms ?? 0, 2), seconds_per_scenario: SECONDS, scenarios: results };
  } finally {
    if (service.exitCode === null) {
      service.kill('SIGTERM');
      await new Promise((r) => service.once('exit', r));
    }
    await influxd.stop();
    await fsp.rm(dir, { recursive: true, force: true });
  }
}

process.stdout.write(JSON.stringify(await run()) + '\n');

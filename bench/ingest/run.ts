// `npm run bench:ingest`: end-to-end ingest throughput and latency on this machine, with broker,
// ingest and a throwaway InfluxDB all local, compared with the bare broker hop in the same run.
// The last line printed is one JSON object with every figure.
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import mqtt from 'mqtt';
import { RegistryDb } from '../../services/registry/db.ts';
import { DeviceStore } from '../../services/registry/devices.ts';
import { ENTITIES } from '../../services/registry/entities.ts';
import { EntityStore } from '../../services/registry/entity-store.ts';
import { hashSecret } from '../../services/broker/secrets.ts';
import { SERVICE_NODE_OPTIONS, benchServiceEnv } from '../service-env.ts';
import { InfluxStore } from '../../services/influx/client.ts';
import { PRIVATE_INFLUXD_NICENESS, startInfluxd } from '../../services/influx/influxd.ts';
import { influxSchema } from '../../services/config/schema.ts';
import { startTestMosquitto } from '../../test/helpers/mosquitto.ts';
import { startTestPostgres } from '../../test/helpers/postgres.ts';
import { RABBIT_ADMIN, startTestRabbitCluster } from '../../test/helpers/rabbitmq.ts';
import { freePort } from '../../test/helpers/ports.ts';
import { cpuMs, peakRssMb } from '../proc.ts';
import { percentile, run, say, sleep } from '../child.ts';
import { bareBrokerHop, type BareBroker } from './bare-hop.ts';

const HELP = `Usage: npm run bench:ingest -- [--devices M] [--messages N] [--window W] [--rate R]
                                  [--broker embedded|mosquitto|rabbitmq] [--workers K]
                                  [--skip-bare] [--profile DIR]

M simulated devices publish N truck fixes each (QoS 1, W unacknowledged per device at most).
Reports end-to-end throughput (until every point is queryable in InfluxDB), p50/p99
publish-to-queryable latency (a probe device publishing every 20 ms during the run), peak RSS of
each process, the count check, and the bare broker hop (publishers -> broker -> one subscriber).
Defaults: M=50, N=4000, W=50, embedded broker, as fast as acknowledged. --rate R paces the devices
to R messages/s in all, to measure latency at a given load (a Suzhou-sized city: about 2000). --broker mosquitto runs Debian's Mosquitto, configured
with docs/examples/mosquitto.conf, as the external broker with the service as its ingest client,
and the bare hop through Mosquitto too. --broker rabbitmq runs a 3-node RabbitMQ cluster from
Debian's package (MQTT plugin, the service's HTTP authentication backend), PostgreSQL, an API
process and K ingest workers (--workers, default 1) sharing its partitions; the devices are spread
over the three nodes, and the bare hop goes through the cluster's MQTT plugin. It also reports
p50/p99 publish-to-alert latency: a bin overflows every 0.5 s and its alert is awaited on MQTT. --profile DIR writes a V8 CPU profile of
the service (.cpuprofile).
`;

const { values } = parseArgs({
  options: {
    devices: { type: 'string', default: '50' },
    messages: { type: 'string', default: '4000' },
    window: { type: 'string', default: '50' },
    'skip-bare': { type: 'boolean', default: false },
    profile: { type: 'string' },
    broker: { type: 'string', default: 'embedded' },
    workers: { type: 'string', default: '1' },
    rate: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
});
if (values.help) {
  process.stdout.write(HELP);
  process.exit(0);
}
if (!['embedded', 'mosquitto', 'rabbitmq'].includes(values.broker!)) {
  process.stderr.write('--broker must be embedded, mosquitto or rabbitmq\n');
  process.exit(2);
}
const K = Number(values.workers);
if (!Number.isInteger(K) || K < 1) {
  process.stderr.write('--workers must be a whole number of at least 1\n');
  process.exit(2);
}
const M = Number(values.devices);
const N = Number(values.messages);
const total = M * N;
const deviceIds = Array.from({ length: M }, (_, i) => `BENCH-${String(i).padStart(5, '0')}`);

async function pipeline() {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'waste-bench-'));
  const influxPort = await freePort();
  const influxd = await startInfluxd({ dir: path.join(dir, 'influxdb'), port: influxPort, rpcPort: 0, niceness: PRIVATE_INFLUXD_NICENESS });
  const store = new InfluxStore(influxSchema.parse({ url: influxd.url }));
  const rabbit = values.broker === 'rabbitmq';
  const postgres = rabbit ? await startTestPostgres() : null;
  const databaseUrl = postgres ? await postgres.createDatabase() : null;
  const registry = new RegistryDb(databaseUrl ?? path.join(dir, 'data', 'registry.db'));
  const devices = new DeviceStore(registry);
  registry.open();
  say(`provisioning ${M + 1} devices (one shared secret hash, as a fleet imported from one provisioning run)...`);
  const secret = 'bench-secret';
  const hash = await hashSecret(secret);
  const now = new Date().toISOString();
  devices.importCredentials([...deviceIds, 'BENCH-PROBE'].map((id) => ({ id, class: 'trucks' as const, secret_hash: hash, enabled: true, created_at: now, updated_at: now })), []);
  const secrets: Record<string, string> = Object.fromEntries([...deviceIds, 'BENCH-PROBE'].map((id) => [id, secret]));
  if (rabbit) {
    // The alert probe's bins (see alertProbe).
    devices.importCredentials(ALERT_BINS.map((id) => ({ id, class: 'bins' as const, secret_hash: hash, enabled: true, created_at: now, updated_at: now })), []);
    const entities = new EntityStore(registry);
    for (const [i, id] of ALERT_BINS.entries()) entities.create(ENTITIES.bins, id.toLowerCase(), { category: 'other', location: { type: 'Point', coordinates: [120.6 + i / 10_000, 31.3] }, depth_mm: 1000, device_id: id });
    for (const id of ALERT_BINS) secrets[id] = secret;
  }
  registry.close();
  const mqttPort = await freePort();
  const mosquitto = values.broker === 'mosquitto' ? await startTestMosquitto({ ...secrets, 'waste-ingest': 'bench-ingest' }) : null;
  const cluster = rabbit ? await startRabbitDeployment(dir, influxd.url, databaseUrl!) : null;
  const service = cluster
    ? null
    : run(['services/main.ts'], {
        ...benchServiceEnv(path.join(dir, 'data'), mqttPort, influxd.url),
        ...(mosquitto ? { WASTE_BROKER_URL: mosquitto.url, WASTE_INGEST_PASSWORD: 'bench-ingest' } : {}),
      }, undefined, [...SERVICE_NODE_OPTIONS, ...(values.profile ? ['--cpu-prof', `--cpu-prof-dir=${path.resolve(values.profile)}`] : [])]);
  service?.child.stdout!.pipe(process.stderr);
  // The service logs at warn here, so readiness is seen as the broker answering the probe device.
  const url = cluster ? cluster.nodes[0]!.mqttUrl : mosquitto ? mosquitto.url : `mqtt://127.0.0.1:${mqttPort}`;
  const publishTo = cluster ? cluster.nodes.map((n) => n.mqttUrl).join(',') : url;
  if (mosquitto) await sleep(2000); // the ingest worker's subscription must exist before data flows
  const probe = await (async () => {
    for (let i = 0; i < 200; i++) {
      try {
        return await mqtt.connectAsync(url, { username: 'BENCH-PROBE', password: secrets['BENCH-PROBE'], clientId: 'BENCH-PROBE-1', reconnectPeriod: 0 });
      } catch {
        await sleep(100);
      }
    }
    throw new Error('the service did not come up');
  })();

  // Probe: one fix every 20 ms with a unique ts; the poller notes when each becomes queryable.
  const probeBase = Date.now() - 60_000;
  const sentAt = new Map<number, number>();
  const latencies: number[] = [];
  let probeSeq = 0;
  let probing = true;
  const probeLoop = (async () => {
    while (probing) {
      const ts = probeBase + probeSeq++;
      sentAt.set(ts, Date.now());
      probe.publish('waste/trucks/BENCH-PROBE/position', JSON.stringify({ ts, lat: 31.3, lon: 120.6, speed_kmh: 1, heading: 1 }), { qos: 1 });
      await sleep(20);
    }
  })();
  const pollLoop = (async () => {
    let seen = probeBase - 1;
    while (probing || seen < probeBase + probeSeq - 1) {
      const series = await store.query('SELECT last(lat) FROM truck_position WHERE device_id = $id', { id: 'BENCH-PROBE' }).catch(() => []);
      const last = (series[0]?.values[0]?.[0] as number | undefined) ?? seen;
      const now = Date.now();
      for (let ts = seen + 1; ts <= last; ts++) {
        const sent = sentAt.get(ts);
        if (sent !== undefined) latencies.push(now - sent);
      }
      seen = Math.max(seen, last);
      if (!probing && now - (sentAt.get(probeBase + probeSeq - 1) ?? now) > 30_000) break;
      await sleep(10);
    }
  })();

  const countAll = async (): Promise<number> => {
    const series = await store.query('SELECT count(lat) FROM truck_position WHERE device_id =~ /^BENCH-\\d+$/');
    return (series[0]?.values[0]?.[1] as number | undefined) ?? 0;
  };
  const publisher = run(
    ['bench/ingest/publisher.ts', '--url', publishTo, '--devices', JSON.stringify(Object.fromEntries(deviceIds.map((id) => [id, secrets[id]!]))), '--messages', String(N), '--window', values.window!, '--base', String(Date.now() - 3_600_000), ...(values.rate ? ['--rate', values.rate] : [])],
    {},
    (event) => {
      if (event.event === 'progress') say(`acknowledged ${event.acknowledged as number}/${total}`);
    },
  );
  await publisher.waitFor('connected');
  const alerts = cluster ? await alertProbe(cluster.nodes.map((n) => n.mqttUrl), secret) : null;
  // CPU time of every process of the pipeline over the run: what one message costs each of them.
  const measured: Record<string, number | undefined> = {
    influxd: influxd.pid,
    ...(mosquitto ? { broker: mosquitto.pid() } : {}),
    ...(cluster ? Object.fromEntries(cluster.pids().map((pid, i) => [`rabbitmq_${i + 1}`, pid])) : {}),
    ...(cluster ? Object.fromEntries(cluster.services.map((c, i) => [i === 0 ? 'api' : `worker_${i}`, c.child.pid])) : { service: service!.child.pid }),
  };
  const cpuBefore = Object.fromEntries(Object.entries(measured).map(([name, pid]) => [name, cpuMs(pid)]));
  const started = performance.now();
  const published = (await publisher.waitFor('done')) as { published: number; elapsedMs: number; maxRssMb: number };
  say(`all ${published.published} acknowledged after ${(published.elapsedMs / 1000).toFixed(1)} s; waiting until all are queryable...`);
  let inInflux = 0;
  const deadline = Date.now() + 180_000;
  while ((inInflux = await countAll()) < total && Date.now() < deadline) await sleep(100);
  const elapsedS = (performance.now() - started) / 1000;
  const cpuMsPer1000 = Object.fromEntries(Object.entries(measured).map(([name, pid]) => [name, Math.round(((cpuMs(pid) - cpuBefore[name]!) / inInflux) * 1000)]));
  probing = false;
  await probeLoop;
  await pollLoop;
  const alertLatencies = (await alerts?.finish()) ?? [];
  await sleep(200);
  const serviceRssMb = cluster ? Math.max(...cluster.services.map((c) => peakRssMb(c.child.pid))) : peakRssMb(service!.child.pid);
  const processRssMb = cluster ? Object.fromEntries(cluster.services.map((c, i) => [i === 0 ? 'api' : `worker_${i}`, Math.round(peakRssMb(c.child.pid))])) : null;
  const influxRssMb = peakRssMb(influxd.pid);
  const brokerRssMb = mosquitto ? peakRssMb(mosquitto.pid()) : cluster ? Math.max(...cluster.pids().map((pid) => peakRssMb(pid))) : null;
  await probe.endAsync();
  for (const child of cluster ? cluster.services : [service!]) {
    child.child.kill('SIGTERM');
    await new Promise((r) => child.child.once('exit', r));
  }
  await influxd.stop();
  await mosquitto?.cleanup();
  await cluster?.cleanup();
  await postgres?.cleanup();
  await fsp.rm(dir, { recursive: true, force: true });
  latencies.sort((a, b) => a - b);
  alertLatencies.sort((a, b) => a - b);
  return { published: published.published, inInflux, elapsedS, acknowledgedS: published.elapsedMs / 1000, latencies, alertLatencies, alertsExpected: alerts?.expected() ?? 0, cpuMsPer1000, serviceRssMb, processRssMb, influxRssMb, brokerRssMb, publisherRssMb: published.maxRssMb };
}

/** Bins that each overflow once during a RabbitMQ run, for publish -> alert latency. */
const ALERT_BINS = Array.from({ length: 100 }, (_, i) => `BENCH-BIN-${String(i).padStart(3, '0')}`);
/** One bin overflows every this many ms. */
const ALERT_EVERY_MS = 500;

/**
 * Publish -> alert while the fleet floods the cluster: every ALERT_EVERY_MS one bin of ALERT_BINS
 * reports 30 %, then 95 % twice (rules.overflowReadings is 2), and the time from publishing its
 * last reading to the overflow alert arriving on waste/alerts/# is noted. The alert takes the
 * whole way: a worker's rules, the alert store on PostgreSQL, the worker's publish on amq.topic,
 * a node's MQTT plugin.
 */
async function alertProbe(urls: string[], secret: string) {
  const listener = await mqtt.connectAsync(urls[0]!, { ...RABBIT_ADMIN, clientId: 'bench-alert-listener', reconnectPeriod: 0 });
  const raisedAt = new Map<string, number>();
  const latencies: number[] = [];
  listener.on('message', (_topic, payload) => {
    const alert = JSON.parse(payload.toString()) as { type?: string; subject?: { id?: string } };
    const sent = alert.type === 'overflow' && alert.subject?.id ? raisedAt.get(alert.subject.id) : undefined;
    if (sent === undefined) return;
    latencies.push(Date.now() - sent);
    raisedAt.delete(alert.subject!.id!);
  });
  await listener.subscribeAsync('waste/alerts/#', { qos: 1 });
  let next = 0;
  const pending = new Set<Promise<void>>();
  const timer = setInterval(() => {
    const id = ALERT_BINS[next++];
    if (!id) return clearInterval(timer);
    const run = (async () => {
      const bin = await mqtt.connectAsync(urls[next % urls.length]!, { username: id, password: secret, clientId: id, reconnectPeriod: 0 });
      const at = Date.now() - 3000;
      for (const [k, fill] of [30, 95, 95].entries()) {
        if (k === 2) raisedAt.set(id.toLowerCase(), Date.now());
        await bin.publishAsync(`waste/bins/${id}/telemetry`, JSON.stringify({ ts: new Date(at + k * 1000).toISOString(), fill_pct: fill }), { qos: 1 });
      }
      await bin.endAsync();
    })();
    pending.add(run);
    void run.finally(() => pending.delete(run));
  }, ALERT_EVERY_MS);
  return {
    expected: () => Math.min(next, ALERT_BINS.length),
    /** Stops raising; waits up to 10 s for the alerts still due; the latencies measured. */
    finish: async () => {
      clearInterval(timer);
      await Promise.allSettled([...pending]);
      for (const deadline = Date.now() + 10_000; raisedAt.size > 0 && Date.now() < deadline; ) await sleep(100);
      await listener.endAsync();
      return latencies;
    },
  };
}

/** The bare hop through the cluster's MQTT plugin, its devices RabbitMQ accounts of their own for the while. */
async function bareRabbitmq(): Promise<BareBroker> {
  const cluster = await startTestRabbitCluster();
  const secrets = Object.fromEntries(deviceIds.map((id) => [id, 'bench-secret']));
  const auth = `Basic ${Buffer.from(`${RABBIT_ADMIN.username}:${RABBIT_ADMIN.password}`).toString('base64')}`;
  for (const id of deviceIds) {
    const put = (what: string, body: unknown) => fetch(`${cluster.nodes[0]!.managementUrl}/api/${what}`, { method: 'PUT', headers: { authorization: auth, 'content-type': 'application/json' }, body: JSON.stringify(body) });
    await put(`users/${encodeURIComponent(id)}`, { password: 'bench-secret', tags: '' });
    await put(`permissions/%2F/${encodeURIComponent(id)}`, { configure: '.*', write: '.*', read: '.*' });
  }
  return { name: 'rabbitmq', url: cluster.nodes.map((n) => n.mqttUrl).join(','), secrets, subscriber: RABBIT_ADMIN, pid: cluster.pids()[0], stop: () => cluster.cleanup() };
}

/**
 * A 3-node RabbitMQ cluster whose logins the API process answers, and K ingest workers sharing its
 * partitions (docs/scale-out.md); resolves once every partition has one consumer.
 */
async function startRabbitDeployment(dir: string, influxUrl: string, databaseUrl: string) {
  const apiPort = await freePort();
  say(`starting a 3-node RabbitMQ cluster, an API process and ${K} ingest worker${K === 1 ? '' : 's'}...`);
  const cluster = await startTestRabbitCluster({ authHttp: `http://127.0.0.1:${apiPort}/broker/rabbitmq` });
  const common = { WASTE_DATABASE_URL: databaseUrl, WASTE_RABBITMQ_AMQP_URLS: JSON.stringify(cluster.nodes.map((n) => n.amqpUrl)) };
  const services = [run(['services/main.ts'], { ...benchServiceEnv(path.join(dir, 'api'), 0, influxUrl), ...common, WASTE_ROLE: 'api,scheduler', WASTE_API_HOST: '127.0.0.1', WASTE_API_PORT: String(apiPort), WASTE_RABBITMQ_AUTH_BACKEND: 'true' }, undefined, SERVICE_NODE_OPTIONS)];
  for (let i = 1; i <= K; i++) services.push(run(['services/main.ts'], { ...benchServiceEnv(path.join(dir, `worker-${i}`), 0, influxUrl), ...common, WASTE_ROLE: 'ingest' }, undefined, SERVICE_NODE_OPTIONS));
  for (const service of services) service.child.stdout!.pipe(process.stderr);
  // The management API lists the partitions and their consumers (its figures lag by a few seconds).
  const auth = `Basic ${Buffer.from(`${RABBIT_ADMIN.username}:${RABBIT_ADMIN.password}`).toString('base64')}`;
  for (const deadline = Date.now() + 120_000; ; ) {
    const queues = (await fetch(`${cluster.nodes[0]!.managementUrl}/api/queues/%2F?columns=name,consumers`, { headers: { authorization: auth } }).then((r) => r.json(), () => [])) as { name: string; consumers?: number }[];
    const partitions = queues.filter((q) => q.name.startsWith('waste.partition.'));
    if (partitions.length === 64 && partitions.every((q) => q.consumers === 1)) break;
    if (Date.now() > deadline) throw new Error(`the workers did not settle on the partitions within 120 s (${partitions.length} partitions, consumers ${partitions.map((q) => q.consumers ?? 0).join(',')})`);
    await sleep(1000);
  }
  return { ...cluster, services };
}

say(`${M} devices x ${N} messages = ${total}, window ${values.window} per device, ${os.cpus().length} cores`);
/** The bare hop through Mosquitto, run with the same configuration as the pipeline's. */
async function bareMosquitto(): Promise<BareBroker> {
  const secrets = Object.fromEntries(deviceIds.map((id) => [id, 'bench-secret']));
  const mosquitto = await startTestMosquitto({ ...secrets, 'waste-ingest': 'bench-ingest' });
  return { name: 'mosquitto', url: mosquitto.url, secrets, subscriber: { username: 'waste-ingest', password: 'bench-ingest' }, pid: mosquitto.pid(), stop: () => mosquitto.cleanup() };
}

const bareBroker = values.broker === 'mosquitto' ? bareMosquitto : values.broker === 'rabbitmq' ? bareRabbitmq : undefined;
const bare = values['skip-bare'] ? null : await bareBrokerHop(deviceIds, N, Number(values.window), 'use fewer --devices', bareBroker);
const result = await pipeline();
const throughput = result.inInflux / result.elapsedS;
const summary = {
  broker: values.broker,
  workers: values.broker === 'rabbitmq' ? K : null,
  target_rate_msgs_per_s: values.rate ? Number(values.rate) : null,
  devices: M,
  messages: total,
  published: result.published,
  in_influxdb: result.inInflux,
  lost: result.published - result.inInflux,
  pipeline_msgs_per_s: Math.round(throughput),
  acknowledged_msgs_per_s: Math.round(result.published / result.acknowledgedS),
  latency_p50_ms: percentile(result.latencies, 0.5),
  latency_p99_ms: percentile(result.latencies, 0.99),
  latency_samples: result.latencies.length,
  /** RabbitMQ runs: publish of a bin's overflowing reading -> its alert on MQTT (see alertProbe). */
  alert_latency_p50_ms: result.alertLatencies.length > 0 ? percentile(result.alertLatencies, 0.5) : null,
  alert_latency_p99_ms: result.alertLatencies.length > 0 ? percentile(result.alertLatencies, 0.99) : null,
  alert_samples: result.alertLatencies.length,
  alerts_missing: result.alertsExpected - result.alertLatencies.length,
  bare_broker: bare?.broker ?? null,
  bare_broker_msgs_per_s: bare ? Math.round(bare.msgsPerSecond) : null,
  fraction_of_bare_broker: bare ? Number((throughput / bare.msgsPerSecond).toFixed(2)) : null,
  /** CPU ms each process spent per 1,000 messages stored (user + system, /proc/pid/stat). */
  cpu_ms_per_1000_messages: result.cpuMsPer1000,
  peak_rss_mb: {
    service: Math.round(result.serviceRssMb),
    ...(result.processRssMb ? { service_processes: result.processRssMb } : {}),
    influxd: Math.round(result.influxRssMb),
    broker: result.brokerRssMb === null ? null : Math.round(result.brokerRssMb),
    publisher: Math.round(result.publisherRssMb),
    bare_broker: bare ? Math.round(bare.brokerRssMb) : null,
  },
};
process.stdout.write(
  [
    `pipeline: ${summary.pipeline_msgs_per_s} msg/s end to end (${summary.in_influxdb}/${summary.published} queryable in ${result.elapsedS.toFixed(1)} s; lost ${summary.lost})`,
    `latency publish -> queryable: p50 ${summary.latency_p50_ms} ms, p99 ${summary.latency_p99_ms} ms (${summary.latency_samples} probes)`,
    ...(values.broker === 'rabbitmq' ? [`latency publish -> alert: p50 ${summary.alert_latency_p50_ms} ms, p99 ${summary.alert_latency_p99_ms} ms (${summary.alert_samples} alerts, ${summary.alerts_missing} missing)`] : []),
    bare ? `bare broker hop (${bare.broker}): ${summary.bare_broker_msgs_per_s} msg/s; pipeline = ${summary.fraction_of_bare_broker} of it` : 'bare broker hop: skipped',
    `CPU ms per 1,000 messages: ${Object.entries(result.cpuMsPer1000).map(([name, ms]) => `${name} ${ms}`).join(', ')}`,
    `peak RSS MB${values.broker === 'rabbitmq' ? ' (broker: the largest RabbitMQ node)' : ''}: service ${summary.peak_rss_mb.service}${result.processRssMb ? ` (the largest of ${JSON.stringify(result.processRssMb)})` : ''}, influxd ${summary.peak_rss_mb.influxd}${summary.peak_rss_mb.broker === null ? '' : `, ${values.broker} ${summary.peak_rss_mb.broker}`}, publisher ${summary.peak_rss_mb.publisher}${bare ? `, bare broker ${summary.peak_rss_mb.bare_broker}` : ''}`,
    JSON.stringify(summary),
  ].join('\n') + '\n',
);
process.exit(summary.lost === 0 && summary.alerts_missing === 0 ? 0 : 1);

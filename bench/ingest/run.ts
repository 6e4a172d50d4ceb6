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
import { hashSecret } from '../../services/broker/secrets.ts';
import { SERVICE_NODE_OPTIONS, benchServiceEnv } from '../service-env.ts';
import { InfluxStore } from '../../services/influx/client.ts';
import { PRIVATE_INFLUXD_NICENESS, startInfluxd } from '../../services/influx/influxd.ts';
import { influxSchema } from '../../services/config/schema.ts';
import { startTestMosquitto } from '../../test/helpers/mosquitto.ts';
import { freePort } from '../../test/helpers/ports.ts';
import { peakRssMb } from '../proc.ts';
import { percentile, run, say, sleep } from '../child.ts';
import { bareBrokerHop, type BareBroker } from './bare-hop.ts';

const HELP = `Usage: npm run bench:ingest -- [--devices M] [--messages N] [--window W] [--rate R]
                                  [--broker embedded|mosquitto] [--skip-bare] [--profile DIR]

M simulated devices publish N truck fixes each (QoS 1, W unacknowledged per device at most).
Reports end-to-end throughput (until every point is queryable in InfluxDB), p50/p99
publish-to-queryable latency (a probe device publishing every 20 ms during the run), peak RSS of
each process, the count check, and the bare broker hop (publishers -> broker -> one subscriber).
Defaults: M=50, N=4000, W=50, embedded broker, as fast as acknowledged. --rate R paces the devices
to R messages/s in all, to measure latency at a given load (a Suzhou-sized city: about 2000). --broker mosquitto runs Debian's Mosquitto, configured
with docs/examples/mosquitto.conf, as the external broker with the service as its ingest client,
and the bare hop through Mosquitto too. --profile DIR writes a V8 CPU profile of
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
    rate: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
});
if (values.help) {
  process.stdout.write(HELP);
  process.exit(0);
}
if (values.broker !== 'embedded' && values.broker !== 'mosquitto') {
  process.stderr.write('--broker must be embedded or mosquitto\n');
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
  const registry = new RegistryDb(path.join(dir, 'data', 'registry.db'));
  const devices = new DeviceStore(registry);
  registry.open();
  say(`provisioning ${M + 1} devices (one shared secret hash, as a fleet imported from one provisioning run)...`);
  const secret = 'bench-secret';
  const hash = await hashSecret(secret);
  const now = new Date().toISOString();
  devices.importCredentials([...deviceIds, 'BENCH-PROBE'].map((id) => ({ id, class: 'trucks' as const, secret_hash: hash, enabled: true, created_at: now, updated_at: now })), []);
  const secrets: Record<string, string> = Object.fromEntries([...deviceIds, 'BENCH-PROBE'].map((id) => [id, secret]));
  registry.close();
  const mqttPort = await freePort();
  const mosquitto = values.broker === 'mosquitto' ? await startTestMosquitto({ ...secrets, 'waste-ingest': 'bench-ingest' }) : null;
  const service = run(['services/main.ts'], {
    ...benchServiceEnv(path.join(dir, 'data'), mqttPort, influxd.url),
    ...(mosquitto ? { WASTE_BROKER_URL: mosquitto.url, WASTE_INGEST_PASSWORD: 'bench-ingest' } : {}),
  }, undefined, [...SERVICE_NODE_OPTIONS, ...(values.profile ? ['--cpu-prof', `--cpu-prof-dir=${path.resolve(values.profile)}`] : [])]);
  service.child.stdout!.pipe(process.stderr);
  // The service logs at warn here, so readiness is seen as the broker answering the probe device.
  const url = mosquitto ? mosquitto.url : `mqtt://127.0.0.1:${mqttPort}`;
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
    ['bench/ingest/publisher.ts', '--url', url, '--devices', JSON.stringify(Object.fromEntries(deviceIds.map((id) => [id, secrets[id]!]))), '--messages', String(N), '--window', values.window!, '--base', String(Date.now() - 3_600_000), ...(values.rate ? ['--rate', values.rate] : [])],
    {},
    (event) => {
      if (event.event === 'progress') say(`acknowledged ${event.acknowledged as number}/${total}`);
    },
  );
  await publisher.waitFor('connected');
  const started = performance.now();
  const published = (await publisher.waitFor('done')) as { published: number; elapsedMs: number; maxRssMb: number };
  say(`all ${published.published} acknowledged after ${(published.elapsedMs / 1000).toFixed(1)} s; waiting until all are queryable...`);
  let inInflux = 0;
  const deadline = Date.now() + 180_000;
  while ((inInflux = await countAll()) < total && Date.now() < deadline) await sleep(100);
  const elapsedS = (performance.now() - started) / 1000;
  probing = false;
  await probeLoop;
  await pollLoop;
  await sleep(200);
  const serviceRssMb = peakRssMb(service.child.pid);
  const influxRssMb = peakRssMb(influxd.pid);
  const brokerRssMb = mosquitto ? peakRssMb(mosquitto.pid()) : null;
  await probe.endAsync();
  service.child.kill('SIGTERM');
  await new Promise((r) => service.child.once('exit', r));
  await influxd.stop();
  await mosquitto?.cleanup();
  await fsp.rm(dir, { recursive: true, force: true });
  latencies.sort((a, b) => a - b);
  return { published: published.published, inInflux, elapsedS, acknowledgedS: published.elapsedMs / 1000, latencies, serviceRssMb, influxRssMb, brokerRssMb, publisherRssMb: published.maxRssMb };
}

say(`${M} devices x ${N} messages = ${total}, window ${values.window} per device, ${os.cpus().length} cores`);
/** The bare hop through Mosquitto, run with the same configuration as the pipeline's. */
async function bareMosquitto(): Promise<BareBroker> {
  const secrets = Object.fromEntries(deviceIds.map((id) => [id, 'bench-secret']));
  const mosquitto = await startTestMosquitto({ ...secrets, 'waste-ingest': 'bench-ingest' });
  return { name: 'mosquitto', url: mosquitto.url, secrets, subscriber: { username: 'waste-ingest', password: 'bench-ingest' }, pid: mosquitto.pid(), stop: () => mosquitto.cleanup() };
}

const bare = values['skip-bare'] ? null : await bareBrokerHop(deviceIds, N, Number(values.window), 'use fewer --devices', values.broker === 'mosquitto' ? bareMosquitto : undefined);
const result = await pipeline();
const throughput = result.inInflux / result.elapsedS;
const summary = {
  broker: values.broker,
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
  bare_broker: bare?.broker ?? null,
  bare_broker_msgs_per_s: bare ? Math.round(bare.msgsPerSecond) : null,
  fraction_of_bare_broker: bare ? Number((throughput / bare.msgsPerSecond).toFixed(2)) : null,
  peak_rss_mb: {
    service: Math.round(result.serviceRssMb),
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
    bare ? `bare broker hop (${bare.broker}): ${summary.bare_broker_msgs_per_s} msg/s; pipeline = ${summary.fraction_of_bare_broker} of it` : 'bare broker hop: skipped',
    `peak RSS MB: service ${summary.peak_rss_mb.service}, influxd ${summary.peak_rss_mb.influxd}${summary.peak_rss_mb.broker === null ? '' : `, ${values.broker} ${summary.peak_rss_mb.broker}`}, publisher ${summary.peak_rss_mb.publisher}${bare ? `, bare broker ${summary.peak_rss_mb.bare_broker}` : ''}`,
    JSON.stringify(summary),
  ].join('\n') + '\n',
);
process.exit(summary.lost === 0 ? 0 : 1);

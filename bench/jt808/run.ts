// `npm run bench:jt808`: end-to-end throughput and latency of the JT/T 808 gateway on this
// machine, with the service, a throwaway InfluxDB and the terminals all local, compared in the
// same run with the MQTT path of the same service (same devices, fixes and window, bench:ingest's
// publisher) and the bare broker hop. The last line printed is one JSON object with every figure.
import crypto from 'node:crypto';
import fsp from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import mqtt from 'mqtt';
import { ISSUED_SCRYPT_COST, hashSecret, secretHashProblem } from '../../services/broker/secrets.ts';
import { influxSchema } from '../../services/config/schema.ts';
import { InfluxStore } from '../../services/influx/client.ts';
import { PRIVATE_INFLUXD_NICENESS, startInfluxd } from '../../services/influx/influxd.ts';
import { WASTE_SIM_LAYOUT } from '../../services/jt808/terminal.ts';
import { RegistryDb } from '../../services/registry/db.ts';
import { DeviceStore } from '../../services/registry/devices.ts';
import { freePort } from '../../test/helpers/ports.ts';
import { cpuMs, peakRssMb } from '../proc.ts';
import { SERVICE_NODE_OPTIONS, benchServiceEnv } from '../service-env.ts';
import { percentile, resetPeakRss, run, say, sleep } from '../child.ts';
import { bareBrokerHop } from '../ingest/bare-hop.ts';
import { TOO_MANY_DEVICES, mqttPath, type MqttPathResult } from './mqtt.ts';

const HELP = `Usage: npm run bench:jt808 -- [--terminals M] [--fixes N] [--window W] [--rounds R]
                                 [--batch K] [--batch-share S] [--edition 2013|2019] [--fast-auth]
                                 [--skip-mqtt] [--skip-bare] [--profile DIR]

M JT/T 808 terminals (registry trucks devices with a phone number and an authentication code)
connect to the service's gateway over TCP and authenticate (0x0102), then each sends N fixes as
location reports 0x0200, at most W unanswered per terminal, as fast as the gateway answers 0x8001
(it answers once a fix is durable in the spool). Reports:
  - fixes/s end to end, from the first report until every fix is queryable in InfluxDB, and the
    count check: every fix sent must be counted in InfluxDB (the run fails otherwise);
  - p50/p99 latency report -> 0x8001 of every report;
  - the time the M authentications took: the gateway verifies each terminal's code with scrypt
    (two at a time), so this phase costs about 60 ms of CPU a terminal;
  - the service's CPU time and peak RSS in each phase, influxd's peak RSS;
  - the reference measured in the same run: the MQTT path of the same service, M devices
    publishing N fixes each with the same window (bench/ingest's publisher), fixes/s end to end
    and CPU per fix; and the bare broker hop (publishers -> aedes -> one subscriber).
The two paths take turns, R rounds each (JT/T 808 first), and throughput is the median round:
other work on the machine then weighs on both alike. The first round pays the terminals' first
authentication; in later rounds they connect again, which the gateway's cache of verified codes
makes cheap. Latency percentiles are over every report of every round.
Defaults: M=2000, N=20, W=8, R=3, 2013 edition. --batch K sends the first share S (default 1: all) of
each terminal's fixes as blind-area batches 0x0704 of K fixes, the rest as 0x0200. --skip-mqtt
leaves out the MQTT path (e.g. to profile the gateway alone), --skip-bare the bare broker hop.
--fast-auth hashes the terminals' code at scrypt N=2^10 instead of the issued 2^14 (the gateway
takes any cost up to the issued one): the authentication phase then takes about 1/16 of the time,
and its figures no longer say what real terminals cost.
--profile DIR writes a V8 CPU profile of the service (.cpuprofile).
`;

const { values } = parseArgs({
  options: {
    terminals: { type: 'string', default: '2000' },
    fixes: { type: 'string', default: '20' },
    window: { type: 'string', default: '8' },
    rounds: { type: 'string', default: '3' },
    batch: { type: 'string', default: '1' },
    'batch-share': { type: 'string', default: '1' },
    edition: { type: 'string', default: '2013' },
    'fast-auth': { type: 'boolean', default: false },
    'skip-mqtt': { type: 'boolean', default: false },
    'skip-bare': { type: 'boolean', default: false },
    profile: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
});
if (values.help) {
  process.stdout.write(HELP);
  process.exit(0);
}
const M = Number(values.terminals);
const N = Number(values.fixes);
const W = Number(values.window);
const K = Number(values.batch);
const share = K > 1 ? Number(values['batch-share']) : 0;
const R = Number(values.rounds);
const usage = (message: string): never => {
  process.stderr.write(`${message}\n`);
  process.exit(2);
};
if (!Number.isInteger(M) || M < 1 || M > 99_999_999) usage('--terminals must be a whole number from 1');
// One fix a second per terminal (the report's time is to the second), ending an hour ago: within
// ingest.maxAgeMs (7 days) for up to 500,000 fixes.
if (!Number.isInteger(N) || N < 1 || N > 500_000) usage('--fixes must be a whole number from 1 to 500000');
if (!Number.isInteger(R) || R < 1) usage('--rounds must be a whole number from 1');
if (!Number.isInteger(W) || W < 1) usage('--window must be a whole number from 1');
if (!Number.isInteger(K) || K < 1) usage('--batch must be a whole number from 1');
if (!(share >= 0 && share <= 1)) usage('--batch-share must be between 0 and 1');
if (values.edition !== '2013' && values.edition !== '2019') usage('--edition must be 2013 or 2019');
const total = M * N;

const JT808_DEVICE = /^JT808-\d+$/;
const terminalIds = Array.from({ length: M }, (_, i) => `JT808-${String(i).padStart(5, '0')}`);
const mqttIds = Array.from({ length: M }, (_, i) => `BENCH-${String(i).padStart(5, '0')}`);
const PHONE_BASE = 13_900_000_000;
const AUTH_CODE = 'bench-auth-code';
const SECRET = 's';
const WARM_UP_DEVICE = 'BENCH-WARMUP';

/** A hash in the service's format (broker/secrets.ts) at scrypt N=2^10, for --fast-auth. */
async function cheapHash(secret: string): Promise<string> {
  const { r, p } = ISSUED_SCRYPT_COST;
  const N = 1024;
  const salt = crypto.randomBytes(16);
  const key = await new Promise<Buffer>((resolve, reject) => crypto.scrypt(secret, salt, 32, { N, r, p }, (error, k) => (error ? reject(error) : resolve(k))));
  const hash = ['scrypt', N, r, p, salt.toString('base64url'), key.toString('base64url')].join('$');
  const problem = secretHashProblem(hash);
  if (problem) throw new Error(`--fast-auth: the service would refuse the hash: ${problem}`);
  return hash;
}

say(`${M} terminals x ${N} fixes = ${total}, window ${W} per terminal, ${K > 1 ? `${Math.round(share * 100)}% in 0x0704 batches of ${K}` : '0x0200 only'}, ${values.edition} edition, ${os.cpus().length} cores`);
const bare = values['skip-bare'] ? null : await bareBrokerHop(mqttIds, N, W, TOO_MANY_DEVICES);

const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'waste-bench-jt808-'));
const influxd = await startInfluxd({ dir: path.join(dir, 'influxdb'), port: await freePort(), rpcPort: 0, niceness: PRIVATE_INFLUXD_NICENESS });
const store = new InfluxStore(influxSchema.parse({ url: influxd.url }));

// Provisioning: one hash for every terminal's authentication code and one for every device
// secret, computed once, as a fleet imported from one provisioning run (DeviceStore.add would
// hash each, 2 x 40-60 ms a device).
say(`provisioning ${M} JT/T 808 terminals${values['skip-mqtt'] ? '' : ` and ${M + 1} MQTT devices`} (one shared code hash, one shared secret hash)...`);
const registry = new RegistryDb(path.join(dir, 'data', 'registry.db'));
registry.open();
const devices = new DeviceStore(registry);
const secretHash = await hashSecret(SECRET);
const authHash = values['fast-auth'] ? await cheapHash(AUTH_CODE) : await hashSecret(AUTH_CODE);
registry.transaction(() => {
  terminalIds.forEach((id, i) => devices.insertHashed(id, 'trucks', secretHash, { phone: String(PHONE_BASE + i), model: WASTE_SIM_LAYOUT.model, authHash }));
  if (!values['skip-mqtt']) for (const id of [...mqttIds, WARM_UP_DEVICE]) devices.insertHashed(id, 'trucks', secretHash);
});
registry.close();

const mqttPort = await freePort();
const jt808Port = await freePort();
const service = run(
  ['services/main.ts'],
  { ...benchServiceEnv(path.join(dir, 'data'), mqttPort, influxd.url), WASTE_JT808_HOST: '127.0.0.1', WASTE_JT808_PORT: String(jt808Port) },
  undefined,
  [...SERVICE_NODE_OPTIONS, ...(values.profile ? ['--cpu-prof', `--cpu-prof-dir=${path.resolve(values.profile)}`] : [])],
);
service.child.stdout!.pipe(process.stderr);

// The service logs at warn here, so readiness is seen as the gateway accepting a connection.
const listening = (port: number) =>
  new Promise<boolean>((resolve) => {
    const socket = net.connect(port, '127.0.0.1', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
/** A run that cannot go on leaves no service or influxd behind. */
async function abandon(error: unknown): Promise<never> {
  service.child.kill('SIGKILL');
  await influxd.stop().catch(() => {});
  await fsp.rm(dir, { recursive: true, force: true });
  throw error;
}
const readyBy = Date.now() + 60_000;
while (!(await listening(jt808Port))) {
  if (service.child.exitCode !== null) await abandon(new Error(`the service exited with ${service.child.exitCode} before it listened on the JT/T 808 port`));
  if (Date.now() > readyBy) {
    await abandon(new Error(`the service did not listen on the JT/T 808 port ${jt808Port} (WASTE_JT808_PORT) within 60 s: is the gateway started by services/app.ts?`));
  }
  await sleep(100);
}

const countOf = async (pattern: string): Promise<number> => {
  const series = await store.query(`SELECT count(lat) FROM truck_position WHERE device_id =~ /${pattern}/`);
  return (series[0]?.values[0]?.[1] as number | undefined) ?? 0;
};

// --- One round of each path ---------------------------------------------------------------------

interface FleetDone {
  sentReports: number;
  sentFixes: number;
  batchedFixes: number;
  answeredFixes: number;
  failedFixes: number;
  unanswered: number;
  closedEarly: number;
  stalled: boolean;
  elapsedMs: number;
  latency: { p50: number; p90: number; p99: number; max: number; samples: number };
  cpuMs: number;
  maxRssMb: number;
}

interface JtRound {
  done: FleetDone;
  inInflux: number;
  elapsedS: number;
  authMs: number;
  authRetries: number;
  authServiceCpuMs: number;
  serviceCpuMs: number;
  serviceRssMb: number | null;
  latencies: Float64Array;
}

/** Fix time each round spans per terminal (one fix a second): rounds follow each other, so that no two fixes of a terminal share a second. */
const roundSpanMs = (N + 1) * 1000;
const jtBase = Math.floor((Date.now() - 3_600_000 - R * roundSpanMs) / 1000) * 1000;

async function jtRound(round: number, countBefore: number): Promise<JtRound> {
  const latencyFile = path.join(dir, `latencies-${round}.f64`);
  const rssReset = resetPeakRss(service.child.pid);
  const authCpuAtStart = cpuMs(service.child.pid);
  let authenticatedSeen = 0;
  let authSaidAt = 0;
  const fleet = run(
    [
      'bench/jt808/fleet.ts',
      '--port', String(jt808Port),
      '--terminals', String(M),
      '--phone-base', String(PHONE_BASE),
      '--code', AUTH_CODE,
      '--fixes', String(N),
      '--base', String(jtBase + round * roundSpanMs),
      '--window', String(W),
      '--batch', String(K),
      '--batch-share', String(share),
      '--edition', values.edition!,
      '--latencies', latencyFile,
    ],
    {},
    (event) => {
      if (event.event !== 'progress') return;
      if (event.phase === 'auth') {
        const authenticated = event.authenticated as number;
        if (authenticated === authenticatedSeen || Date.now() - authSaidAt < 5000) return;
        authenticatedSeen = authenticated;
        authSaidAt = Date.now();
        say(`jt808: authenticated ${authenticated}/${M} terminals`);
      } else say(`jt808: answered ${event.answered as number}/${total} fixes`);
    },
  );
  const connected = (await fleet.waitFor('connected', 60_000 + M * 500)) as { authMs: number; authRetries: number };
  const started = performance.now();
  const cpuAtStart = cpuMs(service.child.pid);
  say(`jt808 round ${round + 1}: ${M} terminals authenticated in ${(connected.authMs / 1000).toFixed(1)} s (${connected.authRetries} retries); sending fixes...`);
  const done = (await fleet.waitFor('done', 600_000)) as unknown as FleetDone;
  say(`jt808 round ${round + 1}: ${done.answeredFixes} of ${done.sentFixes} fixes answered after ${(done.elapsedMs / 1000).toFixed(1)} s; waiting until all are queryable...`);
  let inInflux = 0;
  const deadline = Date.now() + 180_000;
  while ((inInflux = (await countOf(JT808_DEVICE.source)) - countBefore) < done.sentFixes && Date.now() < deadline) await sleep(100);
  const elapsedS = (performance.now() - started) / 1000;
  const serviceCpuMs = cpuMs(service.child.pid) - cpuAtStart;
  const serviceRssMb = round === 0 || rssReset ? peakRssMb(service.child.pid) : null;
  await new Promise((r) => (fleet.child.exitCode === null ? fleet.child.once('exit', r) : r(null)));
  const latencies = new Float64Array((await fsp.readFile(latencyFile)).buffer.slice(0));
  say(`jt808 round ${round + 1}: ${Math.round(inInflux / elapsedS)} fixes/s end to end`);
  return { done, inInflux, elapsedS, authMs: connected.authMs, authRetries: connected.authRetries, authServiceCpuMs: cpuAtStart - authCpuAtStart, serviceCpuMs, serviceRssMb, latencies };
}

const url = `mqtt://127.0.0.1:${mqttPort}`;
let warmUp = null as mqtt.MqttClient | null;

async function mqttRound(round: number, countBefore: number): Promise<MqttPathResult & { serviceRssMb: number | null }> {
  const rssReset = resetPeakRss(service.child.pid);
  // One login with the fleet's shared secret first: the broker then knows the hash verified, and
  // the devices' logins cost no scrypt (as in bench:ingest, whose probe device logs in first).
  warmUp ??= await mqtt.connectAsync(url, { username: WARM_UP_DEVICE, password: SECRET, clientId: `${WARM_UP_DEVICE}-1`, reconnectPeriod: 0 });
  const result = await mqttPath({
    url,
    devices: Object.fromEntries(mqttIds.map((id) => [id, SECRET])),
    messages: N,
    window: W,
    base: Date.now() - 3_600_000 - (R - round) * 10 * N,
    servicePid: service.child.pid,
    count: () => countOf('^BENCH-\\d+$'),
    countBefore,
  });
  say(`mqtt round ${round + 1}: ${Math.round(result.inInflux / result.elapsedS)} fixes/s end to end`);
  return { ...result, serviceRssMb: rssReset ? peakRssMb(service.child.pid) : null };
}

// Rounds alternate between the paths, so that both see the same machine: on a shared one, what
// else runs changes from minute to minute. The first JT/T 808 round pays the terminals' first
// authentication (scrypt); later rounds connect again, which the gateway's cache of verified codes
// makes cheap, as a reconnect after a network drop.
const jtRounds: JtRound[] = [];
const mqttRounds: (MqttPathResult & { serviceRssMb: number | null })[] = [];
try {
  for (let round = 0; round < R; round++) {
    jtRounds.push(await jtRound(round, jtRounds.reduce((sum, r) => sum + r.inInflux, 0)));
    if (!values['skip-mqtt']) {
      await sleep(2000); // the terminals' connections close and their offline statuses are written
      mqttRounds.push(await mqttRound(round, mqttRounds.reduce((sum, r) => sum + r.inInflux, 0)));
      await sleep(2000);
    }
  }
  await warmUp?.endAsync();
} catch (error) {
  await abandon(error);
}

const serviceRssMb = peakRssMb(service.child.pid);
const influxRssMb = peakRssMb(influxd.pid);
service.child.kill('SIGTERM');
await new Promise((r) => service.child.once('exit', r));
await influxd.stop();
await fsp.rm(dir, { recursive: true, force: true });

// --- Figures ------------------------------------------------------------------------------------

const median = (xs: number[]): number => {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted.length % 2 ? sorted[(sorted.length - 1) / 2]! : (sorted[sorted.length / 2 - 1]! + sorted[sorted.length / 2]!) / 2;
};
const sum = (xs: number[]): number => xs.reduce((a, b) => a + b, 0);
const maxOf = (xs: (number | null)[]): number | null => (xs.some((x) => x !== null) ? Math.round(Math.max(...xs.filter((x) => x !== null))) : null);
const perThousand = (cpu: number, fixes: number) => (fixes > 0 ? Math.round((cpu / fixes) * 1000) : null);

const jtRates = jtRounds.map((r) => r.inInflux / r.elapsedS);
const mqttRates = mqttRounds.map((r) => r.inInflux / r.elapsedS);
const jtThroughput = median(jtRates);
const mqttThroughput = mqttRounds.length ? median(mqttRates) : null;
const allLatencies = new Float64Array(sum(jtRounds.map((r) => r.latencies.length)));
jtRounds.reduce((offset, r) => (allLatencies.set(r.latencies, offset), offset + r.latencies.length), 0);
allLatencies.sort();
const latency = (p: number) => Math.round(percentile(allLatencies, p) * 10) / 10;
const first = jtRounds[0]!;
const jtSent = sum(jtRounds.map((r) => r.done.sentFixes));
const jtInflux = sum(jtRounds.map((r) => r.inInflux));
const jtLost = jtSent - jtInflux;
const unanswered = sum(jtRounds.map((r) => r.done.unanswered));
const failedFixes = sum(jtRounds.map((r) => r.done.failedFixes));
const mqttPublished = sum(mqttRounds.map((r) => r.published));
const mqttInflux = sum(mqttRounds.map((r) => r.inInflux));
const reconnects = jtRounds.slice(1).map((r) => r.authMs / 1000);

const summary = {
  terminals: M,
  fixes_per_terminal: N,
  fixes: total,
  rounds: R,
  window: W,
  batch: K,
  batched_fixes_per_round: first.done.batchedFixes,
  edition: Number(values.edition),
  fast_auth: values['fast-auth'],
  jt808: {
    sent_fixes: jtSent,
    sent_reports: sum(jtRounds.map((r) => r.done.sentReports)),
    answered_fixes: sum(jtRounds.map((r) => r.done.answeredFixes)),
    failed_fixes: failedFixes,
    unanswered_fixes: unanswered,
    in_influxdb: jtInflux,
    lost: jtLost,
    fixes_per_s: Math.round(jtThroughput),
    fixes_per_s_rounds: jtRates.map(Math.round),
    answered_fixes_per_s: Math.round(median(jtRounds.map((r) => r.done.answeredFixes / (r.done.elapsedMs / 1000)))),
    latency_report_to_8001_p50_ms: latency(0.5),
    latency_report_to_8001_p90_ms: latency(0.9),
    latency_report_to_8001_p99_ms: latency(0.99),
    latency_report_to_8001_max_ms: latency(1),
    latency_samples: allLatencies.length,
    authentication_s: Number((first.authMs / 1000).toFixed(1)),
    authentications_per_s: Math.round(M / (first.authMs / 1000)),
    authentication_retries: first.authRetries,
    authentication_service_cpu_ms: first.authServiceCpuMs,
    reconnect_authentication_s: reconnects.length ? Number(median(reconnects).toFixed(1)) : null,
    service_cpu_ms: sum(jtRounds.map((r) => r.serviceCpuMs)),
    service_cpu_ms_per_1000_fixes: perThousand(sum(jtRounds.map((r) => r.serviceCpuMs)), jtInflux),
    fleet_cpu_ms_per_1000_fixes: perThousand(sum(jtRounds.map((r) => r.done.cpuMs)), jtSent),
  },
  mqtt: mqttRounds.length
    ? {
        published: mqttPublished,
        in_influxdb: mqttInflux,
        lost: mqttPublished - mqttInflux,
        msgs_per_s: Math.round(mqttThroughput!),
        msgs_per_s_rounds: mqttRates.map(Math.round),
        acknowledged_msgs_per_s: Math.round(median(mqttRounds.map((r) => r.published / r.acknowledgedS))),
        service_cpu_ms: sum(mqttRounds.map((r) => r.serviceCpuMs)),
        service_cpu_ms_per_1000_fixes: perThousand(sum(mqttRounds.map((r) => r.serviceCpuMs)), mqttInflux),
        publisher_cpu_ms_per_1000_fixes: perThousand(sum(mqttRounds.map((r) => r.publisherCpuMs)), mqttPublished),
      }
    : null,
  jt808_throughput_fraction_of_mqtt: mqttThroughput ? Number((jtThroughput / mqttThroughput).toFixed(2)) : null,
  bare_broker_msgs_per_s: bare ? Math.round(bare.msgsPerSecond) : null,
  peak_rss_mb: {
    // Each phase's peak is read after a reset of the peak (resetPeakRss), so the lifetime's is the largest of them.
    service: maxOf([serviceRssMb, ...jtRounds.map((r) => r.serviceRssMb), ...mqttRounds.map((r) => r.serviceRssMb)])!,
    service_jt808_phase: maxOf(jtRounds.map((r) => r.serviceRssMb)),
    service_mqtt_phase: maxOf(mqttRounds.map((r) => r.serviceRssMb)),
    influxd: Math.round(influxRssMb),
    fleet: Math.round(Math.max(...jtRounds.map((r) => r.done.maxRssMb))),
    publisher: mqttRounds.length ? Math.round(Math.max(...mqttRounds.map((r) => r.publisherRssMb))) : null,
    bare_broker: bare ? Math.round(bare.brokerRssMb) : null,
  },
};
const stalled = jtRounds.some((r) => r.done.stalled);
const closedEarly = sum(jtRounds.map((r) => r.done.closedEarly));
const failures = [
  jtLost !== 0 ? `JT/T 808: ${jtSent} fixes sent, ${jtInflux} counted in InfluxDB (${jtLost > 0 ? `${jtLost} lost` : `${-jtLost} more than sent`})` : null,
  unanswered > 0 ? `JT/T 808: ${unanswered} fixes never answered 0x8001${stalled ? ' (no answer for 60 s: given up)' : ''}${closedEarly > 0 ? `, ${closedEarly} connections closed by the gateway` : ''}` : null,
  failedFixes > 0 ? `JT/T 808: ${failedFixes} fixes answered 0x8001 with a result other than 0 (success)` : null,
  summary.mqtt && summary.mqtt.lost !== 0 ? `MQTT: ${mqttPublished} fixes acknowledged, ${mqttInflux} counted in InfluxDB` : null,
].filter((f) => f !== null);
const rounds = (rates: number[]) => (R > 1 ? `, median of ${R} rounds: ${rates.map(Math.round).join(', ')}` : '');
const mqttLine = summary.mqtt
  ? `mqtt path (same service, ${M} devices x ${N}, window ${W}): ${summary.mqtt.msgs_per_s} fixes/s end to end (${mqttInflux}/${mqttPublished} queryable${rounds(mqttRates)}; lost ${summary.mqtt.lost}); jt808 = ${summary.jt808_throughput_fraction_of_mqtt} of it`
  : 'mqtt path: skipped';
// Failures first, loudly, so that the JSON object stays the last line.
for (const failure of failures) process.stderr.write(`[bench] FAILED: ${failure}\n`);
process.stdout.write(
  [
    `jt808: ${summary.jt808.fixes_per_s} fixes/s end to end (${jtInflux}/${jtSent} queryable${rounds(jtRates)}; lost ${jtLost}); answered ${summary.jt808.answered_fixes_per_s} fixes/s`,
    mqttLine,
    `latency report -> 0x8001: p50 ${summary.jt808.latency_report_to_8001_p50_ms} ms, p99 ${summary.jt808.latency_report_to_8001_p99_ms} ms, max ${summary.jt808.latency_report_to_8001_max_ms} ms (${allLatencies.length} reports, ${M * W} at most unanswered at once)`,
    `service CPU per 1000 fixes: jt808 ${summary.jt808.service_cpu_ms_per_1000_fixes} ms${summary.mqtt ? `, mqtt ${summary.mqtt.service_cpu_ms_per_1000_fixes} ms` : ''} (sending side on the same cores: terminal fleet ${summary.jt808.fleet_cpu_ms_per_1000_fixes} ms${summary.mqtt ? `, MQTT publisher ${summary.mqtt.publisher_cpu_ms_per_1000_fixes} ms` : ''})`,
    `authentication: ${M} terminals in ${summary.jt808.authentication_s} s (${summary.jt808.authentications_per_s}/s, ${first.authRetries} retries, service CPU ${first.authServiceCpuMs} ms${values['fast-auth'] ? '; --fast-auth: codes hashed at N=2^10' : ''})${summary.jt808.reconnect_authentication_s === null ? '' : `; connecting again: ${summary.jt808.reconnect_authentication_s} s`}`,
    bare ? `bare broker hop: ${summary.bare_broker_msgs_per_s} msg/s` : 'bare broker hop: skipped',
    `peak RSS MB: service ${summary.peak_rss_mb.service} (jt808 phase ${summary.peak_rss_mb.service_jt808_phase}${summary.peak_rss_mb.service_mqtt_phase === null ? '' : `, mqtt phase ${summary.peak_rss_mb.service_mqtt_phase}`}), influxd ${summary.peak_rss_mb.influxd}, fleet ${summary.peak_rss_mb.fleet}${summary.mqtt ? `, publisher ${summary.peak_rss_mb.publisher}` : ''}${bare ? `, bare broker ${summary.peak_rss_mb.bare_broker}` : ''}`,
    JSON.stringify(summary),
  ].join('\n') + '\n',
);
process.exit(failures.length === 0 ? 0 : 1);

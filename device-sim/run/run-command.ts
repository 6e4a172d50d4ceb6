// `npm run sim -- run`: drives a generated city's devices against a broker, in real time,
// accelerated or as fast as possible, writing the ground-truth labels as it goes.
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { City } from '../city/generate.ts';
import { Simulation } from '../engine/simulation.ts';
import { labelJson, type Label } from '../world/labels.ts';
import { DEFAULT_VIOLATION_RATE, VIOLATIONS, parseRates, uniformRates, type ViolationRates } from '../world/violations.ts';
import type { NoiseOptions } from '../engine/noise.ts';
import { noiseSummary, parseDuration, parseNoise, parseTime, UsageError, wholeNumber } from './options.ts';
import { cityAuthCode } from '../city/terminals.ts';
import { ChirpstackTransport, lorawanSensorsOf, networkOf, withoutLidCounter, type LorawanSensor } from './chirpstack-transport.ts';
import { Jt808Transport, terminalsOf, type EditionChoice } from './jt808-transport.ts';
import { Progress } from './progress.ts';
import { ByClassTransport, MqttTransport, type ClassRoutes, type Transport } from './transport.ts';

/** How far (simulated time) any device may run ahead of the oldest message still undelivered. */
const MAX_SKEW_MS = 5 * 60_000;

export const RUN_HELP = `Usage: npm run sim -- run [options]

Runs the city written by \`npm run sim -- city\`: every device logs in with its own id and the
city's secret and publishes the contract's payloads. Ground-truth labels of every violation go to
<city>/labels.jsonl (JSON Lines), the run's settings to <city>/run.json.

Options:
  --city DIR           the generated city (default data/sim)
  --url URL            broker (default mqtt://127.0.0.1:1883); a cluster's nodes comma-separated
                       (mqtt://a:1883,mqtt://b:1883): devices spread over them and move on when one fails
  --truck-protocol P   mqtt (default) or jt808: the trucks report as JT/T 808 terminals to the
                       service's JT/T 808 gateway, one TCP connection each (registration,
                       authentication, heartbeats, 0x0200 per fix, 0x0704 blind-area batches after
                       an outage); weighbridges stay on MQTT, and bins unless --bin-transport
  --jt808-url URL      the JT/T 808 gateway (default tcp://127.0.0.1:6808)
  --jt808-edition E    2013, 2019 or mixed (default mixed: every other terminal 2019)
  --bin-transport T    mqtt (default) or chirpstack: the bins report as LoRaWAN sensors through a
                       network server, the simulator playing ChirpStack v4's MQTT integration on
                       the network server's broker: each reading a ChirpStack "up" event (JSON) on
                       application/{id}/device/{devEui}/event/up at QoS 1, for the service's
                       LoRaWAN bridge (WASTE_LORAWAN_NETWORK_SERVERS). Milesight EM400-UDL bins
                       send its frames (no lid counter: no out_of_window_dropoff is labelled for
                       them), the others a frame the device profile's codec makes the contract's
                       fields of; trucks and weighbridges as before
  --chirpstack-url URL the network server's broker (default mqtt://127.0.0.1:1884)
  --chirpstack-username U, --chirpstack-password P
                       its account, which may write application/# (the password also from the
                       environment: WASTE_SIM_CHIRPSTACK_PASSWORD)
  --speed N|max        1 = real time (default), 60 = a minute per second, max = as fast as the
                       broker takes it. The simulated clock never runs ahead of the real one: an
                       accelerated run catches up with now and goes on in real time.
  --start T            simulated start: now, -DURATION (written --start=-6h) or ISO-8601 with offset
                       (default: now at --speed 1, otherwise now minus --duration)
  --duration D         how long to simulate, e.g. 30m, 6h, 2d (default: until Ctrl-C at --speed 1,
                       otherwise 6h)
  --violations SPEC    rates of injected violations, "all=R" and/or "name=R,..." (default all=${DEFAULT_VIOLATION_RATE});
                       "all=0" turns them off. Names: ${VIOLATIONS.join(', ')}.
                       Per trip for trip violations, per truck and day for out_of_hours and
                       no_permit, per bin and day for bin ones.
  --noise SPEC         "off", or "name=value,..." over the defaults:
                       ${noiseSummary(parseNoise(undefined))}
                       (jitter: mean GPS error in m; outliers, duplicates, out-of-order: share of
                       messages; dead-zones, reconnects: per device and hour; clock-skew: s)
  --seed S             seed of the devices' behaviour (default: the city's seed)
  --labels FILE        where the labels go (default <city>/labels.jsonl)
  --dry-run            publish nothing: simulate as fast as possible and write the labels only
  --max-in-flight N    publishes awaiting acknowledgement at once (default 2000; with jt808, as
                       many truck fixes awaiting their 0x8001 besides; with chirpstack, as many
                       events awaiting their PUBACK from the network server's broker)
  --progress-every S   seconds between progress lines (default 5)
  -h, --help

Ctrl-C stops cleanly: queued messages are delivered, devices say offline, labels are closed.

Examples:
  npm run sim -- run --duration 2h
  npm run sim -- run --speed 60 --start=-6h --violations all=0.05
  npm run sim -- run --speed max --start 2026-11-20T20:00:00+08:00 --duration 12h --noise off
  npm run sim -- run --speed 60 --start=-2h --truck-protocol jt808
  WASTE_SIM_CHIRPSTACK_PASSWORD=... npm run sim -- run --speed 60 --start=-2h \
    --bin-transport chirpstack --chirpstack-url mqtt://127.0.0.1:1884 --chirpstack-username chirpstack
`;

export async function runCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      city: { type: 'string', default: 'data/sim' },
      url: { type: 'string', default: 'mqtt://127.0.0.1:1883' },
      'truck-protocol': { type: 'string', default: 'mqtt' },
      'jt808-url': { type: 'string', default: 'tcp://127.0.0.1:6808' },
      'jt808-edition': { type: 'string', default: 'mixed' },
      'bin-transport': { type: 'string', default: 'mqtt' },
      'chirpstack-url': { type: 'string', default: 'mqtt://127.0.0.1:1884' },
      'chirpstack-username': { type: 'string' },
      'chirpstack-password': { type: 'string' },
      speed: { type: 'string', default: '1' },
      start: { type: 'string' },
      duration: { type: 'string' },
      violations: { type: 'string' },
      noise: { type: 'string' },
      seed: { type: 'string' },
      labels: { type: 'string' },
      'dry-run': { type: 'boolean', default: false },
      'max-in-flight': { type: 'string' },
      'progress-every': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(RUN_HELP);
    return 0;
  }
  const now = Date.now();
  const dryRun = values['dry-run'];
  const speed = values.speed === 'max' || dryRun ? Infinity : Number(values.speed);
  if (!(speed >= 1)) throw new UsageError('--speed must be a number of at least 1, or max');
  const duration = values.duration !== undefined ? parseDuration(values.duration, 'duration') : speed === 1 ? Infinity : 6 * 3_600_000;
  const start = values.start !== undefined ? parseTime(values.start, 'start', now) : speed === 1 ? now : now - duration;
  const end = start + duration;
  if (start > now + 60_000 && !dryRun) throw new UsageError('--start is in the future; the service refuses readings from the future');
  const rates = parseRates(values.violations ?? '', uniformRates(DEFAULT_VIOLATION_RATE));
  const noise = parseNoise(values.noise);
  const truckProtocol = values['truck-protocol'];
  if (truckProtocol !== 'mqtt' && truckProtocol !== 'jt808') throw new UsageError('--truck-protocol must be mqtt or jt808');
  const edition = values['jt808-edition'];
  if (edition !== '2013' && edition !== '2019' && edition !== 'mixed') throw new UsageError('--jt808-edition must be 2013, 2019 or mixed');
  if (!/^tcp:\/\/[^/]+:\d+\/?$/.test(values['jt808-url'])) throw new UsageError('--jt808-url must be tcp://host:port');
  // Several brokers, comma-separated: an empty or unusable entry would leave devices nowhere to go.
  if (!values.url.split(',').every((url) => /^(mqtts?|wss?):\/\/[^/\s,]+(\/\S*)?$/.test(url.trim()))) throw new UsageError('--url must be mqtt://host:port (or mqtts://, ws://, wss://), several comma-separated');
  const binTransport = values['bin-transport'];
  if (binTransport !== 'mqtt' && binTransport !== 'chirpstack') throw new UsageError('--bin-transport must be mqtt or chirpstack');
  if (!/^mqtts?:\/\/[^/\s]+:\d+\/?$/.test(values['chirpstack-url'])) throw new UsageError('--chirpstack-url must be mqtt://host:port (or mqtts://)');

  const city = loadCity(values.city);
  const summary = await simulate({
    city,
    cityDir: values.city,
    url: values.url,
    seed: values.seed ?? String(city.seed),
    start,
    end,
    speed,
    dryRun,
    rates,
    noise,
    labelsPath: values.labels ?? path.join(values.city, 'labels.jsonl'),
    truckProtocol,
    jt808Url: values['jt808-url'],
    jt808Edition: edition === 'mixed' ? edition : (Number(edition) as 2013 | 2019),
    binTransport,
    chirpstackUrl: values['chirpstack-url'],
    chirpstackUsername: values['chirpstack-username'],
    chirpstackPassword: values['chirpstack-password'] ?? process.env.WASTE_SIM_CHIRPSTACK_PASSWORD,
    maxInFlight: wholeNumber(values['max-in-flight'], 2000, 'max-in-flight'),
    progressEveryMs: wholeNumber(values['progress-every'], 5, 'progress-every') * 1000,
  });
  return summary.undelivered > 0 ? 1 : 0;
}

export interface SimulateOptions {
  city: LoadedCity;
  cityDir: string;
  url: string;
  seed: string;
  start: number;
  end: number;
  speed: number;
  dryRun: boolean;
  rates: ViolationRates;
  noise: NoiseOptions;
  labelsPath: string;
  /** How trucks report: MQTT like every other device (default), or as JT/T 808 terminals to the gateway. */
  truckProtocol?: 'mqtt' | 'jt808';
  /** tcp://host:port of the JT/T 808 gateway. */
  jt808Url?: string;
  jt808Edition?: EditionChoice;
  /** How bins report: MQTT like every other device (default), or as LoRaWAN sensors through ChirpStack's MQTT integration. */
  binTransport?: 'mqtt' | 'chirpstack';
  /** mqtt://host:port of the network server's broker. */
  chirpstackUrl?: string;
  chirpstackUsername?: string;
  chirpstackPassword?: string;
  maxInFlight: number;
  progressEveryMs: number;
}

/** Runs a simulation to its end or to Ctrl-C; writes labels and run.json; reports what it did. */
export async function simulate(o: SimulateOptions): Promise<{ undelivered: number; labels: Record<string, number> }> {
  const { city, seed, start, end, speed, dryRun, rates, noise } = o;
  const lorawan = o.binTransport === 'chirpstack';
  const chirpstackUrl = o.chirpstackUrl ?? 'mqtt://127.0.0.1:1884';
  let sensors: Map<string, LorawanSensor> | null = null;
  if (lorawan) {
    try {
      sensors = lorawanSensorsOf(city.bundle);
    } catch (error) {
      throw new UsageError((error as Error).message.replace('(npm run sim -- city)', `(npm run sim -- city --out ${o.cityDir})`));
    }
  }
  // Labels of what the sensors can see: no out-of-window drop-off on a bin without a lid counter.
  const simulation = new Simulation(city, { seed, start, rates, noise, withoutLidCounter: sensors ? withoutLidCounter(sensors) : undefined });
  const labelsPath = o.labelsPath;
  const labelsFile = fs.openSync(labelsPath, 'w');
  const labelCounts: Record<string, number> = {};
  const writeLabel = (label: Label) => {
    fs.writeSync(labelsFile, `${labelJson(label)}\n`);
    labelCounts[label.type] = (labelCounts[label.type] ?? 0) + 1;
  };
  const jt808 = o.truckProtocol === 'jt808';
  const jt808Url = o.jt808Url ?? 'tcp://127.0.0.1:6808';
  const { transport, terminals, chirpstack } = dryRun ? { transport: null, terminals: null, chirpstack: null } : createTransport(o, jt808Url, sensors);
  let generated = 0;
  const send = (message: Parameters<Transport['send']>[0]) => {
    if (message.kind === 'publish') generated++;
    transport?.send(message);
  };

  const devices = simulation.actors.length + (city.bundle.weighbridges as unknown[]).length;
  const speedLabel = speed === Infinity ? 'max' : `×${speed}`;
  const progress = new Progress(
    () => ({ simNow: simulation.now, speed: speedLabel, devices, labels: Object.values(labelCounts).reduce((a, b) => a + b, 0), transport: transport?.stats ?? null, generated }),
    o.progressEveryMs,
  );
  process.stderr.write(
    `simulating ${simulation.actors.length} devices from ${new Date(start).toISOString()}${Number.isFinite(end) ? ` to ${new Date(end).toISOString()}` : ''} at ${speedLabel}${dryRun ? ' (dry run)' : ` against ${o.url}${jt808 ? ` (trucks: JT/T 808 to ${jt808Url})` : ''}${lorawan ? ` (bins: LoRaWAN, ChirpStack events to ${chirpstackUrl})` : ''}`}; labels to ${labelsPath}\n`,
  );

  let stopping = false;
  const onSignal = () => {
    if (stopping) process.exit(130);
    stopping = true;
    process.stderr.write('\nstopping: delivering what is queued (Ctrl-C again to quit at once)\n');
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  progress.start();
  const wallStart = Date.now();
  try {
    while (!stopping && simulation.now < end) {
      const wallNow = Date.now();
      let target = speed === Infinity ? simulation.now + 60_000 : start + (wallNow - wallStart) * speed;
      target = Math.min(target, end, dryRun ? Infinity : wallNow);
      // Devices report in step, as they do in real time: none runs more than MAX_SKEW_MS ahead of
      // the oldest message still undelivered, however fast the others' connections are.
      const oldest = transport?.oldestPendingAt() ?? null;
      if (oldest !== null) target = Math.min(target, oldest + MAX_SKEW_MS);
      if (target > simulation.now) simulation.advance(target, send, writeLabel);
      else if (transport) await transport.progress();
      if (transport) await transport.backlogBelow(20_000);
      // Caught up with the real clock (or pacing a finite speed): wait for time to pass.
      if (!dryRun && (speed !== Infinity || target >= wallNow)) await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    simulation.finish(writeLabel);
    fs.closeSync(labelsFile);
    await transport?.close(30_000);
    progress.stop();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  const summary = {
    seed,
    city: o.cityDir,
    start: new Date(start).toISOString(),
    end: new Date(simulation.now).toISOString(),
    speed: speedLabel,
    wall_start: new Date(wallStart).toISOString(),
    wall_end: new Date().toISOString(),
    broker: dryRun ? null : o.url,
    truck_protocol: jt808 ? 'jt808' : 'mqtt',
    jt808_gateway: jt808 && !dryRun ? jt808Url : null,
    bin_transport: lorawan ? 'chirpstack' : 'mqtt',
    chirpstack_broker: lorawan && !dryRun ? chirpstackUrl : null,
    violations: rates,
    noise,
    labels_file: labelsPath,
    labels: labelCounts,
    messages: generated,
    acknowledged: transport?.stats.acknowledged ?? 0,
    // JT/T 808 messages the trucks' terminals wrote: 0x0100, 0x0102, 0x0200, 0x0704, 0x0002, retransmissions, 0x0003.
    jt808_messages: terminals?.frames ?? null,
    // ChirpStack events the simulated network server published: joins, uplinks, uplinks the noise
    // delivered again (the same event), events published again after a failed delivery.
    chirpstack_events: chirpstack?.events ?? null,
  };
  fs.writeFileSync(path.join(path.dirname(labelsPath), 'run.json'), JSON.stringify(summary, null, 2));
  const undelivered = transport ? transport.stats.queued + transport.stats.inFlight : 0;
  process.stderr.write(
    `simulated ${summary.start} to ${summary.end}: ${generated.toLocaleString('en')} messages${transport ? `, ${summary.acknowledged.toLocaleString('en')} acknowledged` : ''}; labels: ${Object.entries(labelCounts).map(([k, v]) => `${k} ${v}`).join(', ') || 'none'}\n`,
  );
  if (undelivered > 0) {
    process.stderr.write(`error: ${undelivered} messages were not acknowledged by ${o.url}${jt808 ? ` and ${jt808Url}` : ''}${lorawan ? ` and ${chirpstackUrl}` : ''}${transport?.stats.lastError ? ` (last error: ${transport.stats.lastError})` : ''}\n`);
  }
  return { undelivered, labels: labelCounts };
}

/**
 * MQTT for every device, or trucks over JT/T 808 and/or bins over ChirpStack, the rest over MQTT.
 * The terminals are the city's trucks with a phone number; they authenticate with the city's code
 * (city/terminals.ts). The LoRaWAN sensors are the city's bins with a DevEUI (city/lorawan.ts).
 */
function createTransport(
  o: SimulateOptions,
  jt808Url: string,
  sensors: ReadonlyMap<string, LorawanSensor> | null,
): { transport: Transport; terminals: Jt808Transport | null; chirpstack: ChirpstackTransport | null } {
  const mqtt = new MqttTransport({ url: o.url, secret: o.city.secret, maxInFlight: o.maxInFlight, maxConnecting: 50 });
  const routes: ClassRoutes = {};
  let terminals: Jt808Transport | null = null;
  if (o.truckProtocol === 'jt808') {
    const identities = terminalsOf(o.city.bundle, o.jt808Edition ?? 'mixed');
    const trucks = (o.city.bundle.devices as { class: string }[]).filter((d) => d.class === 'trucks').length;
    if (identities.size < trucks) {
      throw new UsageError(`${trucks - identities.size} of the city's ${trucks} trucks have no terminal phone number (jt808_phone); generate the city again (npm run sim -- city --out ${o.cityDir}) and import it`);
    }
    terminals = new Jt808Transport({ url: jt808Url, terminals: identities, authCode: cityAuthCode(o.city.secret), maxInFlight: o.maxInFlight, maxConnecting: 50 });
    routes.trucks = terminals;
  }
  let chirpstack: ChirpstackTransport | null = null;
  if (sensors) {
    chirpstack = new ChirpstackTransport({
      url: o.chirpstackUrl ?? 'mqtt://127.0.0.1:1884',
      username: o.chirpstackUsername,
      password: o.chirpstackPassword,
      sensors,
      network: networkOf(o.city.seed),
      maxInFlight: o.maxInFlight,
    });
    routes.bins = chirpstack;
  }
  const transport = Object.keys(routes).length === 0 ? mqtt : new ByClassTransport(routes, mqtt);
  return { transport, terminals, chirpstack };
}

export interface LoadedCity extends Pick<City, 'bundle' | 'roads'> {
  seed: string | number;
  secret: string;
}

export function loadCity(dir: string): LoadedCity {
  const read = (name: string) => {
    const file = path.join(dir, name);
    try {
      return JSON.parse(fs.readFileSync(file, 'utf8')) as unknown;
    } catch (error) {
      throw new UsageError(`cannot read ${file} (${(error as Error).message}); generate the city first: npm run sim -- city --out ${dir}`);
    }
  };
  const meta = read('city.json') as { options: { seed: string | number }; secret: string };
  return { bundle: read('registry-bundle.json') as City['bundle'], roads: read('roads.json') as City['roads'], seed: meta.options.seed, secret: meta.secret };
}

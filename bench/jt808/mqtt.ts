// The MQTT figures bench:jt808 sets beside its own, measured as bench:ingest measures them and
// with its publisher (bench/ingest/publisher.ts): the MQTT path of the same service with the same
// devices, fixes and window. The bare broker hop is bench:ingest's own (bench/ingest/bare-hop.ts).
import { cpuMs } from '../proc.ts';
import { run, say, sleep } from '../child.ts';
import { devicesArgument } from '../ingest/bare-hop.ts';

/** What to change when bench/ingest/publisher.ts's --devices argument would not fit. */
export const TOO_MANY_DEVICES = 'use fewer --terminals or --skip-mqtt';

export interface MqttPathResult {
  published: number;
  inInflux: number;
  elapsedS: number;
  acknowledgedS: number;
  serviceCpuMs: number;
  /** The publisher's CPU time from its devices' connection to its exit (read every 100 ms). */
  publisherCpuMs: number;
  publisherRssMb: number;
}

/**
 * The service's MQTT path: `devices` (id -> secret) publish `messages` truck fixes each (ts from
 * `base` on, one ms apart), at most `window` unacknowledged per device, timed from the moment all
 * are connected until every fix is queryable: until `count` says `countBefore` more. `warmUp` must have logged in with the devices' shared secret already, so
 * that the broker has verified their one hash and the devices' logins cost no scrypt, as after
 * the first login of a fleet provisioned in one run.
 */
export async function mqttPath(options: {
  url: string;
  devices: Record<string, string>;
  messages: number;
  window: number;
  base: number;
  servicePid: number | undefined;
  count: () => Promise<number>;
  countBefore: number;
}): Promise<MqttPathResult> {
  const total = Object.keys(options.devices).length * options.messages;
  const publisher = run(
    ['bench/ingest/publisher.ts', '--url', options.url, '--devices', devicesArgument(options.devices, TOO_MANY_DEVICES), '--messages', String(options.messages), '--window', String(options.window), '--base', String(options.base)],
    {},
    (event) => {
      if (event.event === 'progress') say(`mqtt: acknowledged ${event.acknowledged as number}/${total}`);
    },
  );
  await publisher.waitFor('connected');
  const started = performance.now();
  const cpuAtStart = cpuMs(options.servicePid);
  const publisherCpuAtStart = cpuMs(publisher.child.pid);
  let publisherCpu = publisherCpuAtStart;
  const sampler = setInterval(() => (publisherCpu = Math.max(publisherCpu, cpuMs(publisher.child.pid))), 100);
  const published = (await publisher.waitFor('done')) as { published: number; elapsedMs: number; maxRssMb: number };
  say(`mqtt: all ${published.published} acknowledged after ${(published.elapsedMs / 1000).toFixed(1)} s; waiting until all are queryable...`);
  let inInflux = 0;
  const deadline = Date.now() + 180_000;
  while ((inInflux = (await options.count()) - options.countBefore) < total && Date.now() < deadline) await sleep(100);
  const elapsedS = (performance.now() - started) / 1000;
  const serviceCpuMs = cpuMs(options.servicePid) - cpuAtStart;
  if (publisher.child.exitCode === null) await new Promise((r) => publisher.child.once('exit', r));
  clearInterval(sampler);
  return { published: published.published, inInflux, elapsedS, acknowledgedS: published.elapsedMs / 1000, serviceCpuMs, publisherCpuMs: publisherCpu - publisherCpuAtStart, publisherRssMb: published.maxRssMb };
}

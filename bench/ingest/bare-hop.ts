// The bare broker hop bench:ingest and bench:jt808 set beside their pipelines: publishers
// (bench/ingest/publisher.ts) -> a broker -> one subscriber, nothing else. The broker is a plain
// aedes (bench/ingest/bare-broker.ts), or the external broker the pipeline runs on, with the same
// configuration (Mosquitto with docs/examples/mosquitto.conf).
import mqtt from 'mqtt';
import { peakRssMb } from '../proc.ts';
import { run, say, sleep } from '../child.ts';

/** bench/ingest/publisher.ts takes its devices as one JSON argument, which Linux caps at 128 KiB (MAX_ARG_STRLEN). */
const MAX_ARGUMENT_BYTES = 128 * 1024 - 1;

/** The --devices argument of bench/ingest/publisher.ts (id -> secret); throws where Linux would refuse it, with `advice` (which flags to change). */
export function devicesArgument(devices: Record<string, string>, advice: string): string {
  const json = JSON.stringify(devices);
  if (Buffer.byteLength(json) > MAX_ARGUMENT_BYTES) {
    throw new Error(`${Object.keys(devices).length} MQTT devices do not fit bench/ingest/publisher.ts's --devices argument (${Buffer.byteLength(json)} bytes, Linux allows ${MAX_ARGUMENT_BYTES}); ${advice}`);
  }
  return json;
}

/** A broker for the bare hop: where it listens, the devices' secrets, the subscriber's login. */
export interface BareBroker {
  name: string;
  url: string;
  secrets: Record<string, string>;
  subscriber: { username?: string; password?: string };
  pid: number | undefined;
  stop(): Promise<void>;
}

/** The plain aedes, in a process of its own, no authentication. */
async function bareAedes(deviceIds: string[]): Promise<BareBroker> {
  const broker = run(['bench/ingest/bare-broker.ts', '0']);
  const { port } = (await broker.waitFor('ready')) as { port: number };
  return {
    name: 'aedes',
    url: `mqtt://127.0.0.1:${port}`,
    secrets: Object.fromEntries(deviceIds.map((id) => [id, ''])),
    subscriber: {},
    pid: broker.child.pid,
    stop: async () => {
      broker.child.kill('SIGTERM');
      await broker.waitFor('rss');
    },
  };
}

/**
 * `deviceIds` publish `messages` fixes each (at most `window` unacknowledged per device) through a
 * bare broker (aedes unless `start` gives another) to one subscriber; `advice` as devicesArgument's.
 */
export async function bareBrokerHop(
  deviceIds: string[],
  messages: number,
  window: number,
  advice: string,
  start: () => Promise<BareBroker> = () => bareAedes(deviceIds),
): Promise<{ msgsPerSecond: number; received: number; brokerRssMb: number; broker: string }> {
  const total = deviceIds.length * messages;
  const broker = await start();
  // A cluster's broker is a comma-separated list of its nodes: the subscriber takes the first.
  const subscriber = await mqtt.connectAsync(broker.url.split(',')[0]!, { clientId: 'bench-subscriber', ...broker.subscriber });
  let received = 0;
  let lastAt = 0;
  subscriber.on('message', () => {
    received++;
    lastAt = performance.now();
  });
  await subscriber.subscribeAsync('waste/#', { qos: 1 });
  const publisher = run(['bench/ingest/publisher.ts', '--url', broker.url, '--devices', devicesArgument(broker.secrets, advice), '--messages', String(messages), '--window', String(window), '--base', String(Date.now())]);
  await publisher.waitFor('connected');
  const started = performance.now();
  while (received < total) {
    await sleep(50);
    if (publisher.child.exitCode !== null && received < total && performance.now() - lastAt > 5000) break;
  }
  await publisher.waitFor('done');
  const msgsPerSecond = received / ((lastAt - started) / 1000);
  const brokerRssMb = peakRssMb(broker.pid);
  await subscriber.endAsync();
  await broker.stop();
  say(`bare broker hop (${broker.name}): ${Math.round(msgsPerSecond)} msg/s (${received}/${total} received)`);
  return { msgsPerSecond, received, brokerRssMb, broker: broker.name };
}

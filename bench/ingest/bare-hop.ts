// The bare broker hop bench:ingest and bench:jt808 set beside their pipelines: publishers
// (bench/ingest/publisher.ts) -> aedes (bench/ingest/bare-broker.ts) -> one subscriber, nothing else.
import mqtt from 'mqtt';
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

/** `deviceIds` publish `messages` fixes each (at most `window` unacknowledged per device) through a bare broker to one subscriber; `advice` as devicesArgument's. */
export async function bareBrokerHop(deviceIds: string[], messages: number, window: number, advice: string): Promise<{ msgsPerSecond: number; received: number; brokerRssMb: number }> {
  const total = deviceIds.length * messages;
  const broker = run(['bench/ingest/bare-broker.ts', '0']);
  const { port } = (await broker.waitFor('ready')) as { port: number };
  const url = `mqtt://127.0.0.1:${port}`;
  const subscriber = await mqtt.connectAsync(url, { clientId: 'bench-subscriber' });
  let received = 0;
  let lastAt = 0;
  subscriber.on('message', () => {
    received++;
    lastAt = performance.now();
  });
  await subscriber.subscribeAsync('waste/#', { qos: 1 });
  const publisher = run(['bench/ingest/publisher.ts', '--url', url, '--devices', devicesArgument(Object.fromEntries(deviceIds.map((id) => [id, ''])), advice), '--messages', String(messages), '--window', String(window), '--base', String(Date.now())]);
  await publisher.waitFor('connected');
  const started = performance.now();
  while (received < total) {
    await sleep(50);
    if (publisher.child.exitCode !== null && received < total && performance.now() - lastAt > 5000) break;
  }
  await publisher.waitFor('done');
  const msgsPerSecond = received / ((lastAt - started) / 1000);
  broker.child.kill('SIGTERM');
  const rss = (await broker.waitFor('rss')) as { maxRssMb: number };
  await subscriber.endAsync();
  say(`bare broker hop: ${Math.round(msgsPerSecond)} msg/s (${received}/${total} received)`);
  return { msgsPerSecond, received, brokerRssMb: rss.maxRssMb };
}

// `npm run publish -- ...`: publishes valid or invalid sample messages as one device, the way a
// real device does (its own credentials, QoS 1, retained status with a will), and prints what the
// broker acknowledged. With --watch-rejections it also prints what the service rejected and why
// (needs a service account, since devices may not read waste/ingest/rejected).
import { parseArgs } from 'node:util';
import mqtt from 'mqtt';
import { DEVICE_CLASSES, REJECTED_TOPIC, isDeviceClass, topics } from '../services/contract/topics.ts';
import { INVALID_SAMPLES, invalidSample, invalidSamplesFor, validReading, type InvalidSampleName, type Sample } from './samples.ts';

const HELP = `Usage: npm run publish -- --device ID --secret SECRET --class <bins|trucks|scales> [options]

Options:
  --url URL            broker (default mqtt://127.0.0.1:1883)
  --sample NAME        valid (default), all-invalid (each one the class can get wrong), or one of:
                       ${INVALID_SAMPLES.join(', ')}
  --count N            messages to send (default 1)
  --batch N            readings per message, as an array (back-fill; default 1 = one object)
  --interval MS        pause between messages (default 0)
  --qos 0|1            (default 1)
  --watch-user NAME    service account to subscribe to ${REJECTED_TOPIC} and print rejections
  --watch-secret S     its secret
  -h, --help

Example:
  npm run publish -- --device TRUCK-001 --secret abc... --class trucks --count 10 --interval 1000
  npm run publish -- --device TRUCK-001 --secret abc... --class trucks --sample all-invalid
`;

function fail(message: string): never {
  process.stderr.write(`error: ${message}\n`);
  process.exit(2);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      url: { type: 'string', default: 'mqtt://127.0.0.1:1883' },
      device: { type: 'string' },
      secret: { type: 'string' },
      class: { type: 'string' },
      sample: { type: 'string', default: 'valid' },
      count: { type: 'string', default: '1' },
      batch: { type: 'string', default: '1' },
      interval: { type: 'string', default: '0' },
      qos: { type: 'string', default: '1' },
      'watch-user': { type: 'string' },
      'watch-secret': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(HELP);
    return;
  }
  const deviceId = values.device ?? fail('--device is required');
  const deviceClass = values.class ?? fail(`--class is required (${DEVICE_CLASSES.join(', ')})`);
  if (!isDeviceClass(deviceClass)) fail(`--class must be one of ${DEVICE_CLASSES.join(', ')}`);
  const count = Number(values.count);
  const batch = Number(values.batch);
  const interval = Number(values.interval);
  const qos = values.qos === '0' ? 0 : 1;
  const sampleNames: ('valid' | InvalidSampleName)[] =
    values.sample === 'all-invalid' ? invalidSamplesFor(deviceClass) : [values.sample as 'valid' | InvalidSampleName];
  for (const name of sampleNames) {
    if (name !== 'valid' && !INVALID_SAMPLES.includes(name)) fail(`unknown --sample ${name}; see --help`);
  }

  let watcher: mqtt.MqttClient | null = null;
  if (values['watch-user']) {
    watcher = await mqtt.connectAsync(values.url, { username: values['watch-user'], password: values['watch-secret'], clientId: `waste-watch-${process.pid}` });
    await watcher.subscribeAsync(REJECTED_TOPIC, { qos: 1 });
    watcher.on('message', (_topic, payload) => process.stdout.write(`rejected  ${payload.toString()}\n`));
  }

  const statusTopic = topics.status(deviceClass, deviceId);
  const client = await mqtt
    .connectAsync(values.url, {
      username: deviceId,
      password: values.secret ?? fail('--secret is required'),
      clientId: `${deviceId}-${process.pid}`,
      will: { topic: statusTopic, payload: Buffer.from('{"online":false}'), qos: 1, retain: true },
      reconnectPeriod: 0,
    })
    .catch((error: Error) => fail(`cannot connect to ${values.url} as ${deviceId}: ${error.message}`));
  await client.publishAsync(statusTopic, '{"online":true}', { qos: 1, retain: true });

  const resolve = (sample: Sample): string => (sample.topic === 'data' ? topics.data(deviceClass, deviceId) : sample.topic === 'status' ? statusTopic : sample.topic);
  for (let i = 0; i < count; i++) {
    for (const name of sampleNames) {
      const sample: Sample =
        name === 'valid'
          ? {
              topic: 'data',
              payload: JSON.stringify(
                batch > 1 ? Array.from({ length: batch }, (_, k) => validReading(deviceClass, Date.now() - (batch - 1 - k) * 10_000, deviceId)) : validReading(deviceClass, Date.now(), deviceId),
              ),
            }
          : invalidSample(name, deviceClass, deviceId);
      const topic = resolve(sample);
      try {
        await client.publishAsync(topic, sample.payload, { qos });
        const expectation = name === 'valid' ? '' : `; the service should reject it as ${name}`;
        process.stdout.write(`published ${name.padEnd(20)} ${topic} (${Buffer.byteLength(sample.payload)} bytes)${qos ? ' acknowledged' : ''}${expectation}\n`);
      } catch (error) {
        process.stdout.write(`published ${name.padEnd(20)} ${topic}: ${(error as Error).message}\n`);
      }
      if (interval > 0) await new Promise((r) => setTimeout(r, interval));
    }
  }
  // Give the rejection reports a moment to arrive before leaving.
  if (watcher) await new Promise((r) => setTimeout(r, 500));
  // A clean DISCONNECT suppresses the will, so say offline first (an external broker will not).
  await client.publishAsync(statusTopic, '{"online":false}', { qos: 1, retain: true });
  await client.endAsync();
  await watcher?.endAsync();
}

await main();

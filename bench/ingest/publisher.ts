// Benchmark publisher process: M devices each publish N truck fixes at QoS 1 with at most `window`
// unacknowledged at a time, as fast as the broker acknowledges. Prints one JSON line when done.
import { parseArgs } from 'node:util';
import mqtt from 'mqtt';

const { values } = parseArgs({
  options: {
    url: { type: 'string' },
    devices: { type: 'string' },
    messages: { type: 'string' },
    window: { type: 'string', default: '200' },
    rate: { type: 'string' },
    base: { type: 'string' },
    help: { type: 'boolean' },
  },
});
if (values.help || !values.url || !values.devices || !values.messages || !values.base) {
  process.stdout.write('Usage: publisher.ts --url URL[,URL...] --devices JSON(id->secret or id->"") --messages N --base TS [--window W] [--rate MSGS_PER_S]\n');
  process.exit(values.help ? 0 : 2);
}

const devices = JSON.parse(values.devices) as Record<string, string>;
const urls = values.url.split(',');
const perDevice = Number(values.messages);
const window = Number(values.window);
const base = Number(values.base);
/** With --rate, each device publishes at rate/M per second instead of as fast as acknowledged. */
const intervalMs = values.rate ? (1000 * Object.keys(devices).length) / Number(values.rate) : 0;

const clients = await Promise.all(
  Object.entries(devices).map(([id, secret], i) =>
    // Devices are spread over the brokers of a comma-separated --url (the nodes of a cluster).
    mqtt.connectAsync(urls[i % urls.length]!, { clientId: `${id}-bench`, reconnectPeriod: 0, ...(secret ? { username: id, password: secret } : {}) }).then((client) => ({ id, client })),
  ),
);
process.stdout.write(JSON.stringify({ event: 'connected', devices: clients.length }) + '\n');

const started = performance.now();
let acknowledged = 0;
const progress = setInterval(() => process.stdout.write(JSON.stringify({ event: 'progress', acknowledged }) + '\n'), 1000);
await Promise.all(
  clients.map(async ({ id, client }) => {
    let next = 0;
    if (intervalMs > 0) {
      const start = performance.now() + Math.random() * intervalMs;
      const inFlight: Promise<unknown>[] = [];
      for (let n = 0; n < perDevice; n++) {
        const due = start + n * intervalMs - performance.now();
        if (due > 0) await new Promise((r) => setTimeout(r, due));
        const payload = `{"ts":${base + n},"lat":31.2,"lon":120.58532,"speed_kmh":${n % 90},"heading":${n % 360},"ignition":true,"cover_closed":true,"load_kg":18250}`;
        inFlight.push(client.publishAsync(`waste/trucks/${id}/position`, payload, { qos: 1 }).then(() => acknowledged++));
      }
      await Promise.all(inFlight);
      return;
    }
    const lane = async (): Promise<void> => {
      while (next < perDevice) {
        const n = next++;
        const payload = `{"ts":${base + n},"lat":${(31.2 + (n % 1000) * 1e-5).toFixed(5)},"lon":120.58532,"speed_kmh":${n % 90},"heading":${n % 360},"ignition":true,"cover_closed":true,"load_kg":18250}`;
        await client.publishAsync(`waste/trucks/${id}/position`, payload, { qos: 1 });
        acknowledged++;
      }
    };
    await Promise.all(Array.from({ length: window }, lane));
  }),
);
clearInterval(progress);
const elapsedMs = performance.now() - started;
await Promise.all(clients.map(({ client }) => client.endAsync()));
process.stdout.write(JSON.stringify({ event: 'done', published: acknowledged, elapsedMs, maxRssMb: process.resourceUsage().maxRSS / 1024 }) + '\n');

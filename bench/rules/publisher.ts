// Child process of bench/rules/run.ts: the active trucks (a JSON file of {id, lon, lat}), each on its own MQTT connection,
// publishing fixes (QoS 1) at a total rate while standing on their routes; every 150th fix of a
// truck records its load dropping by 20 t off any disposal site, which the rules flag as an illegal
// dump. A fix's ts is its wall-clock publish time, so the subscriber measures latency from it.
// Prints JSON lines: {"event":"connected"}, {"event":"progress",...}, {"event":"published",...} when it
// stops publishing, {"event":"done",...} once everything is acknowledged.
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import mqtt, { type MqttClient } from 'mqtt';

const { values } = parseArgs({ options: { url: { type: 'string' }, trucks: { type: 'string' }, secret: { type: 'string' }, rate: { type: 'string' }, seconds: { type: 'string' } } });
const trucks = JSON.parse(fs.readFileSync(values.trucks!, 'utf8')) as { id: string; lon: number; lat: number }[];
const rate = Number(values.rate);
const seconds = Number(values.seconds);
const emit = (event: Record<string, unknown>) => process.stdout.write(JSON.stringify(event) + '\n');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const clients: MqttClient[] = [];
for (let i = 0; i < trucks.length; i += 20) {
  clients.push(...(await Promise.all(trucks.slice(i, i + 20).map((t) => mqtt.connectAsync(values.url!, { username: t.id, password: values.secret!, clientId: t.id, reconnectPeriod: 0 })))));
}
emit({ event: 'connected' });
const counters = new Array<number>(trucks.length).fill(0);
const lastTs = new Array<number>(trucks.length).fill(0);
let published = 0;
let acknowledged = 0;
let dumps = 0;
let next = 0;
const started = performance.now();
let reported = 0;
while (performance.now() - started < seconds * 1000) {
  const due = Math.floor(((performance.now() - started) / 1000) * rate);
  for (; next < due; next++) {
    const i = next % trucks.length;
    const c = counters[i]!++;
    const ts = (lastTs[i] = Math.max(Date.now(), lastTs[i]! + 1));
    // Trucks dump at different moments, as they would.
    const dump = (c + i) % 150 === 75 && c > 0;
    if (dump) dumps++;
    const t = trucks[i]!;
    const payload = JSON.stringify({ ts, lat: t.lat, lon: t.lon, speed_kmh: 0, heading: 0, ignition: true, cover_closed: true, tipper_up: false, load_kg: (c + i) % 150 < 75 ? 20_000 : 0 });
    published++;
    clients[i]!.publish(`waste/trucks/${t.id}/position`, payload, { qos: 1 }, () => acknowledged++);
  }
  if (performance.now() - started - reported >= 1000) {
    reported += 1000;
    emit({ event: 'progress', published, acknowledged });
  }
  await sleep(5);
}
const elapsedS = (performance.now() - started) / 1000;
emit({ event: 'published', published });
const deadline = Date.now() + 15_000;
while (acknowledged < published && Date.now() < deadline) await sleep(50);
await Promise.all(clients.map((c) => c.endAsync()));
emit({ event: 'done', published, acknowledged, dumps, elapsedS });

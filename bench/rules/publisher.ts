// Child process of bench/rules/run.ts: the active trucks (a JSON file of {id, lon, lat}), each on its own MQTT connection,
// publishing fixes (QoS 1) at a total rate while standing on their routes; every 150th fix of a
// truck records its load dropping by 20 t off any disposal site, which the rules flag as an illegal
// dump. A fix's ts is its wall-clock publish time, so the subscriber measures latency from it.
// The first `warmup` seconds run at the same rate but are not measured (the service's JIT compiler
// and the trucks' first fixes); the dumps counted are those after it.
// Prints JSON lines: {"event":"connected"}, {"event":"measuring","from":epochMs} when the warm-up
// ends, {"event":"progress",...}, {"event":"published",...} when it stops publishing,
// {"event":"done",...} once everything is acknowledged.
//
// The trucks speak MQTT 3.1.1 over plain sockets, packets built and parsed with mqtt-packet, rather
// than through mqtt.js clients: at 10,000 messages/s a full client stack costs most of a core, which
// on a two-core machine is taken from the service being measured.
import fs from 'node:fs';
import net from 'node:net';
import { parseArgs } from 'node:util';
import mqttPacket from 'mqtt-packet';

const { values } = parseArgs({ options: { url: { type: 'string' }, trucks: { type: 'string' }, secret: { type: 'string' }, rate: { type: 'string' }, seconds: { type: 'string' }, warmup: { type: 'string', default: '0' } } });
const trucks = JSON.parse(fs.readFileSync(values.trucks!, 'utf8')) as { id: string; lon: number; lat: number }[];
const rate = Number(values.rate);
const seconds = Number(values.seconds);
const warmupMs = Number(values.warmup) * 1000;
const brokerUrl = new URL(values.url!);
const emit = (event: Record<string, unknown>) => process.stdout.write(JSON.stringify(event) + '\n');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let acknowledged = 0;
/** Publish-to-PUBACK times (ms) of measured fixes: the service acknowledges once a fix is durable. */
const ackMs: number[] = [];

/** Opens one truck's connection; resolves once the broker has accepted it (CONNACK return code 0). */
function connect(truck: { id: string }, sentAt: Map<number, number>): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(brokerUrl.port), brokerUrl.hostname);
    socket.setNoDelay(true);
    const parser = mqttPacket.parser({ protocolVersion: 4 });
    parser.on('packet', (packet) => {
      if (packet.cmd === 'puback') {
        acknowledged++;
        const sent = sentAt.get(packet.messageId!);
        if (sent !== undefined) ackMs.push(performance.now() - sent);
        sentAt.delete(packet.messageId!);
      } else if (packet.cmd === 'connack') {
        if (packet.returnCode === 0) resolve(socket);
        else {
          socket.destroy();
          reject(new Error(`${truck.id}: the broker refused the connection (CONNACK return code ${packet.returnCode})`));
        }
      }
    });
    parser.on('error', reject);
    socket.on('data', (chunk) => parser.parse(chunk));
    socket.on('error', reject);
    socket.on('connect', () =>
      socket.write(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: truck.id, keepalive: 600, username: truck.id, password: Buffer.from(values.secret!) })),
    );
  });
}

/** Per truck: when each measured fix still unacknowledged was sent, by packet id. */
const sentAt = trucks.map(() => new Map<number, number>());
const sockets: net.Socket[] = [];
/**
 * Logins at once: no more than the broker verifies per address (broker.maxPendingLoginsPerAddress,
 * 16), since every truck here comes from one address; a login refused as busy anyway (CONNACK 3)
 * is tried again, as a real terminal would.
 */
const CONNECTING = 16;
async function connectRetrying(truck: { id: string }, pending: Map<number, number>): Promise<net.Socket> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await connect(truck, pending);
    } catch (error) {
      if (attempt >= 20 || !/return code 3\)/.test((error as Error).message)) throw error;
      await sleep(100 * attempt);
    }
  }
}
for (let i = 0; i < trucks.length; i += CONNECTING) sockets.push(...(await Promise.all(trucks.slice(i, i + CONNECTING).map((t, k) => connectRetrying(t, sentAt[i + k]!)))));
emit({ event: 'connected' });
const topics = trucks.map((t) => `waste/trucks/${t.id}/position`);
const counters = new Array<number>(trucks.length).fill(0);
const lastTs = new Array<number>(trucks.length).fill(0);
let published = 0;
let dumps = 0;
let next = 0;
const started = performance.now();
/** When the warm-up ended, and how many fixes were published before then; null during the warm-up. */
let measured: { at: number; before: number } | null = null;
let reported = 0;
while (performance.now() - started < warmupMs + seconds * 1000) {
  if (!measured && performance.now() - started >= warmupMs) {
    measured = { at: performance.now(), before: published };
    emit({ event: 'measuring', from: Date.now() });
  }
  const due = Math.floor(((performance.now() - started) / 1000) * rate);
  for (; next < due; next++) {
    const i = next % trucks.length;
    const c = counters[i]!++;
    const ts = (lastTs[i] = Math.max(Date.now(), lastTs[i]! + 1));
    // Trucks dump at different moments, as they would.
    const dump = (c + i) % 150 === 75 && c > 0;
    if (dump && measured) dumps++;
    const t = trucks[i]!;
    const payload = JSON.stringify({ ts, lat: t.lat, lon: t.lon, speed_kmh: 0, heading: 0, ignition: true, cover_closed: true, tipper_up: false, load_kg: (c + i) % 150 < 75 ? 20_000 : 0 });
    published++;
    // Packet ids 1..65535, cycling (MQTT 3.1.1 §2.3.1); a truck has at most a few in flight.
    const messageId = (c % 65_535) + 1;
    if (measured) sentAt[i]!.set(messageId, performance.now());
    sockets[i]!.write(mqttPacket.generate({ cmd: 'publish', topic: topics[i]!, payload, qos: 1, messageId, retain: false, dup: false }));
  }
  if (performance.now() - started - reported >= 1000) {
    reported += 1000;
    emit({ event: 'progress', published, acknowledged });
  }
  await sleep(5);
}
const elapsedS = (performance.now() - measured!.at) / 1000;
const measuredFixes = published - measured!.before;
emit({ event: 'published', published });
const deadline = Date.now() + 15_000;
while (acknowledged < published && Date.now() < deadline) await sleep(50);
await Promise.all(sockets.map((s) => new Promise((resolve) => s.end(mqttPacket.generate({ cmd: 'disconnect' }), () => resolve(null)))));
ackMs.sort((a, b) => a - b);
const ackPercentile = (p: number) => ackMs[Math.min(ackMs.length - 1, Math.floor(p * ackMs.length))] ?? null;
emit({ event: 'done', published, acknowledged, measured: measuredFixes, dumps, elapsedS, ackP50Ms: ackPercentile(0.5), ackP99Ms: ackPercentile(0.99) });

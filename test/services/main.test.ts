// `npm start` as a process: killed with SIGKILL under load, restarted, every acknowledged point is
// there once; stopped with SIGTERM, it exits 0, promptly, whatever its HTTP clients are doing;
// webhooks cannot call its own listeners or InfluxDB; --help answers.
import { execFileSync } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../services/config/schema.ts';
import { RegistryDb } from '../../services/registry/db.ts';
import { ENTITIES } from '../../services/registry/entities.ts';
import { EntityStore } from '../../services/registry/entity-store.ts';
import { TokenStore } from '../../services/registry/tokens.ts';
import { startTestInfluxd, type TestInfluxd } from '../helpers/influxd.ts';
import { startTruckLoad } from '../helpers/load.ts';
import { freePort } from '../helpers/ports.ts';
import { spawnService } from '../helpers/process.ts';
import { eventually, provision, sleep, tempDir, testConfig } from '../helpers/service.ts';

let influxd: TestInfluxd;
beforeAll(async () => {
  influxd = await startTestInfluxd();
});
afterAll(async () => {
  await influxd?.cleanup();
});


async function serviceEnv(): Promise<Record<string, string>> {
  return {
    WASTE_DATA_DIR: await tempDir('waste-main-'),
    WASTE_BROKER_HOST: '127.0.0.1',
    WASTE_BROKER_PORT: String(await freePort()),
    WASTE_BROKER_WS_PORT: String(await freePort()),
    WASTE_API_PORT: String(await freePort()),
    WASTE_JT808_PORT: String(await freePort()),
    WASTE_INFLUX_URL: influxd.url,
    WASTE_INFLUX_START_PRIVATE: 'false',
    WASTE_SPOOL_RETRY_MIN_MS: '100',
  };
}

/** An admin token and a jurisdiction in the registry of `config`, written as the CLI would before the service starts. */
function seedRegistry(config: Config): string {
  const db = new RegistryDb(config.registry.file);
  db.open();
  try {
    new EntityStore(db).create(ENTITIES.jurisdictions, 'WEST', {
      name: '西区', enforcement_unit: '西区中队', neighbour_ids: [],
      geometry: { type: 'Polygon', coordinates: [[[120.5, 31.2], [120.6, 31.2], [120.6, 31.4], [120.5, 31.4], [120.5, 31.2]]] },
    });
    return new TokenStore(db).create({ name: 'ops', role: 'admin' }).token;
  } finally {
    db.close();
  }
}

/** A raw connection to the API, for clients that misbehave (errors once the service is gone are expected). */
async function rawConnection(port: number): Promise<net.Socket> {
  const socket = net.connect(port, '127.0.0.1');
  socket.on('error', () => {});
  await new Promise((resolve) => socket.once('connect', resolve));
  return socket;
}

describe('npm start', () => {
  it('loses nothing acknowledged when killed with SIGKILL under load', async () => {
    const env = await serviceEnv();
    const config = await testConfig(influxd.url, {}, env.WASTE_DATA_DIR);
    const devices = await provision(config, [['P1', 'trucks'], ['P2', 'trucks'], ['P3', 'trucks'], ['P4', 'trucks']]);
    let service = await spawnService(env);
    const load = await startTruckLoad(`mqtt://127.0.0.1:${env.WASTE_BROKER_PORT}`, devices, { intervalMs: 5, perTick: 3 });
    await sleep(1000);
    service.child.kill('SIGKILL');
    await service.exited;
    const publishedBeforeRestart = load.published();
    service = await spawnService(env);
    await sleep(1000);
    load.stop();
    const published = await load.acknowledged;
    expect(published).toBeGreaterThan(publishedBeforeRestart);
    const count = async () => (await Promise.all(Object.keys(devices).map((id) => influxd.count('truck_position', 'lat', id)))).reduce((a, b) => a + b, 0);
    expect(await eventually(count, (n) => n >= published, 30_000)).toBe(published);
    await load.close();
    service.child.kill('SIGTERM');
    expect(await service.exited).toBe(0);
    expect(service.output()).toContain('"stopped"');
  });

  it('exits 0 within 10 s of SIGTERM while an event stream, a slow request body and an unread kept-alive answer are open', async () => {
    const env = await serviceEnv();
    const config = await testConfig(influxd.url, {}, env.WASTE_DATA_DIR);
    const token = seedRegistry(config);
    const service = await spawnService(env);
    const port = Number(env.WASTE_API_PORT);

    // An event-stream client, reading.
    let streamed = '';
    const stream = http.get({ host: '127.0.0.1', port, path: '/api/v1/alerts/stream', headers: { authorization: `Bearer ${token}` } }, (response) => {
      response.on('data', (chunk: Buffer) => (streamed += chunk.toString()));
      response.on('error', () => {});
    });
    stream.on('error', () => {});
    await eventually(async () => streamed, (text) => text.includes(': connected'), 5000);

    // A request body that arrives a few bytes, then nothing more.
    const slow = await rawConnection(port);
    slow.write(`POST /api/v1/devices HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"id":`);

    // A kept-alive connection that asks for many answers and reads none of them: the server is left
    // with more to write than the socket buffers hold.
    const unread = await rawConnection(port);
    unread.pause();
    const size = Number((await fetch(`http://127.0.0.1:${port}/docs/json`)).headers.get('content-length') ?? 100_000);
    const requests = Math.ceil((64 * 1024 * 1024) / size);
    unread.write(`GET /docs/json HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n`.repeat(requests));
    await sleep(1000);
    // What the client took in is one read-ahead buffer at most, far from what was asked for.
    expect(unread.bytesRead).toBeLessThan(size * requests);

    const sentAt = Date.now();
    service.child.kill('SIGTERM');
    const code = await Promise.race([service.exited, sleep(15_000).then(() => 'still running')]);
    const took = Date.now() - sentAt;
    if (code === 'still running') service.child.kill('SIGKILL');
    expect(code, service.output().slice(-2000)).toBe(0);
    expect(took).toBeLessThan(10_000);
    expect(service.output()).toContain('"stopped"');
    expect(streamed).toContain('the service is stopping');
    for (const socket of [slow, unread]) socket.destroy();
  });

  it('refuses webhooks to its own listeners and to its InfluxDB even where loopback is allowed', async () => {
    const env: Record<string, string> = { ...(await serviceEnv()), WASTE_ALERTS_WEBHOOK_ALLOW_TARGETS: '127.0.0.0/8' };
    const config = await testConfig(influxd.url, {}, env.WASTE_DATA_DIR);
    const token = seedRegistry(config);
    const service = await spawnService(env);
    try {
      const create = async (url: string) => {
        const response = await fetch(`http://127.0.0.1:${env.WASTE_API_PORT}/api/v1/webhooks`, {
          method: 'POST',
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
          body: JSON.stringify({ jurisdiction_id: 'WEST', url }),
        });
        return { status: response.status, message: ((await response.json()) as { error?: { message: string } }).error?.message };
      };
      expect(await create(`${influxd.url}/query?q=CREATE%20DATABASE%20pwned`)).toEqual({ status: 400, message: expect.stringMatching(/^127\.0\.0\.1 is the InfluxDB of this service/) });
      expect(await create(`http://127.0.0.1:${env.WASTE_BROKER_PORT}/`)).toEqual({ status: 400, message: expect.stringMatching(/^127\.0\.0\.1 is the MQTT listener of this service/) });
      expect(await create(`http://127.0.0.1:${env.WASTE_BROKER_WS_PORT}/`)).toEqual({ status: 400, message: expect.stringMatching(/^127\.0\.0\.1 is the MQTT WebSocket listener of this service/) });
      expect(await create(`http://127.0.0.1:${env.WASTE_API_PORT}/api/v1/tokens`)).toEqual({ status: 400, message: expect.stringMatching(/^127\.0\.0\.1 is the HTTP API of this service/) });
      // Loopback is allowed otherwise.
      expect((await create(`http://127.0.0.1:${await freePort()}/hook`)).status).toBe(201);
    } finally {
      service.child.kill('SIGTERM');
      expect(await service.exited).toBe(0);
    }
  });

  it('answers --help', () => {
    const help = execFileSync(process.execPath, ['--import', 'tsx', 'services/main.ts', '--help']).toString();
    expect(help).toMatch(/Usage: npm start/);
  });
});

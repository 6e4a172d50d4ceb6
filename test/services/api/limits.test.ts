// The API's answers to abuse, over real sockets against the real service: time parameters out of
// range are a 400 that names them (never a 500), an enforcement token cannot tell a truck outside
// its jurisdictions from one that does not exist, guessing tokens is limited per client address
// without locking out anyone else, and a client sending its request slowly is cut off.
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../../services/api/app.ts';
import { TelemetryReader } from '../../../services/influx/reader.ts';
import { RegistryDb } from '../../../services/registry/db.ts';
import { DeviceStore } from '../../../services/registry/devices.ts';
import { ENTITIES } from '../../../services/registry/entities.ts';
import { EntityStore } from '../../../services/registry/entity-store.ts';
import { TokenStore } from '../../../services/registry/tokens.ts';
import { alertDeps } from '../../helpers/api.ts';
import { startTestInfluxd, type TestInfluxd } from '../../helpers/influxd.ts';
import { freePort } from '../../helpers/ports.ts';
import { NIGHT } from '../../helpers/rules-world.ts';
import { provision, startTestService, tempDir, testConfig, type TestService } from '../../helpers/service.ts';

let influxd: TestInfluxd;
let running: TestService;
const tokens = {} as Record<'admin' | 'operator' | 'enforcement', string>;
const square = (x: number, y: number, d: number) => ({ type: 'Polygon', coordinates: [[[x, y], [x + d, y], [x + d, y + d], [x, y + d], [x, y]]] });

beforeAll(async () => {
  influxd = await startTestInfluxd();
  const config = await testConfig(influxd.url, { 'api.host': '127.0.0.1', 'api.port': await freePort(), 'api.rateLimitPerMinute': 100_000 });
  await provision(config, [['GPS-OUT', 'trucks'], ['BIN-DEV', 'bins']]);
  running = await startTestService(config);
  const { entities, tokens: store } = running.service;
  entities.create(ENTITIES.jurisdictions, 'pingjiang', { name: '平江', enforcement_unit: '平江中队', geometry: square(120.62, 31.3, 0.05), neighbour_ids: [] });
  entities.create(ENTITIES.jurisdictions, 'gusu', { name: '姑苏', enforcement_unit: '姑苏中队', geometry: square(120.5, 31.3, 0.05), neighbour_ids: [] });
  entities.create(ENTITIES.companies, 'co', { name: 'co' });
  entities.create(ENTITIES.trucks, 'truck-out', { plate: '苏E·00002', company_id: 'co', fleet: 'muck', rated_gross_kg: 31000, device_id: 'GPS-OUT' });
  entities.create(ENTITIES.trucks, 'truck-bare', { plate: '苏E·00003', company_id: 'co', fleet: 'muck', rated_gross_kg: 31000, device_id: null });
  entities.create(ENTITIES.bins, 'bin-1', { category: 'kitchen', location: { type: 'Point', coordinates: [120.63, 31.31] }, depth_mm: 1000, device_id: 'BIN-DEV' });
  tokens.admin = store.create({ name: 'a', role: 'admin' }).token;
  tokens.operator = store.create({ name: 'o', role: 'operator' }).token;
  tokens.enforcement = store.create({ name: 'e', role: 'enforcement', jurisdictions: ['pingjiang'] }).token;
  // truck-out only ever drove in gusu, outside the enforcement token's jurisdiction.
  await influxd.store().write(`truck_position,device_id=GPS-OUT lat=31.32,lon=120.52,speed_kmh=30,heading=270 ${Date.now() - 60_000}\n`);
  // An alert in gusu only, which the enforcement token may not see either.
  running.service.alerts.onFinding({
    type: 'illegal_dump', severity: 'critical', subject: { kind: 'truck', id: 'truck-out', plate: '苏E·00002', deviceId: 'GPS-OUT' },
    startedAt: NIGHT, endedAt: NIGHT + 60_000, location: [120.52, 31.32], jurisdictions: ['gusu'],
    evidence: [{ kind: 'fix', ts: NIGHT, device_id: 'GPS-OUT', lon: 120.52, lat: 31.32, speed_kmh: 0, tipper_up: true }], permit: null, detail: {},
  });
  await running.service.alerts.recorded();
});
afterAll(async () => {
  await running?.stop();
  await influxd?.cleanup();
});

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  // Error bodies are read field by field in the assertions.
  body: { error?: { code: string; message: string; path?: unknown[] } } & Record<string, unknown>;
}

/** One request on a connection of its own, from `from` (a loopback address) when given. */
function call(method: string, route: string, options: { token?: string; authorization?: string; from?: string; body?: object } = {}): Promise<Answer> {
  const payload = options.body ? JSON.stringify(options.body) : undefined;
  const authorization = options.authorization ?? (options.token ? `Bearer ${options.token}` : undefined);
  return new Promise((resolve, reject) => {
    const request = http.request(
      {
        host: '127.0.0.1',
        port: running.ports.apiPort!,
        method,
        path: route,
        agent: false,
        ...(options.from ? { localAddress: options.from } : {}),
        headers: { ...(authorization ? { authorization } : {}), ...(payload ? { 'content-type': 'application/json' } : {}) },
      },
      (response) => {
        let text = '';
        response.on('data', (chunk: Buffer) => (text += chunk.toString()));
        response.on('end', () => resolve({ status: response.statusCode!, headers: response.headers, body: text ? (JSON.parse(text) as Answer['body']) : {} }));
      },
    );
    request.on('error', reject);
    request.end(payload);
  });
}

describe('time parameters', () => {
  it('answers a time outside 1970-2100 on every route that takes one with a 400 naming the parameter, never a 500', async () => {
    const far = encodeURIComponent('9999-12-31T00:00:00Z');
    const early = encodeURIComponent('0001-01-01T00:00:00Z');
    const attempts: [string, string, object | undefined, string][] = [
      ['GET', `/api/v1/trucks/truck-out/track?to=${far}`, undefined, 'querystring.to'],
      ['GET', `/api/v1/trucks/truck-out/track?from=${early}`, undefined, 'querystring.from'],
      ['GET', `/api/v1/bins/bin-1/levels?from=${early}&to=${far}`, undefined, 'querystring.from'],
      ['GET', `/api/v1/alerts?to=${far}`, undefined, 'querystring.to'],
      ['GET', `/api/v1/alerts?from=${early}`, undefined, 'querystring.from'],
      ['GET', `/api/v1/spillage/hotspots?to=${far}`, undefined, 'querystring.to'],
      ['GET', '/api/v1/sorting/rates?day=9999-12-31', undefined, 'querystring.day'],
      ['GET', '/api/v1/sorting/trends?month=9999-12', undefined, 'querystring.month'],
      ['GET', '/api/v1/sorting/rankings?to=9999-12-31', undefined, 'querystring.to'],
      ['GET', '/api/v1/sorting/rankings?from=0001-01-01&to=0001-01-07', undefined, 'querystring.from'],
      ['POST', '/api/v1/sorting/recompute', { from: '0001-01-01' }, 'body.from'],
    ];
    for (const [method, route, body, where] of attempts) {
      const answer = await call(method, route, { token: tokens.admin, ...(body ? { body } : {}) });
      expect([answer.status, answer.body.error?.code, answer.body.error?.message], route).toEqual([400, 'invalid_request', expect.stringMatching(new RegExp(`^${where.replace('.', '\\.')}: must lie between 1970-01(-01)?(T00:00:00Z)? and (2099-12(-31)?|2100-01-01T00:00:00Z)$`))]);
    }
    // The bounds themselves are fine.
    const edge = await call('GET', `/api/v1/trucks/truck-out/track?from=${encodeURIComponent('1970-01-01T00:00:00Z')}&to=${encodeURIComponent('2099-12-31T23:59:59Z')}`, { token: tokens.operator });
    expect(edge.status).toBe(200);
    expect((edge.body.fixes as unknown[]).length).toBe(1);
  });
});

describe('what an enforcement token can tell', () => {
  it('gets the same answer for a truck outside its jurisdictions, one without a device and one that does not exist, on every route it can reach', async () => {
    const window = `from=${encodeURIComponent(new Date(Date.now() - 3_600_000).toISOString())}&to=${encodeURIComponent(new Date().toISOString())}`;
    const answers = await Promise.all(
      ['truck-out', 'truck-bare', 'truck-ghost'].map(async (id) => {
        const answer = await call('GET', `/api/v1/trucks/${id}/track?${window}`, { token: tokens.enforcement });
        return { status: answer.status, body: JSON.stringify(answer.body).replaceAll(id, '<id>') };
      }),
    );
    expect(answers[0]).toEqual({ status: 404, body: expect.stringContaining('"code":"not_found"') });
    expect(answers[1]).toEqual(answers[0]);
    expect(answers[2]).toEqual(answers[0]);
    // A malformed window is judged before the truck is looked up, so it tells nothing either.
    const backwards = `from=${encodeURIComponent(new Date().toISOString())}&to=${encodeURIComponent(new Date(Date.now() - 3_600_000).toISOString())}`;
    const [known, unknown] = await Promise.all(['truck-out', 'truck-ghost'].map((id) => call('GET', `/api/v1/trucks/${id}/track?${backwards}`, { token: tokens.enforcement })));
    expect([known!.status, known!.body]).toEqual([unknown!.status, unknown!.body]);
    expect(known!.status).toBe(400);

    // Alerts: one of another jurisdiction and one that does not exist, read or handled.
    const hidden = (running.service.alerts.store.list({ limit: 1, offset: 0 }).items[0]!).id;
    for (const [method, suffix] of [['GET', ''], ['POST', '/acknowledge'], ['POST', '/resolve']] as const) {
      const [other, none] = await Promise.all([hidden, 'al_000000000000000000000000'].map((id) => call(method, `/api/v1/alerts/${id}${suffix}`, { token: tokens.enforcement, ...(method === 'POST' ? { body: {} } : {}) })));
      expect(other!.status, suffix).toBe(404);
      expect(JSON.stringify(other!.body).replaceAll(hidden, '<id>'), suffix).toBe(JSON.stringify(none!.body).replaceAll('al_000000000000000000000000', '<id>'));
    }
    // The same truck for an operator: it exists, and the track says where it was.
    expect((await call('GET', `/api/v1/trucks/truck-out/track?${window}`, { token: tokens.operator })).status).toBe(200);
  });
});

describe('failed authentication', () => {
  it('answers 429 with Retry-After to an address that keeps sending unknown tokens, and still lets its valid tokens through', async () => {
    const attacker = '127.0.0.2';
    const bystander = '127.0.0.3';
    for (let i = 0; i < 20; i++) {
      const answer = await call('GET', '/api/v1/devices', { authorization: `Bearer wt_guess-${i}`, from: attacker });
      expect(answer.status, `guess ${i}`).toBe(401);
    }
    const limited = await call('GET', '/api/v1/devices', { authorization: 'Bearer wt_guess-20', from: attacker });
    expect(limited.status).toBe(429);
    expect(limited.body.error).toMatchObject({ code: 'rate_limited', message: expect.stringMatching(/^more than 20 requests with unknown or revoked tokens from 127\.0\.0\.2 within a minute; retry in \d+ s/) });
    const retryAfter = Number(limited.headers['retry-after']);
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(60);
    // The same address may be a whole office behind one NAT or proxy: its valid tokens still work
    // (a 256-bit token is not guessed), and its failures go on being refused with 429.
    expect((await call('GET', '/api/v1/devices', { token: tokens.admin, from: attacker })).status).toBe(200);
    expect((await call('GET', '/api/v1/devices', { authorization: 'Bearer wt_guess-21', from: attacker })).status).toBe(429);
    // Public routes stay open to it.
    expect((await call('GET', '/health', { from: attacker })).status).toBe(200);

    // Another address: its valid token works, and its own failures are its own.
    expect((await call('GET', '/api/v1/devices', { token: tokens.admin, from: bystander })).status).toBe(200);
    expect((await call('GET', '/api/v1/devices', { authorization: 'Bearer wt_typo', from: bystander })).status).toBe(401);
    expect((await call('GET', '/api/v1/devices', { token: tokens.operator, from: bystander })).status).toBe(200);

    // Requests without any credentials guess nothing and are not counted.
    const anonymous = '127.0.0.4';
    for (let i = 0; i < 30; i++) expect((await call('GET', '/api/v1/devices', { from: anonymous })).status).toBe(401);
    expect((await call('GET', '/api/v1/devices', { token: tokens.admin, from: anonymous })).status).toBe(200);
  });
});

describe('slow and large requests', () => {
  it('cuts off a request whose body does not arrive within api.requestTimeoutMs, and refuses a body over api.bodyLimitBytes', async () => {
    const db = new RegistryDb(path.join(await tempDir('waste-limits-'), 'registry.db'));
    db.open();
    const tokenStore = new TokenStore(db);
    const token = tokenStore.create({ name: 'a', role: 'admin' }).token;
    const app = await buildApp({
      db, devices: new DeviceStore(db), entities: new EntityStore(db), tokens: tokenStore, rateLimitPerMinute: 1000,
      reader: new TelemetryReader(influxd.store()), ...alertDeps(db),
      limits: { requestTimeoutMs: 1500, bodyLimitBytes: 4096 },
    });
    try {
      await app.listen({ host: '127.0.0.1', port: 0 });
      const port = (app.server.address() as net.AddressInfo).port;
      const socket = net.connect(port, '127.0.0.1');
      let answer = '';
      socket.on('data', (chunk: Buffer) => (answer += chunk.toString()));
      const closed = new Promise<number>((resolve) => socket.on('close', () => resolve(Date.now())));
      await new Promise((resolve) => socket.once('connect', resolve));
      const started = Date.now();
      socket.write(`POST /api/v1/devices HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"id":`);
      // A byte now and then keeps the connection from being idle; the whole request is what is timed.
      const drip = setInterval(() => socket.write(' '), 200);
      const closedAt = await Promise.race([closed, new Promise<number>((resolve) => setTimeout(() => resolve(0), 8000))]);
      clearInterval(drip);
      socket.destroy();
      expect(closedAt, 'the connection was still open after 8 s').toBeGreaterThan(0);
      expect(closedAt - started).toBeGreaterThanOrEqual(1400);
      expect(closedAt - started).toBeLessThan(4000);
      expect(answer).toMatch(/^HTTP\/1\.1 408/);

      const big = await fetch(`http://127.0.0.1:${port}/api/v1/devices`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ id: 'D1', class: 'bins', padding: 'x'.repeat(8192) }),
      });
      expect(big.status).toBe(413);
    } finally {
      await app.close();
      db.close();
    }
  });
});

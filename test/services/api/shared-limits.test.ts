// Two API processes on one PostgreSQL (two apps, each with a connection of its own, on real
// sockets): a client's request allowance and its failed-token allowance are counted once across
// both, as a load balancer sending it to either would need; and what PostgreSQL cannot store is a 400.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../../services/api/app.ts';
import { influxSchema } from '../../../services/config/schema.ts';
import { InfluxStore } from '../../../services/influx/client.ts';
import { TelemetryReader } from '../../../services/influx/reader.ts';
import { RegistryDb } from '../../../services/registry/db.ts';
import { DeviceStore } from '../../../services/registry/devices.ts';
import { EntityStore } from '../../../services/registry/entity-store.ts';
import { TokenStore } from '../../../services/registry/tokens.ts';
import { alertDeps } from '../../helpers/api.ts';
import { startTestPostgres, type TestPostgres } from '../../helpers/postgres.ts';

let postgres: TestPostgres;
beforeAll(async () => {
  postgres = await startTestPostgres();
});
afterAll(async () => {
  await postgres?.cleanup();
});

async function apiProcess(url: string, rateLimitPerMinute: number, authFailuresPerMinute: number) {
  const db = new RegistryDb(url).open();
  const tokens = new TokenStore(db);
  const app = await buildApp({
    db,
    devices: new DeviceStore(db),
    entities: new EntityStore(db),
    tokens,
    rateLimitPerMinute,
    limits: { authFailuresPerMinute },
    reader: new TelemetryReader(new InfluxStore(influxSchema.parse({ url: 'http://127.0.0.1:1' }))),
    ...alertDeps(db),
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const port = (app.server.address() as { port: number }).port;
  const get = async (token: string, path = '/api/v1/devices') => (await fetch(`http://127.0.0.1:${port}${path}`, { headers: { authorization: `Bearer ${token}` } })).status;
  return { db, tokens, get, close: async () => (await app.close(), db.close()) };
}

describe('the API on PostgreSQL', () => {
  it('counts a token’s requests on both processes against one allowance', async () => {
    const url = await postgres.createDatabase();
    const [a, b] = [await apiProcess(url, 6, 100), await apiProcess(url, 6, 100)];
    const { token } = a.tokens.create({ name: 'ops', role: 'admin' });
    const other = a.tokens.create({ name: 'other', role: 'admin' }).token;
    const statuses = [];
    for (let i = 0; i < 4; i++) statuses.push(await a.get(token), await b.get(token));
    expect(statuses).toEqual([200, 200, 200, 200, 200, 200, 429, 429]);
    // Another token has its own allowance.
    expect(await b.get(other)).toBe(200);
    await a.close();
    await b.close();
  });

  it('holds back an address guessing tokens on every process once it has used its allowance on any', async () => {
    const url = await postgres.createDatabase();
    const [a, b] = [await apiProcess(url, 1000, 3), await apiProcess(url, 1000, 3)];
    const { token } = a.tokens.create({ name: 'ops', role: 'admin' });
    expect([await a.get('wt_guess1'), await b.get('wt_guess2'), await a.get('wt_guess3')]).toEqual([401, 401, 401]);
    expect(await b.get('wt_guess4')).toBe(429);
    expect(await a.get('wt_guess5')).toBe(429);
    // A valid token still gets through from the same address.
    expect(await b.get(token)).toBe(200);
    await a.close();
    await b.close();
  });

  it('answers 400, not 500, for a NUL in a filter, which PostgreSQL cannot store or compare', async () => {
    const a = await apiProcess(await postgres.createDatabase(), 1000, 100);
    const { token } = a.tokens.create({ name: 'ops', role: 'admin' });
    expect(await a.get(token, '/api/v1/alerts?subject=A%00B')).toBe(400);
    expect(await a.get(token, '/api/v1/alerts?subject=AB')).toBe(200);
    await a.close();
  });
});

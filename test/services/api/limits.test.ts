// The API's answers to abuse, over real sockets: a client sending its request slowly is cut off,
// a body over the limit refused.
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../../services/api/app.ts';
import { TelemetryReader } from '../../../services/influx/reader.ts';
import { RegistryDb } from '../../../services/registry/db.ts';
import { DeviceStore } from '../../../services/registry/devices.ts';
import { EntityStore } from '../../../services/registry/entity-store.ts';
import { TokenStore } from '../../../services/registry/tokens.ts';
import { alertDeps } from '../../helpers/api.ts';
import { startTestInfluxd, type TestInfluxd } from '../../helpers/influxd.ts';
import { tempDir } from '../../helpers/service.ts';

let influxd: TestInfluxd;

beforeAll(async () => {
  influxd = await startTestInfluxd();
});
afterAll(async () => {
  await influxd?.cleanup();
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

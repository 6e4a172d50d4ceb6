// The requests InfluxStore sends to InfluxDB 2.x and 3.x, recorded by a local HTTP endpoint that
// answers as those servers' documented APIs do. Neither server is packaged for Debian, so this
// checks the protocol choice (version detection, paths, parameters, auth) only; the real-server
// tests run against 1.6.7 (client.test.ts and every integration test).
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { influxSchema } from '../../../services/config/schema.ts';
import { InfluxStore } from '../../../services/influx/client.ts';

interface Recorded {
  method: string;
  url: string;
  authorization: string | undefined;
  body: string;
}

let server: http.Server;
let url: string;
let version = 'v2.7.11';
let pingStatus = 204;
const requests: Recorded[] = [];

beforeAll(async () => {
  server = http.createServer((request, response) => {
    let body = '';
    request.on('data', (chunk: Buffer) => (body += chunk.toString()));
    request.on('end', () => {
      requests.push({ method: request.method!, url: request.url!, authorization: request.headers.authorization, body });
      response.setHeader('X-Influxdb-Version', version);
      if (request.url === '/ping') response.writeHead(pingStatus).end();
      else if (request.url!.startsWith('/api/v2/write')) response.writeHead(204).end();
      else if (request.url === '/query') response.writeHead(200, { 'content-type': 'application/json' }).end('{"results":[{"statement_id":0}]}');
      else response.writeHead(404).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

describe('InfluxStore on 2.x and 3.x', () => {
  it('writes to /api/v2/write with org, bucket, ms precision and the token', async () => {
    const store = new InfluxStore(influxSchema.parse({ url, token: 't0k3n', org: 'suzhou', database: 'waste' }));
    expect(await store.detect()).toEqual({ major: 2, version: 'v2.7.11' });
    await store.write('m,device_id=a v=1 1000\n');
    const write = requests.find((r) => r.url.startsWith('/api/v2/write'))!;
    expect(write).toEqual({ method: 'POST', url: '/api/v2/write?org=suzhou&bucket=waste&precision=ms', authorization: 'Token t0k3n', body: 'm,device_id=a v=1 1000\n' });
  });

  it('queries InfluxQL on /query (v1 compatibility API) with bound parameters', async () => {
    const store = new InfluxStore(influxSchema.parse({ url, token: 't0k3n' }));
    await store.query('SELECT * FROM m WHERE device_id = $id', { id: "x' OR 1=1" });
    const query = requests.filter((r) => r.url === '/query').at(-1)!;
    const form = new URLSearchParams(query.body);
    expect(query.authorization).toBe('Token t0k3n');
    expect(form.get('q')).toBe('SELECT * FROM m WHERE device_id = $id');
    expect(JSON.parse(form.get('params')!)).toEqual({ id: "x' OR 1=1" });
    expect(form.get('db')).toBe('waste');
  });

  it('recognises 3.x even when /ping wants a token', async () => {
    version = '3.2.0';
    pingStatus = 401;
    const store = new InfluxStore(influxSchema.parse({ url }));
    expect((await store.detect()).major).toBe(3);
    await store.write('m v=1 1\n');
    expect(requests.at(-1)!.url).toBe('/api/v2/write?org=waste&bucket=waste&precision=ms');
  });
});

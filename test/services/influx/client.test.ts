// Against a real influxd (Debian 1.6.7): version detection, database creation, writes, and queries
// whose parameters are bound, never pasted into the query text.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { quoteIdentifier } from '../../../services/influx/client.ts';
import { startTestInfluxd, type TestInfluxd } from '../../helpers/influxd.ts';

let influxd: TestInfluxd;
beforeAll(async () => {
  influxd = await startTestInfluxd();
});
afterAll(async () => {
  await influxd?.cleanup();
});

describe('InfluxStore on InfluxDB 1.x', () => {
  it('detects 1.x from /ping and creates the database on the first write', async () => {
    const store = influxd.store('fresh_db');
    expect((await store.detect()).major).toBe(1);
    await store.write('m,device_id=a v=1 1714521600000\n');
    const series = await store.query('SELECT v, device_id FROM m');
    expect(series[0]!.values).toEqual([[1714521600000, 1, 'a']]);
  });

  it('binds parameters, so injection attempts are only ever values', async () => {
    const store = influxd.store();
    await store.ensureDatabase();
    await store.write(['m,device_id=ok v=1 1000', 'm,device_id=other v=2 2000'].join('\n') + '\n');
    const attempts = [`ok' OR device_id =~ /.*/ --`, `ok"; DROP DATABASE "waste`, `x' ; DROP MEASUREMENT m; SELECT * FROM m WHERE device_id='ok`];
    for (const attempt of attempts) {
      expect(await store.query('SELECT v FROM m WHERE device_id = $id', { id: attempt })).toEqual([]);
    }
    const ok = await store.query('SELECT v FROM m WHERE device_id = $id', { id: 'ok' });
    expect(ok[0]!.values).toEqual([[1000, 1]]);
    expect((await store.query('SHOW DATABASES'))[0]!.values.flat()).toContain('waste');
  });

  it('quotes identifiers so a name cannot close the quote', () => {
    expect(quoteIdentifier('waste')).toBe('"waste"');
    expect(quoteIdentifier('a"b\\')).toBe('"a\\"b\\\\"');
  });

  it('reports a 400 for a bad line as not retryable, and an unreachable server as retryable', async () => {
    const { isRetryableWriteError, InfluxStore } = await import('../../../services/influx/client.ts');
    const { influxSchema } = await import('../../../services/config/schema.ts');
    const store = influxd.store();
    const bad = await store.write('m v=\n').catch((error: unknown) => error);
    expect(isRetryableWriteError(bad)).toBe(false);
    const down = new InfluxStore(influxSchema.parse({ url: 'http://127.0.0.1:1', timeoutMs: 1000 }));
    const unreachable = await down.write('m v=1 1\n').catch((error: unknown) => error);
    expect(unreachable).toBeInstanceOf(Error);
    expect(isRetryableWriteError(unreachable)).toBe(true);
  });

  it('writes a Buffer view as it is, and gives up on a server that never answers after timeoutMs', async () => {
    const { InfluxStore, isRetryableWriteError } = await import('../../../services/influx/client.ts');
    const { influxSchema } = await import('../../../services/config/schema.ts');
    const store = influxd.store('buffer_db');
    const backing = Buffer.from('garbage\nm,device_id=b v=7 1714521600000\ngarbage');
    await store.write(backing.subarray(8, backing.length - 7));
    expect((await store.query('SELECT v FROM m'))[0]!.values).toEqual([[1714521600000, 7]]);

    // Answers /ping as InfluxDB 1.6.7 does, then never answers a write.
    const silent = http.createServer((req, res) => {
      if (req.url === '/ping') res.writeHead(204, { 'X-Influxdb-Version': '1.6.7' }).end();
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = silent.address() as AddressInfo;
      const hung = new InfluxStore(influxSchema.parse({ url: `http://127.0.0.1:${port}`, timeoutMs: 300 }));
      const started = Date.now();
      const error = await hung.write(Buffer.from('m v=1 1\n')).catch((e: unknown) => e);
      expect(String(error)).toMatch(/did not answer within 300 ms/);
      expect(isRetryableWriteError(error)).toBe(true);
      expect(Date.now() - started).toBeLessThan(3000);
    } finally {
      silent.closeAllConnections();
      silent.close();
    }
  });
});

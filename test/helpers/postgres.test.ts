// The throwaway PostgreSQL helper: databases of one cluster are apart, and kill()/restart() is a crash and a recovery.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestPostgres, type TestPostgres } from './postgres.ts';

async function query(url: string, sql: string): Promise<pg.QueryResult> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000 });
  await client.connect();
  try {
    return await client.query(sql);
  } finally {
    await client.end();
  }
}

describe('startTestPostgres', () => {
  let server: TestPostgres;
  beforeAll(async () => {
    server = await startTestPostgres();
  });
  afterAll(async () => {
    await server?.cleanup();
  });

  it('gives separate databases in one cluster', async () => {
    expect(server.url).toBe(`postgres://waste@127.0.0.1:${server.port}/postgres`);
    const first = await server.createDatabase();
    const second = await server.createDatabase('second_db');
    expect(second).toBe(`postgres://waste@127.0.0.1:${server.port}/second_db`);
    expect(first).not.toBe(second);
    for (const url of [first, second]) expect((await query(url, 'SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);

    await query(first, 'CREATE TABLE only_here (id int)');
    const exists = (url: string) => query(url, "SELECT to_regclass('only_here') IS NOT NULL AS found").then((r) => r.rows[0].found as boolean);
    expect(await exists(first)).toBe(true);
    expect(await exists(second)).toBe(false);
  });

  it('is down after kill() and back, with its data, after restart()', async () => {
    const url = await server.createDatabase();
    await query(url, 'CREATE TABLE kept (id int); INSERT INTO kept VALUES (7)');
    await server.kill();
    await expect(query(url, 'SELECT 1')).rejects.toThrow();
    await server.restart();
    expect((await query(url, 'SELECT id FROM kept')).rows).toEqual([{ id: 7 }]);
  });
});

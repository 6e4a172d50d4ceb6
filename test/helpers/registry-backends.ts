// The registry's two backends for tests that must hold on both (db.ts): a SQLite file in a temp
// directory, or a fresh database in a throwaway PostgreSQL cluster (postgres.ts) that one test
// file shares: started before its first test, removed after its last.
//
//   describe.each(BACKENDS)('devices on %s', (backend) => {
//     const location = registryLocations(backend);
//     it('…', async () => { const db = new RegistryDb(await location()).open(); … });
//   });
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll } from 'vitest';
import { ConstraintViolation, type ConstraintKind } from '../../services/registry/db.ts';
import { startTestPostgres, type TestPostgres } from './postgres.ts';
import { tempDir } from './service.ts';

export const BACKENDS = ['sqlite', 'postgres'] as const;
export type Backend = (typeof BACKENDS)[number];

export interface LocationOptions {
  /**
   * PostgreSQL: an ICU collation for the database's text (its ORDER BY and comparisons), as a
   * production server initialised in a language's locale has, instead of the test cluster's C.
   * SQLite compares text as bytes whatever this says.
   */
  icuLocale?: string;
}

/** Registers the cluster's start and removal for a PostgreSQL suite; returns a maker of fresh, empty locations. */
export function registryLocations(backend: Backend): (options?: LocationOptions) => Promise<string> {
  let cluster: TestPostgres | null = null;
  if (backend === 'postgres') {
    beforeAll(async () => {
      cluster = await startTestPostgres();
    });
    afterAll(async () => {
      await cluster?.cleanup();
    });
  }
  return async (options = {}) => {
    if (backend === 'sqlite') return path.join(await tempDir('waste-registry-'), 'registry.db');
    if (!cluster) throw new Error('the PostgreSQL cluster is not started (call registryLocations() in the describe block)');
    if (options.icuLocale === undefined) return cluster.createDatabase();
    // ICU collations of a database need PostgreSQL 15 (CREATE DATABASE … LOCALE_PROVIDER).
    const name = `t_${randomBytes(6).toString('hex')}`;
    const client = new pg.Client({ connectionString: cluster.url });
    await client.connect();
    try {
      await client.query(`CREATE DATABASE ${name} TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE '${options.icuLocale.replace(/'/g, "''")}' LOCALE 'C'`);
    } finally {
      await client.end();
    }
    return cluster.url.replace(/\/postgres$/, `/${name}`);
  };
}

/**
 * The kind of constraint `write` violated: each backend words its refusal its own way (SQLite's
 * "UNIQUE constraint failed: …", PostgreSQL's "duplicate key value violates …"), the kind is the same.
 */
export function violationOf(write: () => unknown): ConstraintKind {
  try {
    write();
  } catch (error) {
    if (error instanceof ConstraintViolation) return error.kind;
    throw error;
  }
  throw new Error('the write was not refused');
}

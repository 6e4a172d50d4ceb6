// The registry's two backends for tests that must hold on both (db.ts): a SQLite file in a temp
// directory, or a fresh database in a throwaway PostgreSQL cluster (postgres.ts) that one test
// file shares: started before its first test, removed after its last.
//
//   describe.each(BACKENDS)('devices on %s', (backend) => {
//     const location = registryLocations(backend);
//     it('…', async () => { const db = new RegistryDb(await location()).open(); … });
//   });
import path from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { ConstraintViolation, type ConstraintKind } from '../../services/registry/db.ts';
import { startTestPostgres, type TestPostgres } from './postgres.ts';
import { tempDir } from './service.ts';

export const BACKENDS = ['sqlite', 'postgres'] as const;
export type Backend = (typeof BACKENDS)[number];

/** Registers the cluster's start and removal for a PostgreSQL suite; returns a maker of fresh, empty locations. */
export function registryLocations(backend: Backend): () => Promise<string> {
  let cluster: TestPostgres | null = null;
  if (backend === 'postgres') {
    beforeAll(async () => {
      cluster = await startTestPostgres();
    });
    afterAll(async () => {
      await cluster?.cleanup();
    });
  }
  return async () => {
    if (backend === 'sqlite') return path.join(await tempDir('waste-registry-'), 'registry.db');
    if (!cluster) throw new Error('the PostgreSQL cluster is not started (call registryLocations() in the describe block)');
    return cluster.createDatabase();
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

// The city index (the registry in memory) follows changes made through another connection (the
// CLI, say), noticed through the registry revision, and is not rebuilt for writes it does not read
// (alerts). On SQLite and on PostgreSQL (where the revision's triggers fire once a statement).
import { afterEach, describe, expect, it } from 'vitest';
import { CityIndex } from '../../../services/registry/city-index.ts';
import { RegistryDb } from '../../../services/registry/db.ts';
import { ENTITIES } from '../../../services/registry/entities.ts';
import { EntityStore } from '../../../services/registry/entity-store.ts';
import { BACKENDS, registryLocations } from '../../helpers/registry-backends.ts';

const open: RegistryDb[] = [];
afterEach(() => open.splice(0).forEach((db) => db.close()));

function connect(location: string): RegistryDb {
  const db = new RegistryDb(location);
  db.open();
  open.push(db);
  return db;
}

const square = { type: 'Polygon', coordinates: [[[120.5, 31.2], [120.6, 31.2], [120.6, 31.3], [120.5, 31.3], [120.5, 31.2]]] };

describe.each(BACKENDS)('city index on %s', (backend) => {
  const location = registryLocations(backend);

  it('reloads after another connection adds a jurisdiction, and not after unrelated writes', async () => {
    const where = await location();
    const service = connect(where);
    let reloads = 0;
    const index = new CityIndex(service, new EntityStore(service), () => reloads++);
    index.start();
    try {
      expect(index.current.jurisdictionsAt([120.55, 31.25])).toEqual([]);
      const cli = connect(where);
      new EntityStore(cli).create(ENTITIES.jurisdictions, 'GUSU', { name: '姑苏区', enforcement_unit: '姑苏中队', geometry: square, neighbour_ids: [] });
      const deadline = Date.now() + 10_000;
      while (index.current.jurisdictionsAt([120.55, 31.25]).length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      expect(index.current.jurisdictionsAt([120.55, 31.25])).toEqual(['GUSU']);
      const after = reloads;
      cli.statement("INSERT INTO webhooks (id, jurisdiction_id, url, secret, enabled, created_at, updated_at) VALUES ('w1', 'GUSU', 'http://127.0.0.1:9/', 's', 1, 0, 0)").run();
      await new Promise((r) => setTimeout(r, 4500));
      expect(reloads).toBe(after);
    } finally {
      index.stop();
    }
  });

  it('throws away a reload in slices during which the registry changed, instead of publishing half of each', async () => {
    const where = await location();
    const service = connect(where);
    let reloads = 0;
    const index = new CityIndex(service, new EntityStore(service), () => reloads++);
    const cli = new EntityStore(connect(where));
    // Between two of the reload's slices, another connection commits.
    const reading = index.reloadInSlices();
    setImmediate(() => cli.create(ENTITIES.jurisdictions, 'GUSU', { name: '姑苏区', enforcement_unit: '姑苏中队', geometry: square, neighbour_ids: [] }));
    await reading;
    expect(reloads).toBe(0);
    // The next reload reads it whole.
    await index.reloadInSlices();
    expect(reloads).toBe(1);
    expect(index.current.jurisdictionsAt([120.55, 31.25])).toEqual(['GUSU']);
  });
});

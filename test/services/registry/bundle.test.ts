// Bulk import on a real registry database: idempotent, all or nothing, every problem listed.
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { verifySecret } from '../../../services/broker/secrets.ts';
import { BundleError, importBundle } from '../../../services/registry/bundle.ts';
import { RegistryDb } from '../../../services/registry/db.ts';
import { DeviceStore } from '../../../services/registry/devices.ts';
import { ENTITIES } from '../../../services/registry/entities.ts';
import { EntityStore } from '../../../services/registry/entity-store.ts';
import { fromWgs84 } from '../../../services/registry/geometry.ts';
import { tempDir } from '../../helpers/service.ts';

const example = JSON.parse(fs.readFileSync('docs/examples/registry-bundle.json', 'utf8')) as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
const copy = () => structuredClone(example);

let db: RegistryDb;
let deps: { db: RegistryDb; devices: DeviceStore; entities: EntityStore };
beforeEach(async () => {
  db = new RegistryDb(path.join(await tempDir('waste-bundle-'), 'registry.db'));
  db.open();
  deps = { db, devices: new DeviceStore(db), entities: new EntityStore(db) };
});
afterEach(() => db.close());

/** Every row of every registry table, to compare whole states. */
function snapshot(): Record<string, unknown[]> {
  const tables = (db.connection.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name").all() as { name: string }[]).map((t) => t.name);
  return Object.fromEntries(tables.map((t) => [t, db.connection.prepare(`SELECT * FROM ${t} ORDER BY 1, 2`).all()]));
}

describe('importBundle', () => {
  it('imports the documented example, with secrets for the new devices', async () => {
    const report = await importBundle(deps, copy());
    expect(report.counts).toMatchObject({
      devices: { created: 3 }, companies: { created: 1 }, districts: { created: 1 }, jurisdictions: { created: 2 }, communities: { created: 1 },
      sites: { created: 2 }, weighbridges: { created: 1 }, trucks: { created: 1 }, bins: { created: 1 }, permits: { created: 1 },
    });
    expect(report.deviceSecrets.map((d) => d.id).sort()).toEqual(['BIN-SZ-0001', 'GPS-SZ-0001', 'WB-SZ-0001']);
    const gps = report.deviceSecrets.find((d) => d.id === 'GPS-SZ-0001')!;
    expect(await verifySecret(gps.secret, deps.devices.device('GPS-SZ-0001')!.secret_hash)).toBe(true);
    expect(deps.entities.get(ENTITIES.permits, 'permit-2026-0001')).toMatchObject({ truck_ids: ['truck-e12345'], time_windows: [{ from: '21:00', to: '05:00' }] });
  });

  it('changes nothing when the same bundle comes again, and only what changed otherwise', async () => {
    await importBundle(deps, copy());
    const before = snapshot();
    const again = await importBundle(deps, copy());
    expect(Object.values(again.counts).every((c) => c.created === 0 && c.updated === 0)).toBe(true);
    expect(again.deviceSecrets).toEqual([]);
    expect(snapshot()).toEqual(before);

    const changed = copy();
    changed.companies[0].contact = '0512-6111 1111';
    changed.permits[0].status = 'suspended';
    const report = await importBundle(deps, changed);
    expect(report.counts.companies).toEqual({ created: 0, updated: 1, unchanged: 0 });
    expect(report.counts.permits).toEqual({ created: 0, updated: 1, unchanged: 0 });
    expect(report.counts.bins).toEqual({ created: 0, updated: 0, unchanged: 1 });
  });

  it('gives the same registry from a GCJ-02 bundle as from its WGS-84 original, and is idempotent in GCJ-02 too', async () => {
    const gcj = copy();
    gcj.crs = 'GCJ-02';
    for (const name of ['districts', 'jurisdictions', 'communities', 'sites']) for (const item of gcj[name]) item.geometry = fromWgs84(item.geometry, 'GCJ-02');
    for (const bin of gcj.bins) bin.location = fromWgs84(bin.location, 'GCJ-02');
    for (const permit of gcj.permits) permit.route = fromWgs84(permit.route, 'GCJ-02');
    await importBundle(deps, gcj);
    const [lon, lat] = (deps.entities.get(ENTITIES.bins, 'bin-pjl-001-k')!.location as { coordinates: number[] }).coordinates;
    expect(Math.abs(lon! - 120.6312)).toBeLessThan(1e-6);
    expect(Math.abs(lat! - 31.3141)).toBeLessThan(1e-6);
    const second = await importBundle(deps, gcj);
    expect(Object.values(second.counts).every((c) => c.created === 0 && c.updated === 0)).toBe(true);
  });

  it('writes nothing when anything is wrong, and lists every problem with its path', async () => {
    const broken = copy();
    broken.trucks.push({ id: 'truck-2', plate: '苏E·99999', company_id: 'no-such-company', fleet: 'muck', rated_gross_kg: 30000 });
    broken.sites[1].geometry = { type: 'Polygon', coordinates: [[[120.64, 31.4], [120.65, 31.41], [120.65, 31.4], [120.64, 31.41], [120.64, 31.4]]] };
    broken.bins[0].depth_mm = -5;
    broken.devices.push({ id: 'bad/id', class: 'trucks' });
    const error = await importBundle(deps, broken).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BundleError);
    const problems = (error as BundleError).problems.map((p) => `${p.path.join('.')}: ${p.message}`);
    expect(problems).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^devices\.3\.id: /),
        expect.stringMatching(/^bins\.0\.depth_mm: /),
        expect.stringMatching(/^sites\.1\.geometry\.coordinates: geometry: the polygon crosses itself/),
        'trucks.1: company_id: no company no-such-company',
        expect.stringMatching(/^permits\.0: disposal_site_id: no site dump-xiangcheng-02/),
      ]),
    );
    const { schema_migrations: _migrations, registry_revision: revision, ...registry } = snapshot();
    expect(Object.values(registry).every((rows) => rows.length === 0)).toBe(true);
    // The rolled-back rows did not count as changes for the rules either.
    expect(revision).toEqual([{ id: 1, n: 0 }]);
  });

  it('checks without writing on a dry run', async () => {
    const report = await importBundle(deps, copy(), { dryRun: true });
    expect(report).toMatchObject({ dryRun: true, counts: { trucks: { created: 1 } }, deviceSecrets: [] });
    expect(deps.devices.list().total).toBe(0);
    expect(await importBundle(deps, { format: 'something-else', version: 1 }).catch((e: BundleError) => e.problems[0]!.path)).toEqual(['format']);
  });
});

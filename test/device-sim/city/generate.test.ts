import path from 'node:path';
import booleanPointInPolygon from '@turf/boolean-point-in-polygon';
import { describe, expect, it } from 'vitest';
import { generateCity } from '../../../device-sim/city/generate.ts';
import { RoadNetwork } from '../../../device-sim/city/roads.ts';
import { hashSecret, verifySecret } from '../../../services/broker/secrets.ts';
import { importBundle } from '../../../services/registry/bundle.ts';
import { RegistryDb } from '../../../services/registry/db.ts';
import { DeviceStore } from '../../../services/registry/devices.ts';
import { ENTITIES } from '../../../services/registry/entities.ts';
import { EntityStore } from '../../../services/registry/entity-store.ts';
import type { PolygonGeometry } from '../../../services/registry/geometry.ts';
import { tempDir } from '../../helpers/service.ts';

type Item = Record<string, unknown> & { id: string };
const items = (city: ReturnType<typeof generateCity>, name: string) => city.bundle[name] as Item[];

describe('generateCity', () => {
  it('gives the same city for the same seed, and another for another seed', () => {
    expect(generateCity({ seed: 42 })).toEqual(generateCity({ seed: 42 }));
    expect(generateCity({ seed: 43 }).bundle).not.toEqual(generateCity({ seed: 42 }).bundle);
  });

  it('imports into a real registry as it is, mutual neighbours included', async () => {
    const city = generateCity({ seed: 3, trucks: 60, collectionTrucks: 8, bins: 500, constructionSites: 10 });
    // One secret for the whole simulated city, hashed once (as the simulator provisions it).
    const secret_hash = await hashSecret('city-secret');
    for (const device of items(city, 'devices')) device.secret_hash = secret_hash;
    const db = new RegistryDb(path.join(await tempDir('waste-city-'), 'registry.db'));
    db.open();
    try {
      const report = await importBundle({ db, devices: new DeviceStore(db), entities: new EntityStore(db) }, city.bundle);
      expect(report.counts).toMatchObject({ trucks: { created: 68 }, bins: { created: 500 }, permits: { created: 10 }, jurisdictions: { created: 2 } });
      expect(report.counts.devices!.created).toBe(68 + 500 + items(city, 'weighbridges').length);
      expect(report.deviceSecrets).toEqual([]);
      expect(await verifySecret('city-secret', new DeviceStore(db).device('GPS-truck-0001')!.secret_hash)).toBe(true);
      expect(new EntityStore(db).get(ENTITIES.jurisdictions, 'jurisdiction-west')!.neighbour_ids).toEqual(['jurisdiction-east']);
    } finally {
      db.close();
    }
  });

  it('routes every permit along the roads, from inside its site to inside its disposal site', () => {
    const city = generateCity({ seed: 5 });
    const roads = new RoadNetwork(city.roads);
    const nodeAt = new Map(city.roads.nodes.map((n) => [`${n.lon},${n.lat}`, n.id]));
    const sites = new Map(items(city, 'sites').map((s) => [s.id, s]));
    const windows = new Set<string>();
    for (const permit of items(city, 'permits')) {
      const line = (permit.route as { coordinates: [number, number][] }).coordinates;
      // Between the two yards, every vertex is an intersection and every step a road segment.
      const ids = line.slice(1, -1).map(([lon, lat]) => nodeAt.get(`${lon},${lat}`));
      expect(ids.every((id) => id !== undefined)).toBe(true);
      for (let i = 1; i < ids.length; i++) expect(roads.adjacent(ids[i - 1]!, ids[i]!)).toBe(true);
      const inside = (siteId: unknown, point: [number, number]) => booleanPointInPolygon(point, sites.get(siteId as string)!.geometry as PolygonGeometry);
      expect(inside(permit.site_id, line[0]!)).toBe(true);
      expect(inside(permit.disposal_site_id, line.at(-1)!)).toBe(true);
      // The gate leg to the first intersection is short: within a block and a half.
      expect(roads.ruler.distance(line[0]!, line[1]!)).toBeLessThan(750);
      expect(sites.get(permit.site_id as string)!.kind).toBe('construction');
      for (const w of permit.time_windows as { from: string; to: string }[]) windows.add(`${w.from}-${w.to}`);
    }
    expect([...windows].every((w) => ['21:00-05:00', '22:00-06:00', '09:00-16:00'].includes(w))).toBe(true);
  });

  it('leaves one muck truck in twenty without a permit', () => {
    const city = generateCity({ seed: 5, trucks: 40 });
    const permitted = new Set(items(city, 'permits').flatMap((p) => p.truck_ids as string[]));
    const muck = items(city, 'trucks').filter((t) => t.fleet === 'muck');
    expect(muck.filter((t) => !permitted.has(t.id)).map((t) => t.id)).toEqual(['truck-0039', 'truck-0040']);
  });

  it('lays out two neighbouring jurisdictions, four bin categories, and every bin inside its community', () => {
    const city = generateCity({ seed: 9, bins: 800 });
    const jurisdictions = items(city, 'jurisdictions');
    expect(jurisdictions.map((j) => j.neighbour_ids)).toEqual([['jurisdiction-east'], ['jurisdiction-west']]);
    const bins = items(city, 'bins');
    expect(new Set(bins.map((b) => b.category))).toEqual(new Set(['kitchen', 'recyclable', 'hazardous', 'other']));
    const communities = new Map(items(city, 'communities').map((c) => [c.id, c.geometry as PolygonGeometry]));
    for (const bin of bins) {
      expect(booleanPointInPolygon((bin.location as { coordinates: [number, number] }).coordinates, communities.get(bin.community_id as string)!)).toBe(true);
    }
    const kinds = items(city, 'sites').map((s) => s.kind);
    for (const kind of ['construction', 'disposal', 'transfer', 'plant']) expect(kinds).toContain(kind);
    expect(new Set(items(city, 'trucks').map((t) => t.plate)).size).toBe(items(city, 'trucks').length);
  });
});

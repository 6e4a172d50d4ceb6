import path from 'node:path';
import booleanPointInPolygon from '@turf/boolean-point-in-polygon';
import { describe, expect, it } from 'vitest';
import { generateCity } from '../../../device-sim/city/generate.ts';
import { RoadNetwork } from '../../../device-sim/city/roads.ts';
import { cityAuthCode } from '../../../device-sim/city/terminals.ts';
import { writeCity } from '../../../device-sim/run/city-command.ts';
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
      // Trucks are JT/T 808 terminals as well, with the bundle's phone number and model.
      const truckDevice = items(city, 'devices').find((d) => d.id === 'GPS-collector-008')!;
      expect(new DeviceStore(db).device('GPS-collector-008')).toMatchObject({ jt808_phone: truckDevice.jt808_phone, jt808_model: 'WASTE-SIM' });
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

  it('gives every truck a terminal phone number: 11 digits from 1, unique, the same for a truck whatever the size of the city', () => {
    const city = generateCity({ seed: 5, trucks: 40, collectionTrucks: 10 });
    const devices = items(city, 'devices');
    const terminals = devices.filter((d) => d.class === 'trucks');
    expect(terminals).toHaveLength(50);
    const phones = terminals.map((d) => d.jt808_phone as string);
    expect(phones.every((p) => /^1\d{10}$/.test(p))).toBe(true);
    expect(new Set(phones).size).toBe(50);
    expect(terminals.every((d) => d.jt808_model === 'WASTE-SIM')).toBe(true);
    expect(devices.filter((d) => d.class !== 'trucks').some((d) => 'jt808_phone' in d)).toBe(false);
    // A smaller city of the same seed gives its trucks the same numbers (imported into the same
    // registry, no number moves to another truck); another seed, other numbers.
    const phoneOf = (c: ReturnType<typeof generateCity>) => new Map(items(c, 'devices').map((d) => [d.id, d.jt808_phone]));
    const small = phoneOf(generateCity({ seed: 5, trucks: 12, collectionTrucks: 4 }));
    const large = phoneOf(city);
    for (const id of ['GPS-truck-0001', 'GPS-truck-0012', 'GPS-collector-001', 'GPS-collector-004']) expect(small.get(id)).toBe(large.get(id));
    expect(phoneOf(generateCity({ seed: 6 })).get('GPS-truck-0001')).not.toBe(large.get('GPS-truck-0001'));
  });

  it('provisions the trucks\' terminals with the hash of the city\'s authentication code, derived from its secret', async () => {
    const { city, secret } = await writeCity({ seed: 8, trucks: 3, collectionTrucks: 1, bins: 4, constructionSites: 1 }, await tempDir('waste-city-files-'), 'city-secret-8');
    expect(secret).toBe('city-secret-8');
    const devices = items(city, 'devices');
    const hashes = [...new Set(devices.filter((d) => d.class === 'trucks').map((d) => d.jt808_auth_code_hash as string))];
    expect(hashes).toHaveLength(1);
    const hash = hashes[0]!;
    expect(await verifySecret(cityAuthCode(secret), hash)).toBe(true);
    expect(await verifySecret(secret, hash)).toBe(false);
    expect(cityAuthCode(secret)).toMatch(/^[\x21-\x7e]{24}$/);
    expect(devices.filter((d) => d.class !== 'trucks').some((d) => 'jt808_auth_code_hash' in d)).toBe(false);
  });
});

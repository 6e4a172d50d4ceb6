// Speed zones from a GeoJSON file: the zone's limit inside it, the lowest where zones overlap, the
// general limit elsewhere; a broken file stops the boot with its name.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadSpeedZones } from '../../../services/rules/speed-zones.ts';
import { tempDir } from '../../helpers/service.ts';

const zone = (limit: number, west: number, east: number) => ({
  type: 'Feature',
  properties: { limit_kmh: limit, name: `zone ${limit}` },
  geometry: { type: 'Polygon', coordinates: [[[west, 31.2], [east, 31.2], [east, 31.4], [west, 31.4], [west, 31.2]]] },
});

describe('speed zones', () => {
  it('gives the limit of the zone a position is in, the lowest of overlapping zones, the general one elsewhere', async () => {
    const file = path.join(await tempDir('waste-zones-'), 'zones.geojson');
    fs.writeFileSync(file, JSON.stringify({ type: 'FeatureCollection', features: [zone(40, 120.5, 120.6), zone(30, 120.58, 120.62)] }));
    const limitAt = loadSpeedZones(file, 60);
    expect(limitAt([120.55, 31.3])).toBe(40);
    expect(limitAt([120.59, 31.3])).toBe(30);
    expect(limitAt([120.61, 31.3])).toBe(30);
    expect(limitAt([120.65, 31.3])).toBe(60);
    expect(loadSpeedZones('', 55)([120.55, 31.3])).toBe(55);
  });

  it('refuses a file that is not a collection of zones, naming it', async () => {
    const file = path.join(await tempDir('waste-zones-'), 'zones.geojson');
    fs.writeFileSync(file, JSON.stringify({ type: 'FeatureCollection', features: [{ type: 'Feature', properties: {}, geometry: zone(1, 0, 1).geometry }] }));
    expect(() => loadSpeedZones(file, 60)).toThrow(/zones.geojson \(rules.speedZonesFile\).*limit_kmh/s);
  });
});

// Speed zones from a GeoJSON file (rules.speedZonesFile): Polygon or MultiPolygon features with a
// numeric `properties.limit_kmh`. Where zones overlap, the lowest limit applies.
import fs from 'node:fs';
import { z } from 'zod';
import { AreaIndex, type LonLat } from '../geo.ts';
import type { MultiPolygonGeometry, PolygonGeometry } from '../registry/geometry.ts';

const zoneFile = z.object({
  type: z.literal('FeatureCollection'),
  features: z.array(
    z.object({
      type: z.literal('Feature'),
      properties: z.object({ limit_kmh: z.number().positive(), name: z.string().optional() }),
      geometry: z.object({ type: z.enum(['Polygon', 'MultiPolygon']), coordinates: z.array(z.any()) }),
    }),
  ),
});

export type SpeedLimitAt = (position: LonLat) => number;

export function loadSpeedZones(file: string, generalLimitKmh: number): SpeedLimitAt {
  if (!file) return () => generalLimitKmh;
  let parsed;
  try {
    parsed = zoneFile.parse(JSON.parse(fs.readFileSync(file, 'utf8')));
  } catch (error) {
    throw new Error(`speed zones file ${file} (rules.speedZonesFile): ${(error as Error).message}`, { cause: error });
  }
  const index = new AreaIndex(parsed.features.map((f) => ({ value: f.properties.limit_kmh, geometry: f.geometry as PolygonGeometry | MultiPolygonGeometry })));
  return (position) => {
    const limits = index.at(position);
    return limits.length === 0 ? generalLimitKmh : Math.min(...limits);
  };
}

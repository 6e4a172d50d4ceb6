// Geometry of the registry: GeoJSON (RFC 7946) in and out, stored in WGS-84. Map tools used in
// China (Amap/高德, Tencent/腾讯) draw in GCJ-02, so an import may say `crs: "GCJ-02"` and is
// converted (gcoord); Baidu's BD-09 is accepted the same way. Invalid geometry is refused with the
// reason and the position of the problem, never stored.
import kinks from '@turf/kinks';
import gcoordModule from 'gcoord';

// gcoord ships CommonJS with ES-module typings: at run time the default import is the API itself.
const gcoord = gcoordModule as unknown as (typeof gcoordModule)['default'];

export const SOURCE_CRS = ['WGS-84', 'GCJ-02', 'BD-09'] as const;
export type SourceCrs = (typeof SOURCE_CRS)[number];

export type Position = [number, number];
export interface PointGeometry {
  type: 'Point';
  coordinates: Position;
}
export interface LineStringGeometry {
  type: 'LineString';
  coordinates: Position[];
}
export interface PolygonGeometry {
  type: 'Polygon';
  coordinates: Position[][];
}
export interface MultiPolygonGeometry {
  type: 'MultiPolygon';
  coordinates: Position[][][];
}
export type Geometry = PointGeometry | LineStringGeometry | PolygonGeometry | MultiPolygonGeometry;
export type GeometryType = Geometry['type'];

export class GeometryError extends Error {
  constructor(
    message: string,
    /** Path inside the geometry, e.g. ['coordinates', 0, 3]. */
    readonly path: (string | number)[] = [],
  ) {
    super(message);
  }
}

const GCOORD_CRS = { 'WGS-84': gcoord.WGS84, 'GCJ-02': gcoord.GCJ02, 'BD-09': gcoord.BD09 } as const;

function checkPosition(value: unknown, path: (string | number)[]): Position {
  if (!Array.isArray(value) || value.length < 2 || typeof value[0] !== 'number' || typeof value[1] !== 'number') {
    throw new GeometryError('a position must be [longitude, latitude]', path);
  }
  const [lon, lat] = value as number[];
  if (!Number.isFinite(lon) || lon! < -180 || lon! > 180) throw new GeometryError(`longitude ${lon} is outside -180..180`, path);
  if (!Number.isFinite(lat) || lat! < -90 || lat! > 90) throw new GeometryError(`latitude ${lat} is outside -90..90 (is it [lon, lat]?)`, path);
  return [lon!, lat!];
}

function checkLine(value: unknown, path: (string | number)[]): Position[] {
  if (!Array.isArray(value)) throw new GeometryError('a line must be an array of positions', path);
  const line = value.map((p, i) => checkPosition(p, [...path, i]));
  const distinct = new Set(line.map(([x, y]) => `${x},${y}`));
  if (distinct.size < 2) throw new GeometryError('a line needs at least two distinct positions', path);
  return line;
}

function checkRing(value: unknown, path: (string | number)[]): Position[] {
  const ring = checkLine(value, path);
  const first = ring[0]!;
  const last = ring.at(-1)!;
  if (first[0] !== last[0] || first[1] !== last[1]) throw new GeometryError('a polygon ring must end where it starts', path);
  if (ring.length < 4) throw new GeometryError('a polygon ring needs at least four positions (three corners and the closing one)', path);
  return ring;
}

function checkPolygon(value: unknown, path: (string | number)[]): Position[][] {
  if (!Array.isArray(value) || value.length === 0) throw new GeometryError('a polygon must be an array of rings', path);
  const rings = value.map((ring, i) => checkRing(ring, [...path, i]));
  const crossings = kinks({ type: 'Polygon', coordinates: rings });
  if (crossings.features.length > 0) {
    const [x, y] = crossings.features[0]!.geometry.coordinates;
    throw new GeometryError(`the polygon crosses itself near [${x}, ${y}]`, path);
  }
  return rings;
}

/**
 * Checks a GeoJSON geometry of one of the allowed types; returns it with only its own members. A
 * GeoJSON Feature is taken for its geometry (files exported from GIS tools are Features).
 */
export function checkGeometry(value: unknown, allowed: readonly GeometryType[]): Geometry {
  if (typeof value !== 'object' || value === null) throw new GeometryError('geometry must be a GeoJSON object');
  if ((value as { type?: unknown }).type === 'Feature') return checkGeometry((value as { geometry?: unknown }).geometry, allowed);
  const { type, coordinates } = value as { type?: unknown; coordinates?: unknown };
  if (typeof type !== 'string' || !(allowed as readonly string[]).includes(type)) {
    throw new GeometryError(`geometry type must be ${allowed.join(' or ')}, got ${JSON.stringify(type)}`, ['type']);
  }
  switch (type as GeometryType) {
    case 'Point':
      return { type: 'Point', coordinates: checkPosition(coordinates, ['coordinates']) };
    case 'LineString':
      return { type: 'LineString', coordinates: checkLine(coordinates, ['coordinates']) };
    case 'Polygon':
      return { type: 'Polygon', coordinates: checkPolygon(coordinates, ['coordinates']) };
    case 'MultiPolygon':
      if (!Array.isArray(coordinates) || coordinates.length === 0) throw new GeometryError('a multipolygon must be an array of polygons', ['coordinates']);
      return { type: 'MultiPolygon', coordinates: coordinates.map((p, i) => checkPolygon(p, ['coordinates', i])) };
  }
}

/** Converts a checked geometry from `crs` to WGS-84 (a copy; WGS-84 input is returned as is). */
export function toWgs84<G extends Geometry>(geometry: G, crs: SourceCrs): G {
  if (crs === 'WGS-84') return geometry;
  return gcoord.transform(structuredClone(geometry) as never, GCOORD_CRS[crs], gcoord.WGS84) as unknown as G;
}

/** Converts a WGS-84 geometry for a map that draws in `crs` (export to Amap, Tencent or Baidu). */
export function fromWgs84<G extends Geometry>(geometry: G, crs: SourceCrs): G {
  if (crs === 'WGS-84') return geometry;
  return gcoord.transform(structuredClone(geometry) as never, gcoord.WGS84, GCOORD_CRS[crs]) as unknown as G;
}

/** Checks a geometry given in `crs` and returns it in WGS-84, re-checked after conversion. */
export function importGeometry(value: unknown, allowed: readonly GeometryType[], crs: SourceCrs = 'WGS-84'): Geometry {
  const checked = checkGeometry(value, allowed);
  return crs === 'WGS-84' ? checked : checkGeometry(toWgs84(checked, crs), allowed);
}

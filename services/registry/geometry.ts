// Geometry of the registry: GeoJSON (RFC 7946) in and out, stored in WGS-84. Map tools used in
// China (Amap/高德, Tencent/腾讯) draw in GCJ-02, so an import may say `crs: "GCJ-02"` and is
// converted (gcoord); Baidu's BD-09 is accepted the same way. Invalid geometry is refused with the
// reason and the position of the problem, never stored. What one geometry may cost is bounded: its
// positions are counted before anything else (maxVertices), and the self-crossing check compares
// only segments whose boxes overlap, found through an R-tree (flatbush), instead of every pair.
import Flatbush from 'flatbush';
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

export interface GeometryOptions {
  /** Most positions in the geometry (all rings, all polygons); more is refused before any is checked. */
  maxVertices?: number;
}

/** Positions of a geometry's coordinates, counted from the array lengths alone (nothing is checked). */
function countPositions(type: GeometryType, coordinates: unknown): number {
  const length = (value: unknown): number => (Array.isArray(value) ? value.length : 0);
  const sum = (value: unknown, each: (item: unknown) => number): number => {
    if (!Array.isArray(value)) return 0;
    let total = 0;
    for (const item of value) total += each(item);
    return total;
  };
  switch (type) {
    case 'Point':
      return 1;
    case 'LineString':
      return length(coordinates);
    case 'Polygon':
      return sum(coordinates, length);
    case 'MultiPolygon':
      return sum(coordinates, (polygon) => sum(polygon, length));
  }
}

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
  const [x0, y0] = line[0] ?? [];
  if (!line.some(([x, y]) => x !== x0 || y !== y0)) throw new GeometryError('a line needs at least two distinct positions', path);
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

/** Where segments p1-p2 and q1-q2 meet (ends included), or null; parallel segments never meet. */
function segmentsMeet(p1: Position, p2: Position, q1: Position, q2: Position): Position | null {
  // The arithmetic of @turf/kinks's lineIntersects, which this check replaces, so that what was
  // accepted before is accepted now.
  const denominator = (q2[1] - q1[1]) * (p2[0] - p1[0]) - (q2[0] - q1[0]) * (p2[1] - p1[1]);
  if (denominator === 0) return null;
  const dy = p1[1] - q1[1];
  const dx = p1[0] - q1[0];
  const a = ((q2[0] - q1[0]) * dy - (q2[1] - q1[1]) * dx) / denominator;
  const b = ((p2[0] - p1[0]) * dy - (p2[1] - p1[1]) * dx) / denominator;
  if (a < 0 || a > 1 || b < 0 || b > 1) return null;
  return [p1[0] + a * (p2[0] - p1[0]), p1[1] + a * (p2[1] - p1[1])];
}

/**
 * Segment boxes an R-tree search may visit per segment of a polygon, beyond a fixed allowance
 * that lets every polygon of up to about 140 positions be checked whatever its shape. A drawn
 * boundary visits about 3 per segment (itself and its two neighbours); only shapes of many long
 * segments lying across one another (a comb of 5,000 teeth: 50 million visits, 2.3 s) come near.
 */
const VISITS_PER_SEGMENT = 32;
const VISITS_ALLOWANCE = 10_000;

/**
 * Work of the last selfCrossing() call: boxes visited and segment pairs tested. Kept so that tests
 * can bound the check's work by counting it rather than timing it.
 */
export const crossingWork = { visits: 0, pairsTested: 0 };

class TooIntricate extends Error {}

/**
 * The first place where two segments of the rings meet, other than neighbours in one ring
 * sharing their corner (the first and last segment of a ring included), or null. The same pairs
 * and arithmetic as @turf/kinks, which this replaces: kinks tests all n²/2 pairs (a ring of 20,000
 * positions: 2.2 s); here only pairs whose bounding boxes overlap are looked at, found through a
 * packed R-tree, so a drawn boundary costs O(n log n). The boxes visited are counted, and a shape
 * that would need more than VISITS_PER_SEGMENT per segment is refused as too intricate to check
 * instead of being checked in quadratic time.
 */
export function selfCrossing(rings: Position[][]): Position | null {
  const segments: { ring: number; index: number; last: number }[] = [];
  for (const [r, ring] of rings.entries()) for (let i = 0; i < ring.length - 1; i++) segments.push({ ring: r, index: i, last: ring.length - 2 });
  crossingWork.visits = 0;
  crossingWork.pairsTested = 0;
  if (segments.length === 0) return null;
  const budget = VISITS_ALLOWANCE + VISITS_PER_SEGMENT * segments.length;
  const index = new Flatbush(segments.length);
  for (const { ring, index: i } of segments) {
    const [a, b] = [rings[ring]![i]!, rings[ring]![i + 1]!];
    index.add(Math.min(a[0], b[0]), Math.min(a[1], b[1]), Math.max(a[0], b[0]), Math.max(a[1], b[1]));
  }
  index.finish();
  for (let s = 0; s < segments.length; s++) {
    const { ring, index: i, last } = segments[s]!;
    const [p1, p2] = [rings[ring]![i]!, rings[ring]![i + 1]!];
    let first = -1;
    let where: Position | null = null;
    index.search(Math.min(p1[0], p2[0]), Math.min(p1[1], p2[1]), Math.max(p1[0], p2[0]), Math.max(p1[1], p2[1]), (t) => {
      // flatbush cannot stop a search; throwing is the way out once the budget is spent.
      if (++crossingWork.visits > budget) throw new TooIntricate();
      // Each pair once (t after s), and of the crossings of s the one earliest in the rings.
      if (t <= s || (first >= 0 && t > first)) return false;
      const other = segments[t]!;
      if (other.ring === ring && (other.index - i === 1 || (i === 0 && other.index === last))) return false;
      crossingWork.pairsTested++;
      const meet = segmentsMeet(p1, p2, rings[other.ring]![other.index]!, rings[other.ring]![other.index + 1]!);
      if (meet) {
        first = t;
        where = meet;
      }
      return false;
    });
    if (where) return where;
  }
  return null;
}

function checkPolygon(value: unknown, path: (string | number)[]): Position[][] {
  if (!Array.isArray(value) || value.length === 0) throw new GeometryError('a polygon must be an array of rings', path);
  const rings = value.map((ring, i) => checkRing(ring, [...path, i]));
  let crossing: Position | null;
  try {
    crossing = selfCrossing(rings);
  } catch (error) {
    if (!(error instanceof TooIntricate)) throw error;
    throw new GeometryError('the polygon is too intricate to check for self-crossings (many of its segments lie across one another); simplify it before sending', path);
  }
  if (crossing) throw new GeometryError(`the polygon crosses itself near [${crossing[0]}, ${crossing[1]}]`, path);
  return rings;
}

/**
 * Checks a GeoJSON geometry of one of the allowed types; returns it with only its own members. A
 * GeoJSON Feature is taken for its geometry (files exported from GIS tools are Features).
 */
export function checkGeometry(value: unknown, allowed: readonly GeometryType[], options: GeometryOptions = {}): Geometry {
  if (typeof value !== 'object' || value === null) throw new GeometryError('geometry must be a GeoJSON object');
  if ((value as { type?: unknown }).type === 'Feature') {
    // One level only: a Feature's geometry is a geometry (RFC 7946 §3.2), and a Feature nested in
    // a Feature 20,000 deep once overflowed the stack (a 500 instead of a 400).
    const geometry = (value as { geometry?: unknown }).geometry;
    if ((geometry as { type?: unknown } | null)?.type === 'Feature') throw new GeometryError('a Feature\'s geometry must be a geometry, not another Feature (RFC 7946 §3.2)', ['geometry']);
    return checkGeometry(geometry, allowed, options);
  }
  const { type, coordinates } = value as { type?: unknown; coordinates?: unknown };
  if (typeof type !== 'string' || !(allowed as readonly string[]).includes(type)) {
    throw new GeometryError(`geometry type must be ${allowed.join(' or ')}, got ${JSON.stringify(type).slice(0, 50)}`, ['type']);
  }
  const max = options.maxVertices ?? Infinity;
  const positions = countPositions(type as GeometryType, coordinates);
  if (positions > max) {
    throw new GeometryError(
      `the ${type} has ${positions} positions, more than the ${max} accepted (registry.maxGeometryVertices); simplify it before sending (e.g. Douglas-Peucker with a 1 m tolerance: mapshaper -simplify, QGIS Simplify)`,
      ['coordinates'],
    );
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
export function importGeometry(value: unknown, allowed: readonly GeometryType[], crs: SourceCrs = 'WGS-84', options: GeometryOptions = {}): Geometry {
  const checked = checkGeometry(value, allowed, options);
  return crs === 'WGS-84' ? checked : checkGeometry(toWgs84(checked, crs), allowed, options);
}

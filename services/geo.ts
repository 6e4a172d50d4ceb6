// Geometry at city scale, shared by the city index (registry/city-index.ts: jurisdictions, sites
// and permit routes indexed by place) and the rules that measure fixes against them: distances
// with cheap-ruler's planar approximation (about a thousandth of the cost of a geodesic
// computation, and within 0.1 % below 500 km), areas found through a packed R-tree (flatbush) and
// confirmed with turf's point-in-polygon test.
import booleanPointInPolygon from '@turf/boolean-point-in-polygon';
import CheapRuler from 'cheap-ruler';
import Flatbush from 'flatbush';
import type { LonLat } from './contract/findings.ts';
import type { LineStringGeometry, MultiPolygonGeometry, PolygonGeometry } from './registry/geometry.ts';

export type { LonLat } from './contract/findings.ts';

const rulers = new Map<number, CheapRuler>();

/** A ruler for latitudes within 0.1° of `lat` (its error grows with the distance from it). */
export function rulerAt(lat: number): CheapRuler {
  const key = Math.round(lat * 10);
  let ruler = rulers.get(key);
  if (!ruler) {
    ruler = new CheapRuler(key / 10, 'meters');
    rulers.set(key, ruler);
  }
  return ruler;
}

export function distanceM(a: LonLat, b: LonLat): number {
  return rulerAt(a[1]).distance(a, b);
}

/** Segments of a route per chunk; each chunk has a bounding box, so a fix is measured against the few chunks near it. */
const CHUNK_SEGMENTS = 16;

/**
 * A permit's route: the distance from a fix to the nearest point of the line. The vertices are kept
 * in cheap-ruler's plane (x = lon·kx, y = lat·ky, metres), the same approximation as distanceM, in
 * flat arrays; chunks of segments whose bounding box lies further than the best distance found so
 * far are skipped. A fix is compared with one or two chunks instead of every segment.
 */
export class Route {
  readonly coordinates: LonLat[];
  private readonly kx: number;
  private readonly ky: number;
  /** Vertices in the plane: x0, y0, x1, y1, ... */
  private readonly xy: Float64Array;
  /** Per chunk of CHUNK_SEGMENTS segments: minX, minY, maxX, maxY. */
  private readonly boxes: Float64Array;
  /** Scratch: each chunk's distance to the fix being measured (squared). */
  private readonly chunkDistances: Float64Array;

  constructor(line: LineStringGeometry) {
    this.coordinates = line.coordinates.map(([lon, lat]) => [lon, lat]);
    const ruler = rulerAt(this.coordinates[0]![1]);
    this.kx = ruler.kx;
    this.ky = ruler.ky;
    // A one-point route is a segment of length 0.
    const vertices = this.coordinates.length === 1 ? [this.coordinates[0]!, this.coordinates[0]!] : this.coordinates;
    const n = vertices.length;
    this.xy = new Float64Array(2 * n);
    vertices.forEach(([lon, lat], i) => {
      this.xy[2 * i] = lon * this.kx;
      this.xy[2 * i + 1] = lat * this.ky;
    });
    const chunks = Math.max(1, Math.ceil((n - 1) / CHUNK_SEGMENTS));
    this.boxes = new Float64Array(4 * chunks);
    this.chunkDistances = new Float64Array(chunks);
    for (let c = 0; c < chunks; c++) {
      let [minX, minY, maxX, maxY] = [Infinity, Infinity, -Infinity, -Infinity];
      for (let v = c * CHUNK_SEGMENTS; v <= Math.min(n - 1, (c + 1) * CHUNK_SEGMENTS); v++) {
        minX = Math.min(minX, this.xy[2 * v]!);
        maxX = Math.max(maxX, this.xy[2 * v]!);
        minY = Math.min(minY, this.xy[2 * v + 1]!);
        maxY = Math.max(maxY, this.xy[2 * v + 1]!);
      }
      this.boxes.set([minX, minY, maxX, maxY], 4 * c);
    }
  }

  distanceTo(p: LonLat): number {
    const px = p[0] * this.kx;
    const py = p[1] * this.ky;
    const { boxes, chunkDistances } = this;
    const chunks = chunkDistances.length;
    for (let c = 0; c < chunks; c++) {
      const dx = Math.max(boxes[4 * c]! - px, 0, px - boxes[4 * c + 2]!);
      const dy = Math.max(boxes[4 * c + 1]! - py, 0, py - boxes[4 * c + 3]!);
      chunkDistances[c] = dx * dx + dy * dy;
    }
    // Nearest box first: what it holds usually rules out every other chunk.
    let best = Infinity;
    for (;;) {
      let next = -1;
      for (let c = 0; c < chunks; c++) if (chunkDistances[c]! < best && (next < 0 || chunkDistances[c]! < chunkDistances[next]!)) next = c;
      if (next < 0) break;
      chunkDistances[next] = Infinity;
      best = Math.min(best, this.chunkDistanceSq(next, px, py));
    }
    return Math.sqrt(best);
  }

  /**
   * How far along the route (metres from its start) the point nearest to p lies. A plain scan of
   * every segment: rules ask it only where a stretch begins or ends, not on every fix.
   */
  alongM(p: LonLat): number {
    const px = p[0] * this.kx;
    const py = p[1] * this.ky;
    const { xy } = this;
    let best = Infinity;
    let bestAlong = 0;
    let start = 0;
    for (let v = 0; v < xy.length / 2 - 1; v++) {
      const ax = xy[2 * v]!;
      const ay = xy[2 * v + 1]!;
      const sx = xy[2 * v + 2]! - ax;
      const sy = xy[2 * v + 3]! - ay;
      const length = sx * sx + sy * sy;
      const t = length === 0 ? 0 : Math.max(0, Math.min(1, ((px - ax) * sx + (py - ay) * sy) / length));
      const dx = px - (ax + t * sx);
      const dy = py - (ay + t * sy);
      if (dx * dx + dy * dy < best) {
        best = dx * dx + dy * dy;
        bestAlong = start + t * Math.sqrt(length);
      }
      start += Math.sqrt(length);
    }
    return bestAlong;
  }

  /** Squared distance from (px, py) to the nearest segment of a chunk. */
  private chunkDistanceSq(chunk: number, px: number, py: number): number {
    const { xy } = this;
    const last = Math.min(xy.length / 2 - 1, (chunk + 1) * CHUNK_SEGMENTS);
    let best = Infinity;
    for (let v = chunk * CHUNK_SEGMENTS; v < last; v++) {
      const ax = xy[2 * v]!;
      const ay = xy[2 * v + 1]!;
      const bx = xy[2 * v + 2]!;
      const by = xy[2 * v + 3]!;
      const sx = bx - ax;
      const sy = by - ay;
      const length = sx * sx + sy * sy;
      const t = length === 0 ? 0 : Math.max(0, Math.min(1, ((px - ax) * sx + (py - ay) * sy) / length));
      const dx = px - (ax + t * sx);
      const dy = py - (ay + t * sy);
      best = Math.min(best, dx * dx + dy * dy);
    }
    return best;
  }
}

export interface Area<T> {
  value: T;
  geometry: PolygonGeometry | MultiPolygonGeometry;
}

/** Polygons indexed by their bounding boxes. */
export class AreaIndex<T> {
  private readonly index: Flatbush | null;

  constructor(private readonly areas: Area<T>[]) {
    if (areas.length === 0) {
      this.index = null;
      return;
    }
    this.index = new Flatbush(areas.length);
    for (const area of areas) {
      const rings = area.geometry.type === 'Polygon' ? area.geometry.coordinates : area.geometry.coordinates.flat();
      let [minX, minY, maxX, maxY] = [Infinity, Infinity, -Infinity, -Infinity];
      for (const ring of rings) {
        for (const [x, y] of ring) {
          minX = Math.min(minX, x);
          minY = Math.min(minY, y);
          maxX = Math.max(maxX, x);
          maxY = Math.max(maxY, y);
        }
      }
      this.index.add(minX, minY, maxX, maxY);
    }
    this.index.finish();
  }

  /** The values of the areas holding p, or within `toleranceM` of their boundary. */
  at(p: LonLat, toleranceM = 0): T[] {
    if (!this.index) return [];
    const ruler = rulerAt(p[1]);
    const [dx, dy] = toleranceM > 0 ? [toleranceM / ruler.kx, toleranceM / ruler.ky] : [0, 0];
    const found: T[] = [];
    for (const i of this.index.search(p[0] - dx, p[1] - dy, p[0] + dx, p[1] + dy)) {
      const area = this.areas[i]!;
      if (booleanPointInPolygon(p, area.geometry) || (toleranceM > 0 && boundaryDistance(ruler, area.geometry, p) <= toleranceM)) found.push(area.value);
    }
    return found;
  }
}

function boundaryDistance(ruler: CheapRuler, geometry: PolygonGeometry | MultiPolygonGeometry, p: LonLat): number {
  const rings = geometry.type === 'Polygon' ? geometry.coordinates : geometry.coordinates.flat();
  let best = Infinity;
  for (const ring of rings) best = Math.min(best, ruler.distance(p, ruler.pointOnLine(ring as LonLat[], p).point));
  return best;
}

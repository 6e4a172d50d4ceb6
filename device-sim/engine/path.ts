// A polyline a vehicle drives along, measured in metres with a city-scale planar approximation
// (cheap-ruler), with the position and heading at any distance along it.
import CheapRuler from 'cheap-ruler';

export type LonLat = [number, number];

export class Path {
  /** Distance from the start to each vertex, in metres. */
  private readonly cumulative: number[];

  constructor(
    readonly ruler: CheapRuler,
    readonly points: readonly LonLat[],
  ) {
    if (points.length < 2) throw new Error('a path needs at least two points');
    this.cumulative = [0];
    for (let i = 1; i < points.length; i++) this.cumulative.push(this.cumulative[i - 1]! + ruler.distance(points[i - 1]!, points[i]!));
  }

  get length(): number {
    return this.cumulative.at(-1)!;
  }

  /** Position and heading (degrees from north, 0–359) at `metres` from the start. */
  at(metres: number): { position: LonLat; heading: number } {
    const m = Math.min(Math.max(metres, 0), this.length);
    // Binary search for the segment holding m.
    let lo = 1;
    let hi = this.cumulative.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.cumulative[mid]! < m) lo = mid + 1;
      else hi = mid;
    }
    const i = lo;
    const a = this.points[i - 1]!;
    const b = this.points[i]!;
    const segment = this.cumulative[i]! - this.cumulative[i - 1]!;
    const t = segment === 0 ? 0 : (m - this.cumulative[i - 1]!) / segment;
    return { position: [a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t], heading: headingOf(this.ruler.bearing(a, b)) };
  }

  /** The part of the path between two distances from its start. */
  slice(from: number, to: number): Path {
    return new Path(this.ruler, this.ruler.lineSliceAlong(Math.max(0, from), Math.min(to, this.length), this.points as LonLat[]) as LonLat[]);
  }

  reversed(): Path {
    return new Path(this.ruler, [...this.points].reverse());
  }

  /** Distance in metres from a point to the nearest point of the path. */
  distanceTo(point: LonLat): number {
    return this.ruler.distance(point, this.ruler.pointOnLine(this.points as LonLat[], point).point);
  }
}

/** A bearing (-180..180) as a compass heading in [0, 360). */
export function headingOf(bearing: number): number {
  const h = Math.round((bearing + 360) % 360);
  return h === 360 ? 0 : h;
}

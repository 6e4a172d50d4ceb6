// The simulated city as the devices see it: registry entities from the bundle, indexed, with the
// road network for driving between places. Built once per run; read-only afterwards.
import booleanPointInPolygon from '@turf/boolean-point-in-polygon';
import type { City } from '../city/generate.ts';
import { RoadNetwork, type RoadNode } from '../city/roads.ts';
import { DAY, localMidnight, type TimeWindow } from '../../services/contract/local-time.ts';
import { Path, type LonLat } from '../engine/path.ts';

type Polygon = { type: 'Polygon'; coordinates: LonLat[][] };

export interface SimTruck {
  id: string;
  plate: string;
  deviceId: string;
  fleet: 'muck' | 'collection';
  ratedGrossKg: number;
  /** Empty weight, about 42 % of the rated gross weight for a tipper. */
  tareKg: number;
}

export interface SimPermit {
  id: string;
  siteId: string;
  disposalSiteId: string;
  route: Path;
  /** Intersections along the route, without the yards at either end. */
  routeNodes: string[];
  corridorM: number;
  validFrom: number;
  validTo: number;
  windows: TimeWindow[];
}

export interface SimSite {
  id: string;
  kind: 'construction' | 'disposal' | 'transfer' | 'plant';
  centre: LonLat;
  polygon: Polygon;
  scaleDeviceId: string | null;
}

export interface SimCommunity {
  id: string;
  centre: LonLat;
  windows: TimeWindow[];
}

export interface SimBin {
  id: string;
  deviceId: string;
  category: 'kitchen' | 'recyclable' | 'hazardous' | 'other';
  communityId: string;
  depthMm: number;
  location: LonLat;
}

export class World {
  readonly roads: RoadNetwork;
  readonly trucks: SimTruck[];
  readonly permits: SimPermit[];
  readonly sites: Map<string, SimSite>;
  readonly communities: Map<string, SimCommunity>;
  readonly bins: SimBin[];
  private readonly permitByTruck = new Map<string, SimPermit>();
  private readonly jurisdictions: { id: string; polygon: Polygon }[];
  private readonly nodeBuckets = new Map<string, RoadNode[]>();
  private readonly routeCache = new Map<string, LonLat[]>();
  private static readonly BUCKET_M = 500;

  constructor(city: Pick<City, 'bundle' | 'roads'>) {
    const b = city.bundle as unknown as Record<string, Record<string, unknown>[]>;
    this.roads = new RoadNetwork(city.roads);
    const ruler = this.roads.ruler;
    const centreOf = (p: Polygon): LonLat => {
      const ring = p.coordinates[0]!.slice(0, -1);
      return [ring.reduce((s, c) => s + c[0], 0) / ring.length, ring.reduce((s, c) => s + c[1], 0) / ring.length];
    };
    const scaleBySite = new Map(b.weighbridges!.map((w) => [w.site_id as string, w.device_id as string]));
    this.sites = new Map(
      b.sites!.map((s) => {
        const polygon = s.geometry as Polygon;
        return [s.id as string, { id: s.id as string, kind: s.kind as SimSite['kind'], polygon, centre: centreOf(polygon), scaleDeviceId: scaleBySite.get(s.id as string) ?? null }];
      }),
    );
    this.communities = new Map(
      b.communities!.map((c) => [c.id as string, { id: c.id as string, centre: centreOf(c.geometry as Polygon), windows: (c.dropoff_windows as TimeWindow[]) ?? [] }]),
    );
    this.trucks = b.trucks!.map((t) => ({
      id: t.id as string,
      plate: t.plate as string,
      deviceId: t.device_id as string,
      fleet: t.fleet as SimTruck['fleet'],
      ratedGrossKg: t.rated_gross_kg as number,
      tareKg: Math.round(((t.rated_gross_kg as number) * 0.42) / 10) * 10,
    }));
    this.bins = b.bins!.map((x) => ({
      id: x.id as string,
      deviceId: x.device_id as string,
      category: x.category as SimBin['category'],
      communityId: x.community_id as string,
      depthMm: x.depth_mm as number,
      location: (x.location as { coordinates: LonLat }).coordinates,
    }));
    this.jurisdictions = b.jurisdictions!.map((j) => ({ id: j.id as string, polygon: j.geometry as Polygon }));
    for (const node of city.roads.nodes) {
      const key = this.bucketKey([node.lon, node.lat]);
      this.nodeBuckets.set(key, [...(this.nodeBuckets.get(key) ?? []), node]);
    }
    const nodeAt = new Map(city.roads.nodes.map((n) => [`${n.lon},${n.lat}`, n.id]));
    this.permits = b.permits!.map((p) => {
      const coordinates = (p.route as { coordinates: LonLat[] }).coordinates;
      const permit: SimPermit = {
        id: p.id as string,
        siteId: p.site_id as string,
        disposalSiteId: p.disposal_site_id as string,
        route: new Path(ruler, coordinates),
        routeNodes: coordinates.map(([lon, lat]) => nodeAt.get(`${lon},${lat}`)).filter((id): id is string => id !== undefined),
        corridorM: (p.corridor_m as number) ?? 50,
        validFrom: localMidnight(Date.parse(`${p.valid_from as string}T12:00:00+08:00`)),
        validTo: localMidnight(Date.parse(`${p.valid_to as string}T12:00:00+08:00`)) + DAY,
        windows: (p.time_windows as TimeWindow[]) ?? [],
      };
      for (const truckId of p.truck_ids as string[]) this.permitByTruck.set(truckId, permit);
      return permit;
    });
  }

  get ruler() {
    return this.roads.ruler;
  }

  permitOf(truckId: string): SimPermit | null {
    return this.permitByTruck.get(truckId) ?? null;
  }

  site(id: string): SimSite {
    const site = this.sites.get(id);
    if (!site) throw new Error(`no site ${id}`);
    return site;
  }

  sitesOfKind(kind: SimSite['kind']): SimSite[] {
    return [...this.sites.values()].filter((s) => s.kind === kind);
  }

  jurisdictionsAt(point: LonLat): string[] {
    return this.jurisdictions.filter((j) => booleanPointInPolygon(point, j.polygon)).map((j) => j.id);
  }

  insideSite(point: LonLat, kind: SimSite['kind']): boolean {
    for (const site of this.sites.values()) if (site.kind === kind && booleanPointInPolygon(point, site.polygon)) return true;
    return false;
  }

  /** The intersection nearest to a point, looked up in 500 m buckets. */
  nearestNode(point: LonLat): RoadNode {
    const [bx, by] = this.bucketOf(point);
    let best: RoadNode | null = null;
    let bestDistance = Infinity;
    for (let radius = 1; best === null || radius <= 2; radius++) {
      for (let dx = -radius; dx <= radius; dx++) {
        for (let dy = -radius; dy <= radius; dy++) {
          for (const node of this.nodeBuckets.get(`${bx + dx}:${by + dy}`) ?? []) {
            const d = this.ruler.distance(point, [node.lon, node.lat]);
            if (d < bestDistance) {
              best = node;
              bestDistance = d;
            }
          }
        }
      }
      if (radius > 50) return this.roads.nearest(point[0], point[1]);
    }
    return best;
  }

  /** A drive from one place to another: to the nearest intersection, along the roads, and off again. */
  drive(from: LonLat, to: LonLat): LonLat[] {
    const a = this.nearestNode(from).id;
    const b = this.nearestNode(to).id;
    const key = `${a}>${b}`;
    let middle = this.routeCache.get(key);
    if (!middle) {
      middle = a === b ? [] : this.roads.route(a, b).map((n): LonLat => [n.lon, n.lat]);
      this.routeCache.set(key, middle);
    }
    return [from, ...middle, to];
  }

  private bucketOf(point: LonLat): [number, number] {
    const origin = this.roads.data.nodes[0]!;
    const east = this.ruler.distance([origin.lon, point[1]], point) * Math.sign(point[0] - origin.lon);
    const north = this.ruler.distance([point[0], origin.lat], point) * Math.sign(point[1] - origin.lat);
    return [Math.floor(east / World.BUCKET_M), Math.floor(north / World.BUCKET_M)];
  }

  private bucketKey(point: LonLat): string {
    const [x, y] = this.bucketOf(point);
    return `${x}:${y}`;
  }
}

// The registry in memory, indexed for lookups that must not query SQLite: trucks by GPS device and
// by plate with their permits, sites with their weighbridges, bins by sensor with their
// community's drop-off windows, disposal sites and jurisdictions indexed by area. Read by the rules
// (for every fix and reading), the separation-rate job (the jurisdictions of a community) and the
// state snapshots (trucks, bins); each reads `current`, a whole view that is swapped, never
// changed, when the registry changes.
//
// Built on its own and handed to those services at construction. Whoever builds it (the process's
// wiring) starts and stops it, as it opens and closes the registry database it reads: it is not
// the rules' to start, since the sorting job and the snapshots read it with the rules switched off
// too. Started, it loads the registry at once, then polls the registry revision every 2 s and
// reloads in slices when it moved; never started, `current` loads the registry once, on first use
// (tests, tools).
import { CST_OFFSET_MS, DAY, type TimeWindow } from '../contract/local-time.ts';
import { AreaIndex, Route, type LonLat } from '../geo.ts';
import type { RegistryDb } from './db.ts';
import { ENTITIES } from './entities.ts';
import type { EntityRecord, EntityStore } from './entity-store.ts';
import type { LineStringGeometry, MultiPolygonGeometry, PointGeometry, PolygonGeometry } from './geometry.ts';

export interface PermitInfo {
  id: string;
  number: string;
  siteId: string;
  disposalSiteId: string;
  route: Route;
  corridorM: number;
  /** Local calendar days (days since 1970-01-01 in China Standard Time), inclusive. */
  firstDay: number;
  lastDay: number;
  windows: TimeWindow[];
  status: string;
}

export interface TruckInfo {
  id: string;
  plate: string;
  fleet: 'muck' | 'collection';
  ratedGrossKg: number;
  deviceId: string | null;
  companyId: string;
  permits: PermitInfo[];
}

export interface SiteInfo {
  id: string;
  kind: 'construction' | 'disposal' | 'transfer' | 'plant';
  name: string;
  centre: LonLat;
  jurisdictions: string[];
}

export interface BinInfo {
  id: string;
  deviceId: string;
  category: 'kitchen' | 'recyclable' | 'hazardous' | 'other';
  communityId: string | null;
  districtId: string | null;
  depthMm: number;
  location: LonLat;
  jurisdictions: string[];
  /** The community's drop-off windows (定时投放); empty: drop-off at any time. */
  dropoffWindows: TimeWindow[];
}

/** One whole view of the registry, as the index holds it between two reloads. */
export interface CityView {
  binByDevice(deviceId: string): BinInfo | undefined;
  /** Every bin with a sensor. */
  allBins(): Iterable<BinInfo>;
  truckByDevice(deviceId: string): TruckInfo | undefined;
  truckByPlate(plate: string): TruckInfo | undefined;
  truck(id: string): TruckInfo | undefined;
  /** The site a weighbridge device stands at. */
  siteOfScale(deviceId: string): SiteInfo | undefined;
  site(id: string): SiteInfo | undefined;
  /** Disposal sites holding p (or within toleranceM of one). */
  disposalSitesAt(p: LonLat, toleranceM: number): SiteInfo[];
  /** Jurisdictions holding p, or within toleranceM of it. */
  jurisdictionsAt(p: LonLat, toleranceM?: number): string[];
  /** Whether p lies in the site (within toleranceM of it). */
  inSite(siteId: string, p: LonLat, toleranceM: number): boolean;
  permitCount(): number;
}

/** The local day number of an epoch-ms instant, comparable with PermitInfo.firstDay/lastDay. */
export function localDay(ts: number): number {
  return Math.floor((ts + CST_OFFSET_MS) / DAY);
}

function dayOf(date: string): number {
  return Math.floor(Date.parse(`${date}T00:00:00Z`) / DAY);
}

/** Permits of a truck in force at ts: active, and ts on a day between valid_from and valid_to. */
export function permitsAt(truck: TruckInfo, ts: number): PermitInfo[] {
  if (truck.permits.length === 0) return truck.permits;
  const day = localDay(ts);
  return truck.permits.filter((p) => p.status === 'active' && day >= p.firstDay && day <= p.lastDay);
}

/** Plates are written with and without the middle dot and spaces (苏E·12345, 苏E 12345, 苏E12345). */
export function normalisePlate(plate: string): string {
  return plate.replace(/[\s·.\-•]/g, '').toUpperCase();
}

export type Area = PolygonGeometry | MultiPolygonGeometry;

/** The mean of an area's outer ring: a label point for sites and communities. */
export function centreOf(geometry: Area): LonLat {
  const ring = geometry.type === 'Polygon' ? geometry.coordinates[0]! : geometry.coordinates[0]![0]!;
  const points = ring.slice(0, -1);
  return [points.reduce((s, p) => s + p[0], 0) / points.length, points.reduce((s, p) => s + p[1], 0) / points.length];
}

type Rows = Record<(typeof TABLES)[number], EntityRecord[]>;

class Snapshot implements CityView {
  private readonly byDevice = new Map<string, TruckInfo>();
  private readonly byPlate = new Map<string, TruckInfo>();
  private readonly trucks = new Map<string, TruckInfo>();
  private readonly sites = new Map<string, SiteInfo>();
  private readonly scales = new Map<string, SiteInfo>();
  private disposal = new AreaIndex<SiteInfo>([]);
  private readonly siteAreas = new Map<string, AreaIndex<string>>();
  private jurisdictions = new AreaIndex<string>([]);
  private readonly bins = new Map<string, BinInfo>();
  private permits = 0;

  /** Built at once (the first load). */
  static build(rows: Rows): Snapshot {
    const snapshot = new Snapshot();
    for (const _ of snapshot.fill(rows));
    return snapshot;
  }

  /** Built `slice` rows at a time, with `pause()` (a turn of the event loop) in between. */
  static async buildInSlices(rows: Rows, slice: number, pause: () => Promise<void>): Promise<Snapshot> {
    const snapshot = new Snapshot();
    let done = 0;
    for (const _ of snapshot.fill(rows)) if (++done % slice === 0) await pause();
    return snapshot;
  }

  /** Fills the maps from the rows, yielding after each row. */
  private *fill(rows: Rows): Generator<void> {
    this.jurisdictions = new AreaIndex(rows.jurisdictions.map((j) => ({ value: j.id, geometry: j.geometry as Area })));
    yield;
    const communities = new Map(rows.communities.map((c) => [c.id, c]));
    for (const b of rows.bins) {
      yield;
      if (typeof b.device_id !== 'string') continue;
      const community = typeof b.community_id === 'string' ? communities.get(b.community_id) : undefined;
      const location = (b.location as PointGeometry).coordinates as LonLat;
      this.bins.set(b.device_id, {
        id: b.id,
        deviceId: b.device_id,
        category: b.category as BinInfo['category'],
        communityId: community?.id ?? null,
        districtId: (community?.district_id as string | undefined) ?? null,
        depthMm: b.depth_mm as number,
        location,
        jurisdictions: this.jurisdictions.at(location),
        dropoffWindows: (community?.dropoff_windows as TimeWindow[] | undefined) ?? [],
      });
    }
    const disposalAreas = [];
    for (const s of rows.sites) {
      yield;
      const geometry = s.geometry as Area;
      const centre = centreOf(geometry);
      // A site on a boundary belongs to every jurisdiction it reaches into.
      const corners = (geometry.type === 'Polygon' ? geometry.coordinates : geometry.coordinates.flat()).flat() as LonLat[];
      const jurisdictions = [...new Set([centre, ...corners].flatMap((p) => this.jurisdictions.at(p)))].sort();
      const site: SiteInfo = { id: s.id, kind: s.kind as SiteInfo['kind'], name: s.name as string, centre, jurisdictions };
      this.sites.set(site.id, site);
      this.siteAreas.set(site.id, new AreaIndex([{ value: site.id, geometry }]));
      if (site.kind === 'disposal') disposalAreas.push({ value: site, geometry });
    }
    this.disposal = new AreaIndex(disposalAreas);
    yield;
    for (const w of rows.weighbridges) {
      const site = this.sites.get(w.site_id as string);
      if (site && typeof w.device_id === 'string') this.scales.set(w.device_id, site);
    }
    for (const t of rows.trucks) {
      yield;
      const truck: TruckInfo = {
        id: t.id,
        plate: t.plate as string,
        fleet: t.fleet as TruckInfo['fleet'],
        ratedGrossKg: t.rated_gross_kg as number,
        deviceId: (t.device_id as string | null) ?? null,
        companyId: t.company_id as string,
        permits: [],
      };
      this.trucks.set(truck.id, truck);
      this.byPlate.set(normalisePlate(truck.plate), truck);
      if (truck.deviceId) this.byDevice.set(truck.deviceId, truck);
    }
    this.permits = rows.permits.length;
    for (const p of rows.permits) {
      yield;
      const permit: PermitInfo = {
        id: p.id,
        number: p.number as string,
        siteId: p.site_id as string,
        disposalSiteId: p.disposal_site_id as string,
        route: new Route(p.route as LineStringGeometry),
        corridorM: p.corridor_m as number,
        firstDay: dayOf(p.valid_from as string),
        lastDay: dayOf(p.valid_to as string),
        windows: p.time_windows as TimeWindow[],
        status: p.status as string,
      };
      for (const truckId of p.truck_ids as string[]) this.trucks.get(truckId)?.permits.push(permit);
    }
  }

  binByDevice(deviceId: string) {
    return this.bins.get(deviceId);
  }
  allBins() {
    return this.bins.values();
  }
  truckByDevice(deviceId: string) {
    return this.byDevice.get(deviceId);
  }
  truckByPlate(plate: string) {
    return this.byPlate.get(normalisePlate(plate));
  }
  truck(id: string) {
    return this.trucks.get(id);
  }
  siteOfScale(deviceId: string) {
    return this.scales.get(deviceId);
  }
  site(id: string) {
    return this.sites.get(id);
  }
  disposalSitesAt(p: LonLat, toleranceM: number) {
    return this.disposal.at(p, toleranceM);
  }
  jurisdictionsAt(p: LonLat, toleranceM = 0) {
    return this.jurisdictions.at(p, toleranceM);
  }
  inSite(siteId: string, p: LonLat, toleranceM: number) {
    return (this.siteAreas.get(siteId)?.at(p, toleranceM).length ?? 0) > 0;
  }
  permitCount() {
    return this.permits;
  }
}

const TABLES = ['trucks', 'permits', 'sites', 'weighbridges', 'jurisdictions', 'bins', 'communities'] as const;
/** How often the registry is checked for changes made by the API or another process. */
const POLL_MS = 2000;
/**
 * Rows read, or built into the snapshot, between two turns of the event loop when the registry
 * is reloaded while the service runs. Reading and building 80,000 bins and 5,500 permits at once
 * held the loop for 1-1.4 s after each large import; a slice of 250 rows costs 5-20 ms.
 */
const RELOAD_SLICE = 250;

const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Keeps a view of the registry, reloaded when the tables it reads change. */
export class CityIndex {
  private snapshot: Snapshot | null = null;
  private signature = -1;
  private timer: NodeJS.Timeout | null = null;
  private reloading: Promise<void> | null = null;
  private stopped = false;

  constructor(
    private readonly db: RegistryDb,
    private readonly entities: EntityStore,
    private readonly onReload: (view: CityView) => void = () => {},
  ) {}

  get current(): CityView {
    if (!this.snapshot) this.reload();
    return this.snapshot!;
  }

  start(): void {
    this.stopped = false;
    this.reload();
    this.timer = setInterval(() => {
      // A registry database that does not answer (PostgreSQL restarting) leaves the current view
      // in use; the next poll tries again.
      try {
        if (!this.reloading && this.readSignature() !== this.signature) this.reloadInSlices().catch(() => {});
      } catch {
        // Tried again at the next poll.
      }
    }, POLL_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    // A reload in slices under way gives up at its next turn: the database may be closed next.
    this.stopped = true;
  }

  /**
   * Resolves once the view of a started index holds the registry as it is now, so that what this
   * process just changed (an import) is judged against from the next reading on, instead of from
   * the next poll. In slices, as the poll reads; a reload already under way may have read before
   * the change, so it is waited for and another made if the registry moved since.
   */
  async catchUp(): Promise<void> {
    if (!this.timer) return;
    await this.reloading?.catch(() => {});
    if (!this.stopped && this.readSignature() !== this.signature) await this.reloadInSlices();
  }

  /** Reads the registry again now, at once (after an import, say). */
  reload(): void {
    this.signature = this.readSignature();
    this.snapshot = Snapshot.build(Object.fromEntries(TABLES.map((table) => [table, this.entities.all(ENTITIES[table])])) as Rows);
    this.onReload(this.snapshot);
  }

  /**
   * Reads the registry again in slices, readers keeping the current view until the new one
   * is whole. A registry changed while it read (an import committed between two slices) would give
   * a snapshot half old and half new (trucks from before, permits from after, and permit alerts
   * that are false): such a read is thrown away, and the next poll reads it all again.
   */
  reloadInSlices(): Promise<void> {
    this.reloading ??= (async () => {
      try {
        const signature = this.readSignature();
        const rows = {} as Rows;
        for (const table of TABLES) {
          rows[table] = [];
          for (let after = ''; ; ) {
            const page = this.entities.pageAfter(ENTITIES[table], after, RELOAD_SLICE);
            rows[table].push(...page);
            await turn();
            if (this.stopped) return;
            if (page.length < RELOAD_SLICE) break;
            after = page.at(-1)!.id;
          }
        }
        if (this.readSignature() !== signature) return;
        const snapshot = await Snapshot.buildInSlices(rows, RELOAD_SLICE, turn);
        if (this.stopped) return;
        // A reload at once (reload()) made meanwhile is at least as new.
        if (this.signature > signature) return;
        this.signature = signature;
        this.snapshot = snapshot;
        this.onReload(snapshot);
      } finally {
        this.reloading = null;
      }
    })();
    return this.reloading;
  }

  /** Changes whenever a row is added, removed or updated in a table the index reads (migration 5's triggers). */
  private readSignature(): number {
    return (this.db.statement('SELECT n FROM registry_revision WHERE id = 1').get() as { n: number }).n;
  }

}

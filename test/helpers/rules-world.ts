// A small hand-built world for the rules: two jurisdictions side by side (WEST | EAST at lon
// 120.60), a construction site in WEST and a disposal site in EAST with weighbridges, a permit
// whose route runs straight along lat 31.30 between them (corridor 50 m, nights 21:00-05:00, the
// whole of 2026), truck T1 holding it and truck T2 holding none; two districts with a community
// each (CM-1 in WEST with drop-off windows, one of them overnight; CM-2 in EAST without) and their
// bins. Tracks and readings are built by hand with known answers.
import path from 'node:path';
import { ENTITIES } from '../../services/registry/entities.ts';
import { EntityStore } from '../../services/registry/entity-store.ts';
import { RegistryDb } from '../../services/registry/db.ts';
import type { BinReading, TruckFix, WeighTicket } from '../../services/rules/types.ts';
import { tempDir } from './service.ts';

export const LAT = 31.3;
export const SITE_LON = 120.55;
export const DUMP_LON = 120.65;
/** Metres per degree of longitude at LAT (cheap-ruler agrees to 0.1 %). */
export const M_PER_LON = 95_200;
export const M_PER_LAT = 110_900;

const square = (lon: number, lat: number, half: number) => ({
  type: 'Polygon',
  coordinates: [[[lon - half, lat - half], [lon + half, lat - half], [lon + half, lat + half], [lon - half, lat + half], [lon - half, lat - half]]],
});
const box = (west: number, east: number) => ({ type: 'Polygon', coordinates: [[[west, 31.2], [east, 31.2], [east, 31.4], [west, 31.4], [west, 31.2]]] });

export interface WorldOptions {
  validTo?: string;
  /** P1's route; a straight line from SITE-A to DUMP-B when not given. */
  route?: [number, number][];
  windows?: { from: string; to: string }[];
}

/** Writes the world into an entity store (the registry tables must exist). */
export function writeWorld(entities: EntityStore, options: WorldOptions = {}): void {
  const create = (name: keyof typeof ENTITIES, id: string, input: Record<string, unknown>) => entities.create(ENTITIES[name], id, input);
  create('jurisdictions', 'WEST', { name: '西区', enforcement_unit: '西区中队', geometry: box(120.5, 120.6), neighbour_ids: [] });
  create('jurisdictions', 'EAST', { name: '东区', enforcement_unit: '东区中队', geometry: box(120.6, 120.7), neighbour_ids: [] });
  create('companies', 'C1', { name: '渣土运输公司' });
  create('sites', 'SITE-A', { kind: 'construction', name: '工地', geometry: square(SITE_LON, LAT, 0.002) });
  create('sites', 'DUMP-B', { kind: 'disposal', name: '消纳场', geometry: square(DUMP_LON, LAT, 0.003) });
  create('trucks', 'T1', { plate: '苏E·00001', company_id: 'C1', fleet: 'muck', rated_gross_kg: 31_000, device_id: null });
  create('trucks', 'T2', { plate: '苏E·00002', company_id: 'C1', fleet: 'muck', rated_gross_kg: 31_000, device_id: null });
  create('permits', 'P1', {
    number: 'PZ-2026-001',
    site_id: 'SITE-A',
    disposal_site_id: 'DUMP-B',
    truck_ids: ['T1'],
    route: { type: 'LineString', coordinates: options.route ?? [[SITE_LON, LAT], [DUMP_LON, LAT]] },
    corridor_m: 50,
    valid_from: '2026-01-01',
    valid_to: options.validTo ?? '2026-12-31',
    time_windows: options.windows ?? [{ from: '21:00', to: '05:00' }],
    status: 'active',
  });
  create('districts', 'D-1', { name: '姑苏区' });
  create('districts', 'D-2', { name: '吴中区' });
  create('communities', 'CM-1', { name: '金桥社区', district_id: 'D-1', geometry: square(120.57, 31.32, 0.005), dropoff_windows: DROPOFF_WINDOWS });
  create('communities', 'CM-2', { name: '石湖社区', district_id: 'D-2', geometry: square(120.63, 31.32, 0.005), dropoff_windows: [] });
  for (const [id, category, community, lon] of BINS) create('bins', id, { category, community_id: community, depth_mm: BIN_DEPTH_MM, location: { type: 'Point', coordinates: [lon, 31.32] } });
}

/** CM-1's drop-off windows: mornings, and evenings running past midnight. */
export const DROPOFF_WINDOWS = [
  { from: '07:00', to: '09:00' },
  { from: '21:00', to: '01:00' },
];
export const BIN_DEPTH_MM = 1000;
const BINS = [
  ['BIN-1', 'kitchen', 'CM-1', 120.571],
  ['BIN-2', 'other', 'CM-1', 120.572],
  ['BIN-3', 'kitchen', 'CM-2', 120.631],
] as const;

/** Device ids of the world: GPS units and weighbridges, linked once the devices exist. */
export const DEVICES = { gps1: 'GPS-1', gps2: 'GPS-2', scaleA: 'SCALE-A', scaleB: 'SCALE-B', bin1: 'BIN-S1', bin2: 'BIN-S2', bin3: 'BIN-S3' } as const;

/** Links devices to the trucks and weighbridges (after the devices are in the registry). */
export function linkDevices(entities: EntityStore): void {
  entities.update(ENTITIES.trucks, 'T1', { device_id: DEVICES.gps1 });
  entities.update(ENTITIES.trucks, 'T2', { device_id: DEVICES.gps2 });
  entities.create(ENTITIES.weighbridges, 'WB-A', { site_id: 'SITE-A', device_id: DEVICES.scaleA });
  entities.create(ENTITIES.weighbridges, 'WB-B', { site_id: 'DUMP-B', device_id: DEVICES.scaleB });
  entities.update(ENTITIES.bins, 'BIN-1', { device_id: DEVICES.bin1 });
  entities.update(ENTITIES.bins, 'BIN-2', { device_id: DEVICES.bin2 });
  entities.update(ENTITIES.bins, 'BIN-3', { device_id: DEVICES.bin3 });
}

/**
 * A registry holding the world and its devices: at `location` (a SQLite file or an empty
 * PostgreSQL database, test/helpers/registry-backends.ts) when given, else in a SQLite file in a
 * temp directory.
 */
export async function worldRegistry(options: WorldOptions = {}, location?: string): Promise<{ db: RegistryDb; entities: EntityStore }> {
  const db = new RegistryDb(location ?? path.join(await tempDir('waste-rules-'), 'registry.db'));
  db.open();
  const entities = new EntityStore(db);
  writeWorld(entities, options);
  const insert = db.statement("INSERT INTO devices (id, class, secret_hash, enabled, created_at, updated_at) VALUES (?, ?, 'x', 1, '2026-01-01', '2026-01-01')");
  insert.run(DEVICES.gps1, 'trucks');
  insert.run(DEVICES.gps2, 'trucks');
  insert.run(DEVICES.scaleA, 'scales');
  insert.run(DEVICES.scaleB, 'scales');
  for (const bin of [DEVICES.bin1, DEVICES.bin2, DEVICES.bin3]) insert.run(bin, 'bins');
  linkDevices(entities);
  return { db, entities };
}

/** 22:00 on 1 June 2026, China Standard Time: inside the permit's night window. */
export const NIGHT = Date.parse('2026-06-01T22:00:00+08:00');
/** 14:00 the same day: outside it. */
export const AFTERNOON = Date.parse('2026-06-01T14:00:00+08:00');

export interface Leg {
  /** Longitude at the start and end, and metres north of the route (constant over the leg). */
  fromLon: number;
  toLon: number;
  offsetM?: number;
  /** Offset at the end of the leg, when it changes along it (leaving or rejoining the route). */
  toOffsetM?: number;
  speedKmh: number;
  extra?: Partial<TruckFix>;
}

/** Fixes every intervalS along legs driven one after the other, starting at t0. */
export function track(deviceId: string, t0: number, legs: Leg[], intervalS = 10): TruckFix[] {
  const fixes: TruckFix[] = [];
  let t = t0;
  for (const leg of legs) {
    const from = leg.offsetM ?? 0;
    const to = leg.toOffsetM ?? from;
    const metres = Math.hypot((leg.toLon - leg.fromLon) * M_PER_LON, to - from);
    const seconds = leg.speedKmh > 0 ? metres / (leg.speedKmh / 3.6) : 0;
    const steps = Math.max(1, Math.round(seconds / intervalS));
    for (let i = 0; i < steps; i++) {
      const lon = leg.fromLon + ((leg.toLon - leg.fromLon) * i) / steps;
      fixes.push({
        kind: 'truck',
        deviceId,
        ts: t,
        lon,
        lat: LAT + (from + ((to - from) * i) / steps) / M_PER_LAT,
        speed_kmh: leg.speedKmh,
        heading: leg.toLon >= leg.fromLon ? 90 : 270,
        ignition: true,
        cover_closed: true,
        ...leg.extra,
      });
      t += intervalS * 1000;
    }
  }
  return fixes;
}

/** The permit's route with a detour: leaves it at 120.58, drives 400 m north of it to 120.62 (from WEST into EAST), and rejoins it. */
export function deviationTrip(deviceId: string, t0: number): TruckFix[] {
  return track(deviceId, t0, [
    { fromLon: SITE_LON, toLon: 120.58, speedKmh: 36 },
    { fromLon: 120.58, toLon: 120.581, offsetM: 0, toOffsetM: 400, speedKmh: 36 },
    { fromLon: 120.581, toLon: 120.619, offsetM: 400, speedKmh: 36 },
    { fromLon: 120.619, toLon: 120.62, offsetM: 400, toOffsetM: 0, speedKmh: 36 },
    { fromLon: 120.62, toLon: DUMP_LON, speedKmh: 36 },
  ]);
}

/** Standing still at lon for seconds, one fix every intervalS. */
export function stand(deviceId: string, t0: number, lon: number, seconds: number, extra: Partial<TruckFix> = {}, intervalS = 10): TruckFix[] {
  const fixes: TruckFix[] = [];
  for (let s = 0; s < seconds; s += intervalS) fixes.push({ kind: 'truck', deviceId, ts: t0 + s * 1000, lon, lat: LAT, speed_kmh: 0, heading: 0, ignition: true, cover_closed: true, ...extra });
  return fixes;
}

export function ticket(id: string, scale: string, ts: number, direction: 'in' | 'out', netKg: number, tareKg = 10_000): WeighTicket {
  return { kind: 'ticket', deviceId: scale, ts, ticket_id: id, plate: '苏E 00001', gross_kg: tareKg + netKg, tare_kg: tareKg, net_kg: netKg, category: 'construction', direction };
}

/** A bin reading: healthy sensor values unless given. */
export function binReading(deviceId: string, ts: number, values: Partial<BinReading> = {}): BinReading {
  return { kind: 'bin', deviceId, ts, fill_pct: 40, temp_c: 20, tilt_deg: 2, battery_v: 3.6, lid_opens: 0, ...values };
}

/** Readings every intervalS from t0, one per fill level given. */
export function binSeries(deviceId: string, t0: number, fills: number[], intervalS = 900, values: Partial<BinReading> = {}): BinReading[] {
  return fills.map((fill_pct, i) => binReading(deviceId, t0 + i * intervalS * 1000, { ...values, fill_pct }));
}

// Spillage routes: road driven uncovered while loaded, and the routes of trips that lost load,
// aggregated per grid cell (rules.spillageCellM) so street-cleaning and enforcement crews see
// where to go. Each piece is stored once (keyed by truck, kind, time and cell, so a replay adds
// nothing), ranked from the registry database (SQLite or PostgreSQL) for the API, and written to
// the `spillage` measurement for a map.
import { MEASUREMENTS, line } from '../contract/timeseries.ts';
import { distanceM, type LonLat } from '../geo.ts';
import type { CityView, TruckInfo } from '../registry/city-index.ts';
import type { RegistryDb } from '../registry/db.ts';
import type { SpillKind } from './types.ts';

const METRES_PER_DEGREE = 111_320;

export interface Cell {
  id: string;
  centre: LonLat;
}

/** The grid cell holding p: rows of cellM in latitude, columns of cellM in longitude at the row's latitude. */
export function cellOf(p: LonLat, cellM: number): Cell {
  const dLat = cellM / METRES_PER_DEGREE;
  const row = Math.floor(p[1] / dLat);
  const lat = (row + 0.5) * dLat;
  const dLon = cellM / (METRES_PER_DEGREE * Math.cos((lat * Math.PI) / 180));
  const col = Math.floor(p[0] / dLon);
  return { id: `${row}_${col}`, centre: [Math.round((col + 0.5) * dLon * 1e6) / 1e6, Math.round(lat * 1e6) / 1e6] };
}

export interface Hotspot {
  cell: string;
  location: { type: 'Point'; coordinates: LonLat };
  jurisdiction: string | null;
  /** Metres driven uncovered while loaded in the cell. */
  uncovered_m: number;
  /** Distinct trucks seen spilling in the cell. */
  trucks: number;
  /** Load-loss trips whose route crosses the cell. */
  load_loss_trips: number;
  last_at: string;
}

export class SpillageStore {
  constructor(
    private readonly db: RegistryDb,
    private readonly cellM: number,
    private readonly registry: () => CityView,
    private readonly writeLines: (lines: string) => Promise<void>,
  ) {}

  /** Records one piece of road (from → to at ts) driven in a spilling way, split over the cells it crosses. */
  record(spill: { kind: SpillKind; truck: TruckInfo; from: LonLat; to: LonLat; ts: number }): Promise<void> {
    const length = distanceM(spill.from, spill.to);
    const pieces = Math.max(1, Math.ceil(length / (this.cellM / 2)));
    const cells = new Map<string, { cell: Cell; metres: number }>();
    for (let k = 0; k < pieces; k++) {
      const f = (k + 0.5) / pieces;
      const cell = cellOf([spill.from[0] + (spill.to[0] - spill.from[0]) * f, spill.from[1] + (spill.to[1] - spill.from[1]) * f], this.cellM);
      const entry = cells.get(cell.id) ?? { cell, metres: 0 };
      entry.metres += length / pieces;
      cells.set(cell.id, entry);
    }
    const insert = this.db.statement('INSERT INTO spillage (truck_id, kind, ts, cell, lon, lat, metres, jurisdiction_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING');
    let lines = '';
    for (const { cell, metres } of cells.values()) {
      const rounded = Math.round(metres * 10) / 10;
      const jurisdiction = this.registry().jurisdictionsAt(cell.centre)[0] ?? null;
      if (insert.run(spill.truck.id, spill.kind, spill.ts, cell.id, cell.centre[0], cell.centre[1], rounded, jurisdiction).changes === 0) continue;
      lines += line(MEASUREMENTS.spillage, { cell: cell.id, kind: spill.kind }, { lat: cell.centre[1], lon: cell.centre[0], metres: rounded, truck_id: spill.truck.id }, spill.ts);
    }
    return lines ? this.writeLines(lines) : Promise.resolve();
  }

  /** Cells ranked by how much spilling happened there between from and to (epoch ms). */
  hotspots(query: { from: number; to: number; kind?: SpillKind | undefined; jurisdictions?: string[] | undefined; limit: number }): Hotspot[] {
    const params: Record<string, unknown> = { from: query.from, to: query.to, limit: query.limit };
    let where = 'ts >= @from AND ts <= @to';
    if (query.kind) {
      where += ' AND kind = @kind';
      params.kind = query.kind;
    }
    if (query.jurisdictions) {
      if (query.jurisdictions.length === 0) return [];
      where += ` AND jurisdiction_id IN (${query.jurisdictions.map((_, i) => `@j${i}`).join(', ')})`;
      query.jurisdictions.forEach((j, i) => (params[`j${i}`] = j));
    }
    // ROUND of a NUMERIC: PostgreSQL's round() of a double precision takes halves to the even
    // neighbour (2.5 to 2), SQLite's and PostgreSQL's of a numeric away from zero (to 3).
    const rows = this.db.statement(
        `SELECT cell, MIN(lon) AS lon, MIN(lat) AS lat, MIN(jurisdiction_id) AS jurisdiction,
           ROUND(CAST(SUM(CASE WHEN kind = 'uncovered' THEN metres ELSE 0 END) AS NUMERIC)) AS uncovered_m,
           COUNT(DISTINCT truck_id) AS trucks,
           COUNT(DISTINCT CASE WHEN kind = 'load_loss' THEN truck_id || ':' || ts END) AS load_loss_trips,
           MAX(ts) AS last_at
         FROM spillage WHERE ${where} GROUP BY cell
         ORDER BY (COUNT(DISTINCT CASE WHEN kind = 'load_loss' THEN truck_id || ':' || ts END) + COUNT(DISTINCT CASE WHEN kind = 'uncovered' THEN truck_id END)) DESC, uncovered_m DESC, cell
         LIMIT @limit`,
      )
      .all(params) as { cell: string; lon: number; lat: number; jurisdiction: string | null; uncovered_m: number; trucks: number; load_loss_trips: number; last_at: number }[];
    return rows.map((r) => ({
      cell: r.cell,
      location: { type: 'Point', coordinates: [r.lon, r.lat] },
      jurisdiction: r.jurisdiction,
      uncovered_m: r.uncovered_m,
      trucks: r.trucks,
      load_loss_trips: r.load_loss_trips,
      last_at: new Date(r.last_at).toISOString(),
    }));
  }
}

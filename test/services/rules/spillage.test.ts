// Spillage routes in the registry database, on SQLite and on PostgreSQL: road driven in a spilling
// way split over grid cells, stored once (a replay adds nothing), ranked per cell, filtered by
// kind, jurisdiction and time, with the same figures on both backends.
import { afterEach, describe, expect, it } from 'vitest';
import type { LonLat } from '../../../services/contract/findings.ts';
import { CityIndex } from '../../../services/registry/city-index.ts';
import type { RegistryDb } from '../../../services/registry/db.ts';
import { SpillageStore, cellOf } from '../../../services/rules/spillage.ts';
import { BACKENDS, registryLocations } from '../../helpers/registry-backends.ts';
import { LAT, NIGHT, worldRegistry } from '../../helpers/rules-world.ts';

const CELL_M = 200;

let db: RegistryDb | null = null;
afterEach(() => {
  db?.close();
  db = null;
});

describe.each(BACKENDS)('spillage store on %s', (backend) => {
  const location = registryLocations(backend);

  async function world() {
    const registry = await worldRegistry({}, await location());
    db = registry.db;
    const city = new CityIndex(registry.db, registry.entities);
    const lines: string[] = [];
    const spillage = new SpillageStore(registry.db, CELL_M, () => city.current, async (text) => void lines.push(text));
    const truck = (id: string) => city.current.truck(id)!;
    return { spillage, lines, truck };
  }

  // About 950 m along the route in WEST (west of lon 120.60), and 950 m in EAST.
  const inWest: [LonLat, LonLat] = [[120.58, LAT], [120.59, LAT]];
  const inEast: [LonLat, LonLat] = [[120.61, LAT], [120.62, LAT]];

  it('splits road over the cells it crosses, stores each piece once, and ranks cells by trucks and trips', async () => {
    const { spillage, lines, truck } = await world();
    await spillage.record({ kind: 'uncovered', truck: truck('T1'), from: inWest[0], to: inWest[1], ts: NIGHT });
    await spillage.record({ kind: 'uncovered', truck: truck('T2'), from: inWest[0], to: inWest[1], ts: NIGHT + 60_000 });
    await spillage.record({ kind: 'load_loss', truck: truck('T1'), from: inEast[0], to: inEast[1], ts: NIGHT + 3_600_000 });
    const written = lines.length;
    expect(lines.join('')).toMatch(/^spillage,cell=\S+,kind=uncovered /);
    // A replay of a piece already stored adds nothing, and writes nothing.
    await spillage.record({ kind: 'uncovered', truck: truck('T1'), from: inWest[0], to: inWest[1], ts: NIGHT });
    expect(lines).toHaveLength(written);

    const hotspots = spillage.hotspots({ from: NIGHT, to: NIGHT + 7_200_000, limit: 500 });
    const west = hotspots.filter((h) => h.jurisdiction === 'WEST');
    const east = hotspots.filter((h) => h.jurisdiction === 'EAST');
    expect(west.length + east.length).toBe(hotspots.length);
    // Two trucks uncovered in each WEST cell rank before one load-loss trip in each EAST cell.
    expect(hotspots.slice(0, west.length)).toEqual(west);
    expect(west.map((h) => [h.trucks, h.load_loss_trips])).toEqual(west.map(() => [2, 0]));
    expect(east.map((h) => [h.trucks, h.load_loss_trips, h.uncovered_m])).toEqual(east.map(() => [1, 1, 0]));
    const metres = west.reduce((sum, h) => sum + h.uncovered_m, 0);
    expect(metres).toBeGreaterThan(2 * 940);
    expect(metres).toBeLessThan(2 * 965);
    for (const h of hotspots) {
      expect(h.cell).toBe(cellOf(h.location.coordinates, CELL_M).id);
      expect(typeof h.uncovered_m).toBe('number');
    }
    expect(new Set(west.map((h) => h.last_at))).toEqual(new Set([new Date(NIGHT + 60_000).toISOString()]));
    expect(new Set(east.map((h) => h.last_at))).toEqual(new Set([new Date(NIGHT + 3_600_000).toISOString()]));
    // Equal counts are ranked by metres, then by cell.
    const score = (h: (typeof hotspots)[number]) => h.load_loss_trips + (h.uncovered_m > 0 ? h.trucks : 0);
    for (let i = 1; i < hotspots.length; i++) {
      const [a, b] = [hotspots[i - 1]!, hotspots[i]!];
      expect(score(a) > score(b) || (score(a) === score(b) && (a.uncovered_m > b.uncovered_m || (a.uncovered_m === b.uncovered_m && a.cell < b.cell)))).toBe(true);
    }
  });

  it('filters by kind, jurisdiction and time', async () => {
    const { spillage, truck } = await world();
    await spillage.record({ kind: 'uncovered', truck: truck('T1'), from: inWest[0], to: inWest[1], ts: NIGHT });
    await spillage.record({ kind: 'load_loss', truck: truck('T2'), from: inEast[0], to: inEast[1], ts: NIGHT + 3_600_000 });
    const all = { from: NIGHT, to: NIGHT + 7_200_000, limit: 500 };
    const jurisdictionsOf = (hotspots: { jurisdiction: string | null }[]) => [...new Set(hotspots.map((h) => h.jurisdiction))];
    expect(jurisdictionsOf(spillage.hotspots({ ...all, kind: 'load_loss' }))).toEqual(['EAST']);
    expect(jurisdictionsOf(spillage.hotspots({ ...all, kind: 'uncovered' }))).toEqual(['WEST']);
    expect(jurisdictionsOf(spillage.hotspots({ ...all, jurisdictions: ['WEST'] }))).toEqual(['WEST']);
    expect(spillage.hotspots({ ...all, jurisdictions: ['WEST', 'EAST'] })).toEqual(spillage.hotspots(all));
    expect(spillage.hotspots({ ...all, jurisdictions: [] })).toEqual([]);
    expect(jurisdictionsOf(spillage.hotspots({ ...all, to: NIGHT + 60_000 }))).toEqual(['WEST']);
    expect(spillage.hotspots({ ...all, from: NIGHT + 7_200_001, to: NIGHT + 9_000_000 })).toEqual([]);
    expect(spillage.hotspots({ ...all, limit: 2 })).toEqual(spillage.hotspots(all).slice(0, 2));
  });

  it('rounds a cell\'s metres half away from zero on both backends', async () => {
    const { spillage } = await world();
    // Pieces of 0.2, 0.3 and 2 m in one cell: 2.5 m, which PostgreSQL's round() of a double
    // precision takes to the even 2 (SQLite's round() to 3).
    const insert = db!.statement("INSERT INTO spillage (truck_id, kind, ts, cell, lon, lat, metres, jurisdiction_id) VALUES (?, 'uncovered', ?, 'c1', 120.58, 31.3, ?, 'WEST')");
    insert.run('T1', NIGHT, 0.2);
    insert.run('T2', NIGHT, 0.3);
    insert.run('T1', NIGHT + 1000, 2);
    expect(spillage.hotspots({ from: NIGHT, to: NIGHT + 60_000, limit: 10 }).map((h) => [h.cell, h.uncovered_m, h.trucks])).toEqual([['c1', 3, 2]]);
  });
});

// A synthetic city for the rules benchmark: N muck trucks, each with a permit whose route is a
// 200-vertex road-like polyline, four jurisdictions, disposal and construction sites, and every
// truck's GPS device sharing one secret hash (so provisioning 10,000 devices takes no time).
import seedrandom from 'seedrandom';
import { RegistryDb } from '../../services/registry/db.ts';
import { DeviceStore } from '../../services/registry/devices.ts';
import { ENTITIES } from '../../services/registry/entities.ts';
import { EntityStore } from '../../services/registry/entity-store.ts';
import { hashSecret } from '../../services/broker/secrets.ts';

export const CENTRE = [120.6, 31.3] as const;
/** Half-size of the city in degrees (about 40 km across). */
const SPAN = 0.2;
export const ROUTE_VERTICES = 200;
export const SECRET = 'bench-secret';

export interface BenchCity {
  routes: [number, number][][];
  deviceOf: (i: number) => string;
}

const square = (lon: number, lat: number, half: number) => ({
  type: 'Polygon',
  coordinates: [[[lon - half, lat - half], [lon + half, lat - half], [lon + half, lat + half], [lon - half, lat + half], [lon - half, lat - half]]],
});

/** Writes the city into the registry file; returns each truck's route. */
export async function writeBenchCity(file: string, trucks: number, progress: (message: string) => void): Promise<BenchCity> {
  const random = seedrandom('bench-rules');
  const db = new RegistryDb(file);
  db.open();
  const entities = new EntityStore(db);
  const devices = new DeviceStore(db);
  const deviceOf = (i: number) => `GPS-${String(i).padStart(5, '0')}`;
  const hash = await hashSecret(SECRET);
  const now = new Date().toISOString();
  devices.importCredentials(Array.from({ length: trucks }, (_, i) => ({ id: deviceOf(i), class: 'trucks' as const, secret_hash: hash, enabled: true, created_at: now, updated_at: now })), []);
  const routes: [number, number][][] = [];
  db.transaction(() => {
    const create = (name: keyof typeof ENTITIES, id: string, input: Record<string, unknown>) => entities.create(ENTITIES[name], id, input);
    for (const [i, [w, s]] of [[CENTRE[0] - SPAN, CENTRE[1] - SPAN], [CENTRE[0], CENTRE[1] - SPAN], [CENTRE[0] - SPAN, CENTRE[1]], [CENTRE[0], CENTRE[1]]].entries()) {
      create('jurisdictions', `J${i}`, { name: `区${i}`, enforcement_unit: `中队${i}`, geometry: { type: 'Polygon', coordinates: [[[w!, s!], [w! + SPAN, s!], [w! + SPAN, s! + SPAN], [w!, s! + SPAN], [w!, s!]]] }, neighbour_ids: [] });
    }
    create('companies', 'C1', { name: '运输公司' });
    const sites = Math.max(2, Math.round(trucks / 100));
    for (let i = 0; i < sites; i++) {
      const at = () => [CENTRE[0] + (random() - 0.5) * 1.8 * SPAN, CENTRE[1] + (random() - 0.5) * 1.8 * SPAN] as const;
      const [cx, cy] = at();
      const [dx, dy] = at();
      create('sites', `S${i}`, { kind: 'construction', name: `工地${i}`, geometry: square(cx, cy, 0.002) });
      create('sites', `D${i}`, { kind: 'disposal', name: `消纳场${i}`, geometry: square(dx, dy, 0.003) });
    }
    for (let i = 0; i < trucks; i++) {
      const site = i % sites;
      const from = (entities.get(ENTITIES.sites, `S${site}`)!.geometry as { coordinates: number[][][] }).coordinates[0]![0]!;
      const to = (entities.get(ENTITIES.sites, `D${site}`)!.geometry as { coordinates: number[][][] }).coordinates[0]![0]!;
      // A road-like line: the straight line bent by a few hundred metres at every vertex.
      const route: [number, number][] = [];
      for (let v = 0; v < ROUTE_VERTICES; v++) {
        const f = v / (ROUTE_VERTICES - 1);
        const bend = v === 0 || v === ROUTE_VERTICES - 1 ? 0 : (random() - 0.5) * 0.004;
        route.push([from[0]! + (to[0]! - from[0]!) * f + bend, from[1]! + (to[1]! - from[1]!) * f - bend]);
      }
      routes.push(route);
      create('trucks', `T${i}`, { plate: `苏E·${String(i).padStart(5, '0')}`, company_id: 'C1', fleet: 'muck', rated_gross_kg: 31_000, device_id: deviceOf(i) });
      create('permits', `P${i}`, {
        number: `PZ-${i}`,
        site_id: `S${site}`,
        disposal_site_id: `D${site}`,
        truck_ids: [`T${i}`],
        route: { type: 'LineString', coordinates: route },
        corridor_m: 50,
        valid_from: '2020-01-01',
        valid_to: '2099-12-31',
        time_windows: [],
        status: 'active',
      });
      if ((i + 1) % 2000 === 0) progress(`registry: ${i + 1}/${trucks} trucks and permits`);
    }
  });
  db.close();
  return { routes, deviceOf };
}

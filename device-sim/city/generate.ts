// A simulated city, deterministic from a seed and its options: roads, two districts that are also
// two neighbouring jurisdictions (west and east of the river of the layout), communities with
// drop-off windows, bins of the four categories, construction sites, disposal sites, transfer
// stations and plants with weighbridges, haulage and sanitation companies, muck and collection
// trucks, and permits whose routes follow the roads. Written as a registry bundle
// (docs/registry-bundle.md) plus the road network the devices drive on.
import { Random } from './random.ts';
import { binDevEui, binSensorModel } from './lorawan.ts';
import { SIM_TERMINAL_MODEL, terminalPhone } from './terminals.ts';
import { RoadNetwork, round, type RoadNetworkData, type RoadNode } from './roads.ts';
import { addDays } from '../../services/contract/local-time.ts';

export interface CityOptions {
  seed: string | number;
  /** Muck trucks (渣土车). */
  trucks: number;
  /** Collection trucks (环卫车) for household waste. */
  collectionTrucks: number;
  bins: number;
  constructionSites: number;
  /** First day of the permits' validity, YYYY-MM-DD (permits run 120 days). */
  startDate: string;
  /** Hauling windows for every permit instead of the usual mix of night and day windows. */
  permitWindows?: { from: string; to: string }[];
}

export const DEFAULT_CITY: CityOptions = { seed: 1, trucks: 40, collectionTrucks: 10, bins: 400, constructionSites: 8, startDate: '2026-11-01' };

export interface City {
  options: CityOptions;
  /** A registry bundle: format, version, crs, and one array per collection. */
  bundle: { format: 'waste-registry-bundle'; version: 1; crs: 'WGS-84'; [collection: string]: unknown };
  roads: RoadNetworkData;
}

type Item = Record<string, unknown> & { id: string };
type Polygon = { type: 'Polygon'; coordinates: [number, number][][] };

/** Centre of Suzhou's old town; the grid's south-west corner lies south-west of it. */
const ORIGIN: [number, number] = [120.56, 31.26];
const SPACING_M = 500;
const CATEGORIES = ['kitchen', 'recyclable', 'hazardous', 'other'] as const;
/** Share of each category among street and community bins (hazardous bins are few). */
const CATEGORY_WEIGHTS = [0.35, 0.25, 0.05, 0.35];
const PROVINCE_LETTERS = 'ABCDEFGHJKLMNPQRSTUVWXYZ';

function square(ruler: RoadNetwork['ruler'], centre: [number, number], sideM: number): Polygon {
  const h = sideM / 2;
  const corners: [number, number][] = [
    [-h, -h],
    [h, -h],
    [h, h],
    [-h, h],
    [-h, -h],
  ];
  return { type: 'Polygon', coordinates: [corners.map(([e, n]) => ruler.offset(centre, e, n).map(round) as [number, number])] };
}

export function generateCity(options: Partial<CityOptions> = {}): City {
  const o: CityOptions = { ...DEFAULT_CITY, ...options };
  const random = new Random(o.seed);
  // The grid grows with the number of bins and sites; at least 12 x 9 blocks.
  const blocks = Math.max(108, Math.ceil(o.bins / 4), o.constructionSites * 6);
  const cols = Math.max(12, Math.ceil(Math.sqrt(blocks * 1.33)));
  const rows = Math.max(9, Math.ceil(blocks / cols));
  const roads = RoadNetwork.generate(random, { origin: ORIGIN, cols: cols + 1, rows: rows + 1, spacingM: SPACING_M });
  const ruler = roads.ruler;
  const cornerOf = (col: number, row: number): [number, number] => ruler.offset(ORIGIN, col * SPACING_M, row * SPACING_M) as [number, number];
  const blockCentre = (col: number, row: number): [number, number] => cornerOf(col + 0.5, row + 0.5);
  const onArterial = (n: RoadNode) => n.col % 3 === 0 || n.row % 3 === 0;
  const nearestArterial = (p: [number, number]): RoadNode => {
    const candidates = roads.data.nodes.filter(onArterial);
    return candidates.reduce((best, n) => (ruler.distance(p, [n.lon, n.lat]) < ruler.distance(p, [best.lon, best.lat]) ? n : best));
  };

  // Two districts, which are also the two jurisdictions, split west/east; the boundary is shared.
  const split = Math.floor(cols / 2);
  const halves = [
    { id: 'west', name: '西城区', unit: '西城执法中队', from: 0, to: split },
    { id: 'east', name: '东城区', unit: '东城执法中队', from: split, to: cols },
  ];
  const rect = (fromCol: number, toCol: number): Polygon => {
    const [w, s] = cornerOf(fromCol, 0).map(round) as [number, number];
    const [e, n] = cornerOf(toCol, rows).map(round) as [number, number];
    return { type: 'Polygon', coordinates: [[[w, s], [e, s], [e, n], [w, n], [w, s]]] };
  };
  const districts: Item[] = halves.map((h) => ({ id: `district-${h.id}`, name: h.name, geometry: rect(h.from, h.to) }));
  const jurisdictions: Item[] = halves.map((h) => ({
    id: `jurisdiction-${h.id}`,
    name: h.name.replace('区', '街道'),
    enforcement_unit: h.unit,
    geometry: rect(h.from, h.to),
    neighbour_ids: [`jurisdiction-${h.id === 'west' ? 'east' : 'west'}`],
  }));
  const districtOf = (col: number) => `district-${col < split ? 'west' : 'east'}`;

  // Blocks: the outer ring holds sites and plants, the inside holds communities.
  const innerBlocks: [number, number][] = [];
  for (let row = 1; row < rows - 1; row++) for (let col = 1; col < cols - 1; col++) innerBlocks.push([col, row]);
  const shuffled = innerBlocks.map((b) => [random.next(), b] as const).sort((a, b) => a[0] - b[0]).map(([, b]) => b);
  const siteBlocks = shuffled.slice(0, o.constructionSites);
  const communityBlocks = shuffled.slice(o.constructionSites);

  const devices: Item[] = [];
  const communities: Item[] = communityBlocks.map(([col, row], i) => ({
    id: `community-${String(i + 1).padStart(3, '0')}`,
    name: `${random.pick(['平江', '沧浪', '金阊', '双塔', '吴门', '观前', '桃花坞', '葑门'])}${i + 1}社区`,
    district_id: districtOf(col),
    geometry: square(ruler, blockCentre(col, row), SPACING_M * 0.7),
    dropoff_windows: random.chance(0.8) ? [{ from: '07:00', to: '09:00' }, { from: '18:00', to: '20:00' }] : [{ from: '06:30', to: '09:30' }, { from: '17:30', to: '21:00' }],
    col,
    row,
  }));

  const bins: Item[] = [];
  for (let i = 0; i < o.bins; i++) {
    const community = communities[i % communities.length]!;
    const roll = random.next();
    let acc = 0;
    const category = CATEGORIES[CATEGORY_WEIGHTS.findIndex((w) => (acc += w) > roll)] ?? 'other';
    const centre = blockCentre(community.col as number, community.row as number);
    const location = ruler.offset(centre, random.between(-0.3, 0.3) * SPACING_M, random.between(-0.3, 0.3) * SPACING_M).map(round);
    const deviceId = `BIN-${String(i + 1).padStart(5, '0')}`;
    // Every bin sensor is also a LoRaWAN end device (docs/simulator.md "Bins over LoRaWAN"), whichever
    // transport a run uses; DevEUI and model come from their own derivation, not from `random`.
    const model = binSensorModel(i + 1);
    devices.push({ id: deviceId, class: 'bins', lorawan_dev_eui: binDevEui(o.seed, i + 1), ...(model === null ? {} : { lorawan_sensor: model }) });
    bins.push({ id: `bin-${String(i + 1).padStart(5, '0')}`, category, community_id: community.id, depth_mm: random.pick([1000, 1100, 1200, 1300]), device_id: deviceId, location: { type: 'Point', coordinates: location } });
  }

  // Sites: construction sites inside; disposal sites, transfer stations and plants on the edge.
  const sites: Item[] = [];
  const weighbridges: Item[] = [];
  const addSite = (id: string, kind: string, name: string, centre: [number, number], sideM: number) => {
    const [lon] = centre;
    const col = Math.floor(ruler.distance(ORIGIN, [lon, ORIGIN[1]]) / SPACING_M);
    sites.push({ id, kind, name, district_id: districtOf(Math.min(col, cols - 1)), geometry: square(ruler, centre, sideM) });
    const deviceId = `WB-${id}`;
    devices.push({ id: deviceId, class: 'scales' });
    weighbridges.push({ id: `wb-${id}`, site_id: id, device_id: deviceId });
  };
  siteBlocks.forEach(([col, row], i) => addSite(`site-${String(i + 1).padStart(3, '0')}`, 'construction', `工地${i + 1}号`, blockCentre(col, row), SPACING_M * 0.4));
  const edge = (col: number, row: number): [number, number] => blockCentre(col, row);
  const disposal = [
    ['dump-north', '北郊消纳场', edge(Math.floor(cols * 0.3), rows - 1)],
    ['dump-south', '南郊消纳场', edge(Math.floor(cols * 0.7), 0)],
  ] as const;
  for (const [id, name, centre] of disposal) addSite(id, 'disposal', name, centre, SPACING_M * 0.6);
  addSite('transfer-west', 'transfer', '西部转运站', edge(0, Math.floor(rows / 2)), SPACING_M * 0.4);
  addSite('transfer-east', 'transfer', '东部转运站', edge(cols - 1, Math.floor(rows / 2)), SPACING_M * 0.4);
  addSite('plant-kitchen', 'plant', '餐厨垃圾处理厂', edge(cols - 1, rows - 1), SPACING_M * 0.6);
  addSite('plant-incineration', 'plant', '垃圾焚烧发电厂', edge(0, 0), SPACING_M * 0.6);

  // Companies and trucks.
  const plates = new Set<string>();
  const plate = (prefix: string): string => {
    for (;;) {
      const body = `${random.pick([...PROVINCE_LETTERS])}${String(random.int(0, 9999)).padStart(4, '0')}`;
      const candidate = `苏E·${prefix}${body}`.slice(0, 9);
      if (!plates.has(candidate)) {
        plates.add(candidate);
        return candidate;
      }
    }
  };
  const haulers = Array.from({ length: Math.max(1, Math.ceil(o.trucks / 40)) }, (_, i) => ({ id: `company-haul-${i + 1}`, name: `苏州第${i + 1}渣土运输有限公司`, contact: `0512-6${String(random.int(0, 9_999_999)).padStart(7, '0')}` }));
  const sanitation = [{ id: 'company-sanitation', name: '苏州市环境卫生管理处', contact: '0512-65000000' }];
  const trucks: Item[] = [];
  // Every truck's GPS unit is also a JT/T 808 terminal (docs/simulator.md "Trucks over JT/T 808"):
  // its phone number and model are in the bundle whichever protocol a run uses; the numbers come
  // from their own derivation, not from `random`, so the rest of the city is as it was before.
  const addTruck = (id: string, companyId: string, fleet: 'muck' | 'collection', index: number, rated: number) => {
    const deviceId = `GPS-${id}`;
    devices.push({ id: deviceId, class: 'trucks', jt808_phone: terminalPhone(o.seed, fleet, index), jt808_model: SIM_TERMINAL_MODEL });
    trucks.push({ id, plate: plate(''), company_id: companyId, fleet, rated_gross_kg: rated, device_id: deviceId });
  };
  for (let i = 0; i < o.trucks; i++) addTruck(`truck-${String(i + 1).padStart(4, '0')}`, haulers[i % haulers.length]!.id, 'muck', i + 1, random.pick([25_000, 31_000, 31_000, 40_000]));
  for (let i = 0; i < o.collectionTrucks; i++) addTruck(`collector-${String(i + 1).padStart(3, '0')}`, 'company-sanitation', 'collection', i + 1, random.pick([8_000, 12_000, 18_000]));

  // Permits: each construction site to a disposal site, along the roads, mostly for night hauling
  // (some projects get a daytime window). The route runs from the site's yard over the nearest
  // arterial roads into the disposal site's yard. One truck in twenty has no permit at all: those
  // stand idle unless the simulator sends one out without a permit.
  const muck = trucks.filter((t) => t.fleet === 'muck');
  const unpermitted = muck.length >= 10 ? Math.max(1, Math.round(muck.length * 0.05)) : 0;
  const permitted = muck.slice(0, muck.length - unpermitted);
  const permits: Item[] = siteBlocks.map(([col, row], i) => {
    const siteId = `site-${String(i + 1).padStart(3, '0')}`;
    const [dumpId, , dumpCentre] = disposal[i % disposal.length]!;
    const siteCentre = blockCentre(col, row);
    const path = roads.route(nearestArterial(siteCentre).id, nearestArterial(dumpCentre).id);
    const coordinates = [siteCentre.map(round), ...path.map((n) => [n.lon, n.lat]), [...dumpCentre].map(round)];
    const assigned = permitted.filter((_, k) => k % siteBlocks.length === i).map((t) => t.id);
    const window = random.next();
    return {
      id: `permit-${String(i + 1).padStart(4, '0')}`,
      number: `苏渣处〔${o.startDate.slice(0, 4)}〕${String(i + 1).padStart(4, '0')}号`,
      site_id: siteId,
      disposal_site_id: dumpId,
      truck_ids: assigned.length > 0 ? assigned : [permitted[i % permitted.length]!.id],
      route: { type: 'LineString', coordinates },
      corridor_m: 50,
      valid_from: o.startDate,
      valid_to: addDays(o.startDate, 119),
      time_windows: o.permitWindows ?? [window < 0.6 ? { from: '21:00', to: '05:00' } : window < 0.8 ? { from: '22:00', to: '06:00' } : { from: '09:00', to: '16:00' }],
      status: 'active',
    };
  });

  const strip = (items: Item[]) => items.map(({ col: _col, row: _row, ...rest }) => rest);
  return {
    options: o,
    bundle: {
      format: 'waste-registry-bundle',
      version: 1,
      crs: 'WGS-84',
      devices,
      companies: [...haulers, ...sanitation],
      districts,
      jurisdictions,
      communities: strip(communities),
      sites,
      weighbridges,
      trucks,
      bins,
      permits,
    },
    roads: roads.data,
  };
}

// The separation-rate job against a real InfluxDB: hand-built weighbridge tickets for three
// communities in two districts, figures worked out by hand, both denominators, a late ticket
// changing a past day, the alerts for scopes below target, and the API's rates, trends, rankings;
// with the registry on SQLite and on PostgreSQL, each with an InfluxDB of its own.
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { buildApp } from '../../../services/api/app.ts';
import { sortingSchema } from '../../../services/config/schema.ts';
import type { AlertType } from '../../../services/contract/alerts.ts';
import type { Finding } from '../../../services/contract/findings.ts';
import { HOUR } from '../../../services/contract/local-time.ts';
import type { WeighTicket } from '../../../services/rules/types.ts';
import { TelemetryReader } from '../../../services/influx/reader.ts';
import { readingToLine } from '../../../services/ingest/points.ts';
import { createLogger } from '../../../services/log.ts';
import { CityIndex } from '../../../services/registry/city-index.ts';
import { DeviceStore } from '../../../services/registry/devices.ts';
import { ENTITIES } from '../../../services/registry/entities.ts';
import type { EntityStore } from '../../../services/registry/entity-store.ts';
import type { RegistryDb } from '../../../services/registry/db.ts';
import { TokenStore } from '../../../services/registry/tokens.ts';
import { ranking } from '../../../services/sorting/reports.ts';
import { SortingService } from '../../../services/sorting/sorting-service.ts';
import { SortingStore, type SeparationFigure } from '../../../services/sorting/sorting-store.ts';
import { alertDeps } from '../../helpers/api.ts';
import { startTestInfluxd, type TestInfluxd } from '../../helpers/influxd.ts';
import { BACKENDS, registryLocations } from '../../helpers/registry-backends.ts';
import { worldRegistry } from '../../helpers/rules-world.ts';

/** Local (China Standard Time) instant on a June 2026 day. */
const at = (day: string, hhmm: string) => Date.parse(`2026-06-${day}T${hhmm}:00+08:00`);
let ticketNo = 0;
function ticket(ts: number, category: WeighTicket['category'], netKg: number, origin?: string, direction: 'in' | 'out' = 'in'): WeighTicket {
  return { kind: 'ticket', deviceId: 'SCALE-B', ts, ticket_id: `T${++ticketNo}`, plate: '苏E·H0001', gross_kg: netKg + 8000, tare_kg: 8000, net_kg: netKg, category, direction, ...(origin ? { origin } : {}) };
}

// 2 June: CM-1 (district D-1) kitchen 300, other 700, recyclable 100, hazardous 10;
// CM-3 (D-1) kitchen 100, other 900; CM-2 (D-2) kitchen 500, other 500, recyclable 250;
// 1,000 kg kitchen waste of unknown origin (the city only); and tickets that do not count.
const JUNE_2 = [
  ticket(at('02', '09:40'), 'kitchen', 200, 'CM-1'),
  ticket(at('02', '20:50'), 'kitchen', 100, 'CM-1'),
  ticket(at('02', '09:45'), 'other', 700, 'CM-1'),
  ticket(at('02', '10:10'), 'recyclable', 100, 'CM-1'),
  ticket(at('02', '10:40'), 'hazardous', 10, 'CM-1'),
  ticket(at('02', '00:00'), 'kitchen', 100, 'CM-3'),
  ticket(at('02', '23:59'), 'other', 900, 'CM-3'),
  ticket(at('02', '09:41'), 'kitchen', 500, 'CM-2'),
  ticket(at('02', '09:46'), 'other', 500, 'CM-2'),
  ticket(at('02', '10:11'), 'recyclable', 250, 'CM-2'),
  ticket(at('02', '12:00'), 'kitchen', 1000),
  ticket(at('02', '13:00'), 'construction', 20_000, 'CM-1'),
  ticket(at('02', '14:00'), 'kitchen', 5000, 'CM-1', 'out'),
];
// 1 June: CM-1 kitchen 100, other 100. And 3 June just after midnight: not 2 June's.
const OTHER_DAYS = [ticket(at('01', '09:40'), 'kitchen', 100, 'CM-1'), ticket(at('01', '09:45'), 'other', 100, 'CM-1'), ticket(at('03', '00:00'), 'other', 4000, 'CM-3')];

const now = at('05', '12:00');
const byScope = (figures: SeparationFigure[]) => Object.fromEntries(figures.map((f) => [f.scope_id, f]));

describe.each(BACKENDS)('sorting on %s', (backend) => {
  const location = registryLocations(backend);
  let influxd: TestInfluxd;
  let db: RegistryDb;
  let entities: EntityStore;
  let sorting: SortingService;
  const lines: string[] = [];
  /** When the tests began: the services' clock runs on from `now` from then. */
  let started = 0;

  beforeAll(async () => {
    started = Date.now();
    influxd = await startTestInfluxd();
    ({ db, entities } = await worldRegistry({}, await location()));
    entities.create(ENTITIES.communities, 'CM-3', {
      name: '新民社区',
      district_id: 'D-1',
      geometry: { type: 'Polygon', coordinates: [[[120.575, 31.325], [120.585, 31.325], [120.585, 31.335], [120.575, 31.335], [120.575, 31.325]]] },
    });
    const store = influxd.store();
    await store.ensureDatabase();
    await store.write([...JUNE_2, ...OTHER_DAYS].map(readingToLine).join('\n'));
    const deps = alertDeps(db);
    const config = sortingSchema.parse({ lateTicketSettleS: 1 });
    sorting = new SortingService({
      config,
      store: new SortingStore(db, config),
      entities,
      reader: new TelemetryReader(store),
      city: new CityIndex(db, entities),
      writeLines: async (text) => {
        lines.push(text);
        await store.write(text);
      },
      onFinding: (f) => deps.alerts.onFinding(f),
      log: createLogger('silent'),
      // Running on from 5 June noon.
      clock: () => now + (Date.now() - started),
    });
    alerts = deps.alerts;
  }, 30_000);
  let alerts: ReturnType<typeof alertDeps>['alerts'];

  afterAll(async () => {
    await sorting?.stop();
    db?.close();
    await influxd?.cleanup();
  });

  describe('separation rate', () => {
    it('counts a day per community, district and city, kitchen / (kitchen + other) by default', async () => {
      expect(await sorting.computeDays(['2026-06-01', '2026-06-02'])).toEqual([
        { day: '2026-06-01', tickets: 2 },
        { day: '2026-06-02', tickets: 13 },
      ]);
      const day = byScope(sorting.store.figures('2026-06-02', 'day'));
      expect(day['CM-1']).toMatchObject({ scope: 'community', district_id: 'D-1', kitchen_kg: 300, other_kg: 700, recyclable_kg: 100, hazardous_kg: 10, rate: 0.3, target: 0.3, below_target: false });
      expect(day['CM-3']).toMatchObject({ kitchen_kg: 100, other_kg: 900, rate: 0.1, below_target: true });
      expect(day['CM-2']).toMatchObject({ district_id: 'D-2', rate: 0.5 });
      expect(day['D-1']).toMatchObject({ scope: 'district', kitchen_kg: 400, other_kg: 1600, rate: 0.2, below_target: true });
      expect(day['D-2']).toMatchObject({ rate: 0.5, below_target: false });
      // The city: 400 + 500 + 1,000 kitchen over that plus 2,100 other.
      expect(day.city).toMatchObject({ scope: 'city', kitchen_kg: 1900, other_kg: 2100, rate: 0.475 });
    });

    it('works the rolling 7 days from the days counted', () => {
      const week = byScope(sorting.store.figures('2026-06-02', '7d'));
      expect(week['CM-1']).toMatchObject({ window: '7d', kitchen_kg: 400, other_kg: 800, rate: 0.3333, days_counted: 2 });
    });

    it('divides by all four categories when so configured', () => {
      const allFour = new SortingStore(db, sortingSchema.parse({ denominator: 'all_four', targets: 'district:D-2=0.45,community:CM-1=0.25' }));
      const day = byScope(allFour.figures('2026-06-02', 'day'));
      expect(day['CM-1']).toMatchObject({ rate: 0.2703, target: 0.25, below_target: false });
      expect(day['CM-2']).toMatchObject({ rate: 0.4, target: 0.45, below_target: true });
      // The city: 1,900 kitchen over 1,900 + 350 + 10 + 2,100.
      expect(day.city).toMatchObject({ rate: 0.4358 });
    });

    it('writes the figures to the separation_rate measurement', async () => {
      const rows = await influxd.store().query("SELECT rate, kitchen_kg, below_target FROM separation_rate WHERE scope_id = $id AND \"window\" = 'day'", { id: 'CM-3' });
      expect(rows[0]!.values).toEqual([[at('02', '00:00'), 0.1, 100, true]]);
    });

    it('raises separation_below_target for the community and the district below target, routed by place', async () => {
      await alerts.recorded();
      const raised = alerts.store.list({ limit: 50, offset: 0, types: ['separation_below_target'] }).items;
      expect(raised.map((a) => [a.subject.kind, a.subject.id, a.jurisdictions, a.started_at, a.ended_at]).sort()).toEqual([
        ['community', 'CM-3', ['WEST'], new Date(at('02', '00:00')).toISOString(), new Date(at('03', '00:00')).toISOString()],
        ['district', 'D-1', ['WEST'], new Date(at('02', '00:00')).toISOString(), new Date(at('03', '00:00')).toISOString()],
      ]);
      expect(raised.find((a) => a.subject.id === 'CM-3')!.detail).toMatchObject({ day: '2026-06-02', rate: 0.1, target: 0.3, district_id: 'D-1' });
    });

    it('counts a past day again when a late ticket for it arrives', async () => {
      const late = ticket(at('02', '21:00'), 'kitchen', 900, 'CM-3');
      await influxd.store().write(readingToLine(late));
      sorting.start();
      sorting.consume([late]);
      await vi.waitFor(() => expect(byScope(sorting.store.figures('2026-06-02', 'day'))['CM-3']).toMatchObject({ kitchen_kg: 1000, rate: 0.5263 }), { timeout: 15_000, interval: 200 });
      await vi.waitFor(async () => {
        const rows = await influxd.store().query("SELECT rate FROM separation_rate WHERE scope_id = $id AND \"window\" = 'day'", { id: 'CM-3' });
        expect(rows[0]!.values).toEqual([[at('02', '00:00'), 0.5263]]);
      });
    }, 20_000);
  });

  describe('sorting API', () => {
    it('serves rates, trends and rankings as JSON and CSV', async () => {
      const tokens = new TokenStore(db);
      const token = tokens.create({ name: 'ops', role: 'operator' }).token;
      const app = await buildApp({ db, devices: new DeviceStore(db), entities, tokens, rateLimitPerMinute: 1000, reader: new TelemetryReader(influxd.store()), ...alertDeps(db), sorting, forecastOf: () => null });
      const get = (url: string) => app.inject({ method: 'GET', url: `/api/v1${url}`, headers: { authorization: `Bearer ${token}` } });
      try {
        const rates = await get('/sorting/rates?day=2026-06-02&scope=district');
        // D-1 with the late ticket: 1,300 kitchen over 1,300 + 1,600 other.
        expect(rates.json().items.map((f: SeparationFigure) => [f.scope_id, f.rate])).toEqual([['D-1', 0.4483], ['D-2', 0.5]]);
        const csv = await get('/sorting/rates?day=2026-06-02&scope=community&format=csv');
        expect(csv.headers['content-type']).toContain('text/csv');
        expect(csv.body.replace('\uFEFF', '').split('\r\n').slice(0, 2)).toEqual([
          'day,window,scope,scope_id,district_id,kitchen_kg,recyclable_kg,hazardous_kg,other_kg,rate,target,below_target,days_counted',
          '2026-06-02,day,community,CM-1,D-1,300,100,10,700,0.3,0.3,false,1',
        ]);

        // June so far (1, 2 June, and 4 and 5 June counted by the job at start, without tickets) against
        // May and June 2025 (nothing counted): no comparison, so no verdict.
        const trend = (await get('/sorting/trends?month=2026-06&scope=district&id=D-1')).json();
        expect(trend).toMatchObject({ month: { month: '2026-06', days_counted: 4, kg: { kitchen: 1400, other: 1700, recyclable: 100, hazardous: 10 } }, month_over_month: { kitchen: null }, three_up_one_down: { month_over_month: null } });

        const ranking = (await get('/sorting/rankings?scope=community&from=2026-06-01&to=2026-06-02')).json();
        expect(ranking.items.map((r: { rank: number; scope_id: string; separation_rate: number }) => [r.rank, r.scope_id, r.separation_rate])).toEqual([
          [1, 'CM-3', 0.5263],
          [2, 'CM-2', 0.5],
          [3, 'CM-1', 0.3333],
        ]);
        expect((await get('/sorting/rankings?scope=district&by=overflow_hours&format=csv')).body).toContain('rank,scope,scope_id');
        expect((await get('/sorting/trends?scope=district')).statusCode).toBe(400);
      } finally {
        await app.close();
      }
    });
  });

  describe('counting while tickets are still on their way to InfluxDB', () => {
    const counter = (delivered: () => Promise<boolean>) => {
      const config = sortingSchema.parse({});
      return new SortingService({
        config,
        store: new SortingStore(db, config),
        entities,
        reader: new TelemetryReader(influxd.store()),
        delivered,
        city: new CityIndex(db, entities),
        writeLines: async () => {},
        onFinding: () => {},
        log: createLogger('silent'),
        clock: () => now,
      });
    };

    it('waits until what the service accepted is delivered, and refuses to count short when it is not', async () => {
      // 3 June: one ticket stored, and one the service has accepted that the spool delivers 300 ms later.
      await influxd.store().write(readingToLine(ticket(at('03', '10:00'), 'kitchen', 300, 'CM-2')));
      const delivered = vi.fn(async () => {
        await new Promise((resolve) => setTimeout(resolve, 300));
        await influxd.store().write(readingToLine(ticket(at('03', '11:00'), 'other', 300, 'CM-2')));
        return true;
      });
      expect(await counter(delivered).computeDays(['2026-06-03'])).toEqual([{ day: '2026-06-03', tickets: 3 }]);
      expect(delivered).toHaveBeenCalledOnce();
      await expect(counter(async () => false).computeDays(['2026-06-03'])).rejects.toThrow(/not all in InfluxDB/);
    });

    it('keeps a day owed a count until a count of it succeeds, and owes it another for a ticket arriving during the count', async () => {
      const owed = () => new SortingStore(db, sortingSchema.parse({})).owedDays().map((d) => d.day);
      // 4 June, counted at start by the job, and 31 May, never counted: both owed once a ticket comes
      // (today, 5 June, is the job's to count).
      const failing = counter(async () => false);
      failing.consume([ticket(at('04', '10:00'), 'kitchen', 50, 'CM-1'), ticket(at('04', '11:00'), 'kitchen', 50, 'CM-1'), ticket(at('05', '09:00'), 'kitchen', 50, 'CM-1')]);
      failing.consume([ticket(Date.parse('2026-05-31T10:00:00+08:00'), 'other', 50, 'CM-1')]);
      expect(owed()).toEqual(['2026-05-31', '2026-06-04']);
      await expect(failing.computeDays(['2026-05-31', '2026-06-04'])).rejects.toThrow(/not all in InfluxDB/);
      expect(owed()).toEqual(['2026-05-31', '2026-06-04']);

      // A ticket for 4 June while its count waits for the spool: that count may not see it.
      const during: SortingService = counter(async () => {
        during.consume([ticket(at('04', '12:00'), 'other', 50, 'CM-1')]);
        return true;
      });
      await during.computeDays(['2026-05-31', '2026-06-04']);
      expect(owed()).toEqual(['2026-06-04']);
      await counter(async () => true).computeDays(['2026-06-04']);
      expect(owed()).toEqual([]);
    });
  });

  describe('rankings by the bins\' alerts', () => {
    const binAlert = (type: AlertType, bin: string, community: string, district: string, startedAt: number, endedAt: number | null): Finding => ({
      type,
      severity: 'warning',
      subject: { kind: 'bin', id: bin, deviceId: null },
      startedAt,
      endedAt,
      location: null,
      jurisdictions: [],
      evidence: [],
      permit: null,
      detail: { community_id: community, district_id: district },
    });

    it('adds up overflow hours within the period and missed collections per community and district', async () => {
      // 10 and 11 June; asked at 12 June 05:00.
      const fromMs = Date.parse('2026-06-10T00:00:00+08:00');
      const toMs = Date.parse('2026-06-12T00:00:00+08:00');
      const period = { from: '2026-06-10', to: '2026-06-11', fromMs, toMs, now: toMs + 5 * HOUR };
      // From 2 h before the period to 3 h into it; a bin overflowing since an hour before its end, still;
      // two missed collections; and an overflow after the period, which does not count.
      alerts.onFinding(binAlert('overflow', 'BIN-1', 'CM-1', 'D-1', fromMs - 2 * HOUR, fromMs + 3 * HOUR));
      alerts.onFinding(binAlert('overflow', 'BIN-3', 'CM-2', 'D-2', toMs - HOUR, null));
      alerts.onFinding(binAlert('missed_collection', 'BIN-1', 'CM-1', 'D-1', fromMs + 10 * HOUR, fromMs + 11 * HOUR));
      alerts.onFinding(binAlert('missed_collection', 'BIN-2', 'CM-1', 'D-1', fromMs + 30 * HOUR, fromMs + 31 * HOUR));
      alerts.onFinding(binAlert('overflow', 'BIN-2', 'CM-1', 'D-1', toMs + HOUR, toMs + 2 * HOUR));
      await alerts.recorded();
      const store = new SortingStore(db, sortingSchema.parse({}));
      const ranked = (scope: 'community' | 'district', by: 'overflow_hours' | 'missed_collections', scopeIds: string[]) =>
        ranking(store, db, { scope, by, scopeIds, ...period }).map((r) => [r.rank, r.scope_id, r.overflow_hours, r.missed_collections]);
      expect(ranked('community', 'overflow_hours', ['CM-1', 'CM-2', 'CM-3'])).toEqual([
        [1, 'CM-3', 0, 0],
        [2, 'CM-2', 1, 0],
        [3, 'CM-1', 3, 2],
      ]);
      expect(ranked('district', 'missed_collections', ['D-1', 'D-2'])).toEqual([
        [1, 'D-2', 1, 0],
        [2, 'D-1', 3, 2],
      ]);
    });
  });
});

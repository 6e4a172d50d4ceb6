// Each truck rule on hand-built tracks with known answers, through the real alert service: inside
// and outside the corridor, jitter at its edge, an outlier, a tunnel gap, late, duplicated and
// back-filled fixes, overnight windows, a permit expiring mid-trip, tickets in any order.
import seedrandom from 'seedrandom';
import { afterEach, describe, expect, it } from 'vitest';
import type { FixRule, TruckFix } from '../../../services/rules/types.ts';
import { noPermit } from '../../../services/rules/rules/no-permit.ts';
import { AFTERNOON, DEVICES, DUMP_LON, LAT, M_PER_LAT, M_PER_LON, NIGHT, SITE_LON, deviationTrip, stand, ticket, track } from '../../helpers/rules-world.ts';
import { essence, rulesHarness } from './harness.ts';

type Harness = Awaited<ReturnType<typeof rulesHarness>>;
let h: Harness;
afterEach(() => h?.close());

const MID = (SITE_LON + DUMP_LON) / 2;
const detour = () => deviationTrip(DEVICES.gps1, NIGHT);
const east = (metres: number): [number, number] => [SITE_LON + metres / M_PER_LON, LAT];

/** Fixes every intervalS s of a truck driving along a path (east by default) at each phase's speed ([seconds, km/h]) in turn. */
function profile(t0: number, phases: [seconds: number, kmh: number][], intervalS: number, path = east): TruckFix[] {
  const speedAt = (s: number) => {
    let end = 0;
    for (const [seconds, kmh] of phases) if (s < (end += seconds)) return kmh;
    return phases.at(-1)![1];
  };
  const total = phases.reduce((sum, [seconds]) => sum + seconds, 0);
  const fixes: TruckFix[] = [];
  let metres = 0;
  for (let s = 0; s <= total; s++) {
    if (s % intervalS === 0) fixes.push({ kind: 'truck', deviceId: DEVICES.gps1, ts: t0 + s * 1000, lon: path(metres)[0], lat: path(metres)[1], speed_kmh: speedAt(s), heading: 90, ignition: true, cover_closed: true });
    metres += speedAt(s) / 3.6;
  }
  return fixes;
}
/** The alerts of a clean, in-order delivery of the fixes, from a harness of their own. */
async function cleanAlerts(fixes: TruckFix[]) {
  const clean = await rulesHarness();
  clean.feed(fixes);
  const alerts = essence(clean.list());
  clean.close();
  return alerts;
}
const cleanTrip = (t0 = NIGHT) => track(DEVICES.gps1, t0, [{ fromLon: SITE_LON, toLon: DUMP_LON, speedKmh: 36 }]);

describe('route deviation', () => {
  it('raises nothing for a trip inside the corridor', async () => {
    h = await rulesHarness();
    h.feed(cleanTrip());
    expect(h.list()).toEqual([]);
  });

  it('raises one alert for a detour, routed to both jurisdictions it crossed, ended once back', async () => {
    h = await rulesHarness();
    const fixes = detour();
    h.feed(fixes);
    const alerts = h.list();
    expect(alerts.map((a) => a.type)).toEqual(['route_deviation']);
    const [alert] = alerts;
    expect(alert!.jurisdictions).toEqual(['EAST', 'WEST']);
    expect(alert!.permit?.number).toBe('PZ-2026-001');
    expect(alert!.subject).toMatchObject({ kind: 'truck', id: 'T1', device_id: DEVICES.gps1, plate: '苏E·00001' });
    // Left the corridor (50 m) a few fixes into the 400 m climb, back a few fixes before the end of the descent.
    const outside = fixes.filter((f) => (f.lat - 31.3) * 110_900 > 50);
    expect(Date.parse(alert!.started_at)).toBeGreaterThanOrEqual(outside[0]!.ts - 10_000);
    expect(Date.parse(alert!.started_at)).toBeLessThanOrEqual(outside[0]!.ts);
    expect(alert!.ended_at).toBe(new Date(outside.at(-1)!.ts).toISOString());
    expect(alert!.evidence.length).toBeGreaterThan(5);
  });

  it('ignores GPS jitter at the corridor edge', async () => {
    h = await rulesHarness();
    const random = seedrandom('edge');
    const fixes = cleanTrip().map((f) => ({ ...f, lat: f.lat + (40 + (random() - 0.5) * 30) / 110_900 }));
    expect(fixes.some((f) => (f.lat - 31.3) * 110_900 > 50)).toBe(true);
    h.feed(fixes);
    expect(h.list()).toEqual([]);
  });

  it('never raises on one outlier fix', async () => {
    h = await rulesHarness();
    const fixes = cleanTrip();
    fixes[40] = { ...fixes[40]!, lat: fixes[40]!.lat + 800 / 110_900 };
    h.feed(fixes);
    expect(h.list()).toEqual([]);
    expect(h.engine.stats.outliers).toBe(1);
  });

  it('raises nothing across a tunnel gap on the route', async () => {
    h = await rulesHarness();
    const fixes = cleanTrip();
    fixes.splice(30, 24);
    h.feed(fixes);
    expect(h.list()).toEqual([]);
  });

  it('gives the same alerts for a back-filled batch, late and duplicated fixes as for the clean stream', async () => {
    const fixes = detour();
    const clean = await cleanAlerts(fixes);
    h = await rulesHarness();
    const random = seedrandom('noise');
    const deadZone = fixes.slice(45, 60);
    const live = [...fixes.slice(0, 45), ...fixes.slice(60)];
    const delivered: TruckFix[][] = [];
    for (let i = 0; i < live.length; i++) {
      delivered.push([live[i]!]);
      // Three live fixes after the dead zone overtake its back-filled batch.
      if (live[i] === fixes[62]) delivered.push(deadZone);
      if (random() < 0.1) delivered.push([live[i]!]);
    }
    // A few fixes held back behind later ones.
    for (const at of [20, 50, 70]) {
      const [held] = delivered.splice(at, 1);
      delivered.splice(at + 4, 0, held!);
    }
    for (const batch of delivered) h.engine.consume(batch);
    expect(h.engine.stats.replays).toBeGreaterThan(0);
    expect(h.engine.stats.duplicates).toBeGreaterThan(0);
    expect(essence(h.list())).toEqual(clean);
    expect(clean).toHaveLength(1);
  });
});

describe('the cost of any delivery order', () => {
  // Counted as events applied to a state (replays included), not in milliseconds. A truck's 1,000
  // fixes newest first once cost 1.8-14 s each; bins 5-89 s a message.
  /** Most events a timeline keeps (engine MAX_TRACK_EVENTS) and one checkpoint interval. */
  const KEPT = 500 + 32;

  it('judges a back-fill sent newest first in one message once, with the alerts of the clean stream', async () => {
    const fixes = detour();
    const clean = await cleanAlerts(fixes);
    h = await rulesHarness();
    h.engine.consume([...fixes].reverse());
    expect(h.engine.stats.applications).toBeLessThanOrEqual(fixes.length);
    expect(essence(h.list())).toEqual(clean);
  });

  it('bounds the work of each reading when every message is older than the last, and keeps at most the cap', async () => {
    h = await rulesHarness();
    // 2,000 fixes 0.4 s apart, all within the 15-minute window of each other, sent newest first.
    const fixes = profile(NIGHT, [[1999, 10]], 1).map((f, i) => ({ ...f, ts: NIGHT + i * 400 }));
    const reversed = [...fixes].reverse();
    for (const fix of reversed) h.engine.consume([fix]);
    expect(h.engine.stats.fixes).toBe(fixes.length);
    expect(h.engine.stats.applications).toBeLessThanOrEqual(fixes.length * KEPT);
    // The window holds them all; the cap is what keeps the work per reading bounded.
    expect(h.engine.stats.tooLate).toBeGreaterThan(0);
  });

  it('costs three bin messages of 1,000 readings newest first at most their length and the events kept each', async () => {
    h = await rulesHarness();
    const bin = DEVICES.bin1;
    const t0 = NIGHT;
    const reading = (i: number) => ({ kind: 'bin' as const, deviceId: bin, ts: t0 + i * 5000, fill_pct: (i % 100) });
    for (let m = 2; m >= 0; m--) {
      const batch = Array.from({ length: 1000 }, (_, i) => reading(m * 1000 + i)).reverse();
      h.engine.consume(batch);
    }
    expect(h.engine.stats.binReadings).toBe(3000);
    expect(h.engine.stats.applications).toBeLessThanOrEqual(3 * (1000 + KEPT));
  });
});

describe('permits and hours', () => {
  it('raises nothing for a trip through midnight inside an overnight window', async () => {
    h = await rulesHarness();
    h.feed(cleanTrip(Date.parse('2026-06-01T23:55:00+08:00')));
    expect(h.list()).toEqual([]);
  });

  it('raises out-of-hours for a trip in the afternoon, naming the permit', async () => {
    h = await rulesHarness();
    h.feed(cleanTrip(AFTERNOON));
    const alerts = h.list();
    expect(alerts.map((a) => a.type)).toEqual(['out_of_hours']);
    expect(alerts[0]!.permit?.number).toBe('PZ-2026-001');
    expect(Date.parse(alerts[0]!.started_at)).toBe(AFTERNOON);
  });

  it('raises no-permit from midnight when the permit expires mid-trip, and no route deviation after it', async () => {
    h = await rulesHarness({ world: { validTo: '2026-06-01' } });
    const start = Date.parse('2026-06-01T23:52:00+08:00');
    h.feed(cleanTrip(start));
    const alerts = h.list();
    expect(alerts.map((a) => a.type)).toEqual(['no_permit']);
    const midnight = Date.parse('2026-06-02T00:00:00+08:00');
    expect(Math.abs(Date.parse(alerts[0]!.started_at) - midnight)).toBeLessThanOrEqual(10_000);
    expect(alerts[0]!.severity).toBe('critical');
  });

  it('treats a suspended permit as none', async () => {
    h = await rulesHarness();
    h.db.statement("UPDATE permits SET status = 'suspended', updated_at = 'later' WHERE id = 'P1'").run();
    h.feed(cleanTrip());
    expect(h.list().map((a) => [a.type, a.subject.id])).toEqual([['no_permit', 'T1']]);
  });

  it('raises no-permit for a truck without one that drives, not for one that stands', async () => {
    h = await rulesHarness();
    h.feed(stand(DEVICES.gps2, NIGHT - 600_000, SITE_LON, 300));
    expect(h.list()).toEqual([]);
    h.feed(track(DEVICES.gps2, NIGHT, [{ fromLon: SITE_LON, toLon: MID, speedKmh: 36 }]));
    expect(h.list().map((a) => [a.type, a.subject.id])).toEqual([['no_permit', 'T2']]);
  });
});

describe('illegal dump, uncovered transport, speeding', () => {
  it('raises an illegal dump for tipping on the road, not inside the disposal site', async () => {
    h = await rulesHarness();
    const t = NIGHT;
    const fixes = [
      ...track(DEVICES.gps1, t, [{ fromLon: SITE_LON, toLon: 120.58, speedKmh: 36 }]),
      ...stand(DEVICES.gps1, t + 300_000, 120.58, 180, { tipper_up: true, load_kg: 0 }),
    ];
    h.feed(fixes);
    const alerts = h.list();
    expect(alerts.map((a) => [a.type, a.jurisdictions])).toEqual([['illegal_dump', ['WEST']]]);
    expect(Date.parse(alerts[0]!.started_at)).toBeLessThanOrEqual(t + 300_000);

    h.close();
    h = await rulesHarness();
    h.feed([...cleanTrip(), ...stand(DEVICES.gps1, NIGHT + 1_000_000, DUMP_LON + 0.001, 180, { tipper_up: true })]);
    expect(h.list().map((a) => a.type)).toEqual([]);
  });

  it('raises an illegal dump for a sharp load drop while stopped outside a disposal site', async () => {
    h = await rulesHarness();
    h.feed([
      ...stand(DEVICES.gps1, NIGHT, 120.58, 60, { load_kg: 20_000 }),
      ...stand(DEVICES.gps1, NIGHT + 60_000, 120.58, 60, { load_kg: 4_000 }),
    ]);
    expect(h.list().map((a) => a.type)).toEqual(['illegal_dump']);
  });

  it('raises uncovered transport for a loaded truck with the cover open, and maps the road driven', async () => {
    h = await rulesHarness();
    h.feed(track(DEVICES.gps1, NIGHT, [{ fromLon: SITE_LON, toLon: DUMP_LON, speedKmh: 36, extra: { cover_closed: false, load_kg: 20_000 } }]));
    expect(h.list().map((a) => a.type)).toEqual(['uncovered_transport']);
    const hotspots = h.spillage.hotspots({ from: NIGHT, to: NIGHT + 3_600_000, limit: 500 });
    const metres = hotspots.reduce((sum, s) => sum + s.uncovered_m, 0);
    // The whole route (9.5 km) but the minute of grace before the alert (600 m).
    expect(metres).toBeGreaterThan(8_500);
    expect(metres).toBeLessThan(9_600);
    expect(new Set(hotspots.map((s) => s.jurisdiction))).toEqual(new Set(['WEST', 'EAST']));
    expect(h.lines.some((l) => l.startsWith('spillage,'))).toBe(true);
  });

  it('raises nothing for an empty truck with the cover open', async () => {
    h = await rulesHarness();
    h.feed(track(DEVICES.gps1, NIGHT, [{ fromLon: SITE_LON, toLon: DUMP_LON, speedKmh: 36, extra: { cover_closed: false, load_kg: 0 } }]));
    expect(h.list()).toEqual([]);
  });

  it('raises speeding seen on one fix, taking its length from the distance driven either side; not a shorter burst', async () => {
    h = await rulesHarness();
    // 36 km/h, a burst at 72 km/h from 45 s for 33 s (or 25 s), then 36 km/h again; a fix every 20 s,
    // so the only fix in either burst is the one at 60 s.
    const seen = profile(NIGHT, [[45, 36], [33, 72], [60, 36]], 20);
    expect(seen.filter((f) => f.speed_kmh > 60).map((f) => f.ts - NIGHT)).toEqual([60_000]);
    h.feed(seen);
    const alerts = h.list();
    expect(alerts.map((a) => a.type)).toEqual(['speeding']);
    expect(Date.parse(alerts[0]!.started_at) - NIGHT).toBeCloseTo(45_000, -3);
    expect(alerts[0]!.detail).toMatchObject({ limit_kmh: 60, max_speed_kmh: 72, fixes: 1 });

    h.feed(profile(NIGHT + 3_600_000, [[45, 36], [25, 72], [60, 36]], 20));
    expect(h.list()).toHaveLength(1);
  });

  it('judges a burst next to a stop by the speed driven on its other side', async () => {
    h = await rulesHarness();
    // Standing at the first fix, then 13 s at 36 km/h and 28 s at 72 km/h: taking the truck to have
    // driven off at the standing fix's 0 km/h would stretch the burst to about 34 s.
    h.feed(profile(NIGHT, [[12, 0], [13, 36], [28, 72], [60, 36]], 30));
    expect(h.list()).toEqual([]);
    // Driving off at 36 km/h (the speed after the burst) into a 37 s burst, seen on one fix.
    h.feed(profile(NIGHT + 3_600_000, [[5, 0], [3, 36], [37, 72], [60, 36]], 30));
    expect(h.list().map((a) => a.type)).toEqual(['speeding']);
  });

  it('measures the distance driven around a corner of the route, not across it', async () => {
    // 600 m east, then north: the same 33 s burst, whose fix comes 150 m after the corner.
    const corner = SITE_LON + 600 / M_PER_LON;
    h = await rulesHarness({ world: { route: [[SITE_LON, LAT], [corner, LAT], [corner, LAT + 0.02]] } });
    const path = (metres: number): [number, number] => (metres <= 600 ? east(metres) : [corner, LAT + (metres - 600) / M_PER_LAT]);
    h.feed(profile(NIGHT, [[45, 36], [33, 72], [60, 36]], 20, path));
    const alerts = h.list();
    expect(alerts.map((a) => a.type)).toEqual(['speeding']);
    expect(Date.parse(alerts[0]!.started_at) - NIGHT).toBeCloseTo(45_000, -3);
  });

  it('raises speeding over the limit for longer than 30 s, not for one fast fix', async () => {
    h = await rulesHarness();
    const single = cleanTrip();
    single[30] = { ...single[30]!, speed_kmh: 75 };
    h.feed(single);
    expect(h.list()).toEqual([]);
    h.feed(
      track(DEVICES.gps1, NIGHT + 3_600_000, [
        { fromLon: SITE_LON, toLon: 120.57, speedKmh: 36 },
        { fromLon: 120.57, toLon: 120.59, speedKmh: 75 },
        { fromLon: 120.59, toLon: DUMP_LON, speedKmh: 36 },
      ]),
    );
    const alerts = h.list();
    expect(alerts.map((a) => a.type)).toEqual(['speeding']);
    expect(alerts[0]!.detail).toMatchObject({ limit_kmh: 60, max_speed_kmh: 75 });
  });
});

describe('tickets', () => {
  it('raises load loss when the disposal net is well below the site-exit net, whichever ticket arrives first', async () => {
    h = await rulesHarness();
    h.feed([ticket('A-1', DEVICES.scaleA, NIGHT, 'out', 20_000), ticket('B-1', DEVICES.scaleB, NIGHT + 1_800_000, 'in', 19_800)]);
    expect(h.list()).toEqual([]);
    h.feed([ticket('B-2', DEVICES.scaleB, NIGHT + 5_400_000, 'in', 15_000), ticket('A-2', DEVICES.scaleA, NIGHT + 3_600_000, 'out', 20_000)]);
    const alerts = h.list();
    expect(alerts.map((a) => [a.type, a.jurisdictions])).toEqual([['load_loss', ['EAST', 'WEST']]]);
    expect(alerts[0]!.started_at).toBe(new Date(NIGHT + 3_600_000).toISOString());
    expect(alerts[0]!.evidence.map((e) => (e as { ticket_id: string }).ticket_id)).toEqual(['A-2', 'B-2']);
    expect(h.spillage.hotspots({ from: NIGHT, to: NIGHT + 86_400_000, kind: 'load_loss', limit: 500 }).length).toBeGreaterThan(10);
  });

  it('waits for a late site-exit ticket before pairing, instead of blaming the entry on an earlier trip', async () => {
    h = await rulesHarness();
    // Trip 7 left the site and never reached a disposal site; trip 8's exit ticket arrives after its entry ticket.
    h.engine.consume([ticket('A-7', DEVICES.scaleA, NIGHT, 'out', 21_000)]);
    h.engine.consume([ticket('B-8', DEVICES.scaleB, NIGHT + 2_100_000, 'in', 18_000)]);
    h.engine.consume([ticket('A-8', DEVICES.scaleA, NIGHT + 1_800_000, 'out', 18_100)]);
    expect(h.engine.settlingTickets()).toBe(3);
    h.engine.tick(Date.now() + 120_000);
    expect(h.engine.settlingTickets()).toBe(0);
    expect(h.list()).toEqual([]);
  });

  it('raises one overload for a trip weighed over the rated gross at both ends; duplicates change nothing', async () => {
    h = await rulesHarness();
    const out = ticket('A-9', DEVICES.scaleA, NIGHT, 'out', 18_000, 15_000);
    const entry = ticket('B-9', DEVICES.scaleB, NIGHT + 1_800_000, 'in', 17_900, 15_000);
    h.feed([out, out, entry, entry]);
    const alerts = h.list();
    expect(alerts.map((a) => a.type)).toEqual(['overload']);
    expect(alerts[0]!.started_at).toBe(new Date(NIGHT).toISOString());
    expect(alerts[0]!.ended_at).toBe(new Date(NIGHT + 1_800_000).toISOString());
    expect(h.engine.stats.duplicates).toBe(2);
  });
});

describe('engine', () => {
  it('logs and skips a rule that throws; the others still run', async () => {
    const broken: FixRule = { type: 'speeding', fleets: ['muck'], initialState: () => ({}), onFix: () => { throw new Error('boom'); } };
    h = await rulesHarness({ fixRules: [broken, noPermit as FixRule] });
    h.feed(track(DEVICES.gps2, NIGHT, [{ fromLon: SITE_LON, toLon: MID, speedKmh: 36 }]));
    expect(h.list().map((a) => a.type)).toEqual(['no_permit']);
    expect(h.engine.stats.ruleErrors).toBeGreaterThan(0);
  });

  it('does not judge fixes of devices no registered truck carries', async () => {
    h = await rulesHarness();
    h.feed(track('GPS-UNKNOWN', NIGHT, [{ fromLon: SITE_LON, toLon: MID, speedKmh: 36 }]));
    expect(h.list()).toEqual([]);
    expect(h.engine.stats.unregistered).toBeGreaterThan(0);
  });
});

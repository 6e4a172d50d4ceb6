// The state snapshots the dashboards read, from the real engine and alert store on the hand-built
// world: trucks on the road with company and jurisdiction, every bin with its overflow, forecast,
// battery and whether it is online, and open-alert counts that fall back to 0.
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../../services/log.ts';
import { SLICE_LINES, StateSnapshots } from '../../../services/state/snapshots.ts';
import { DEVICES, LAT, binSeries, track } from '../../helpers/rules-world.ts';
import { rulesHarness } from '../rules/harness.ts';

const MIN = 60_000;
/** The snapshot instant: 12:00 on 2 June 2026, China Standard Time. */
const NOW = Date.parse('2026-06-02T12:00:00+08:00');

let harness: Awaited<ReturnType<typeof rulesHarness>>;
afterEach(() => harness?.close());

async function world() {
  harness = await rulesHarness();
  const h = harness;
  const snapshots = new StateSnapshots({
    city: h.city,
    source: {
      latestFixes: () => h.engine.latestFixes(),
      latestBinSample: (id) => h.engine.latestBinSample(id),
      binForecast: (id) => h.engine.binForecast(id),
      openAlertCounts: () => h.alerts.store.openCounts(),
      ongoing: (types) => h.alerts.store.ongoing(types),
    },
    options: { intervalS: 60, binIntervalS: 300, truckActiveS: 600, movingKmh: 5, loadedKg: 500, parts: { devices: true, openAlerts: true }, everyBin: true },
    writeLines: async () => {},
    log: createLogger('silent'),
    clock: () => NOW,
  });
  return { h, snapshots };
}

/** Line protocol → { tags, fields, ts } per line. */
function parse(text: string) {
  return text
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [series, fields, ts] = line.split(' ') as [string, string, string];
      const [measurement, ...tags] = series.split(',');
      return { measurement, tags: Object.fromEntries(tags.map((t) => t.split('='))), fields: Object.fromEntries(fields.split(',').map((f) => f.split('='))), ts: Number(ts) };
    });
}

describe('truck_state', () => {
  it('has each truck whose latest fix is recent, with its company, fleet and jurisdiction', async () => {
    const { h, snapshots } = await world();
    // T1 driving loaded in WEST until a minute ago; T2 last seen 20 minutes ago.
    h.feed(track(DEVICES.gps1, NOW - 3 * MIN, [{ fromLon: 120.56, toLon: 120.58, speedKmh: 40, extra: { load_kg: 20_000 } }]).filter((f) => f.ts <= NOW - MIN));
    h.feed(track(DEVICES.gps2, NOW - 25 * MIN, [{ fromLon: 120.62, toLon: 120.63, speedKmh: 30 }]).filter((f) => f.ts <= NOW - 20 * MIN));
    const [t1, ...rest] = parse([...snapshots.truckLines(NOW - 30_000)].join(''));
    expect(rest).toEqual([]);
    expect(t1).toMatchObject({ measurement: 'truck_state', tags: { company: 'C1', fleet: 'muck', jurisdiction: 'WEST', truck_id: 'T1' }, ts: NOW - 30_000 });
    expect(t1!.fields).toMatchObject({ plate: '"苏E·00001"', lat: String(LAT), speed_kmh: '40', moving: 'true', loaded: 'true', load_kg: '20000', cover_closed: 'true', fix_at: `${NOW - MIN}i` });
  });
});

describe('bin_state', () => {
  it('has every bin: overflowing since when, predicted time to full, battery, online; a bin never heard from is only located', async () => {
    const { h, snapshots } = await world();
    // BIN-1 overflowing since 11:00 (its first reading at or above 90 %); BIN-2 filling 10 points an hour on a weak battery.
    h.feed(binSeries(DEVICES.bin1, NOW - 60 * MIN, [95, 96, 97], 15 * 60));
    h.feed(binSeries(DEVICES.bin2, NOW - 60 * MIN, [40, 42.5, 45, 47.5], 15 * 60, { battery_v: 3.25 }));
    const bins = Object.fromEntries(parse([...snapshots.binLines(NOW)].join('')).map((p) => [p.tags.bin_id, p]));
    expect(Object.keys(bins).sort()).toEqual(['BIN-1', 'BIN-2', 'BIN-3']);
    expect(bins['BIN-1']).toMatchObject({ tags: { category: 'kitchen', community: 'CM-1', district: 'D-1' }, ts: NOW });
    expect(bins['BIN-1']!.fields).toMatchObject({ reported: 'true', overflowing: 'true', overflow_since: `${NOW - 60 * MIN}i`, overflow_h: '1', fill_pct: '97', online: 'true' });
    // 47.5 % at 11:45, rising 10 points an hour: full (100 %) at 17:00, five hours after NOW.
    expect(bins['BIN-2']!.fields).toMatchObject({ overflowing: 'false', fill_pct: '47.5', battery_v: '3.25', hours_to_full: '5', reading_at: `${NOW - 15 * MIN}i` });
    expect(bins['BIN-2']!.fields.overflow_since).toBeUndefined();
    expect(bins['BIN-3']!.fields).toEqual({ lat: '31.32', lon: '120.631', reported: 'false', overflowing: 'false' });
  });
});

describe('open_alerts', () => {
  it('counts unresolved alerts per type and jurisdiction, writes 0 once a group is empty, then nothing', async () => {
    const { h, snapshots } = await world();
    h.feed(binSeries(DEVICES.bin1, NOW - 60 * MIN, [95, 96], 15 * 60));
    h.feed(binSeries(DEVICES.bin2, NOW - 60 * MIN, [95, 96], 15 * 60));
    const first = parse(snapshots.alertLines(NOW));
    expect(first).toEqual([{ measurement: 'open_alerts', tags: { jurisdiction: 'WEST', severity: 'warning', status: 'open', type: 'overflow' }, fields: { count: '2i' }, ts: NOW }]);
    for (const alert of h.list('overflow')) await h.alerts.resolve(alert.id, 'officer', null);
    expect(parse(snapshots.alertLines(NOW + MIN))).toEqual([{ ...first[0], fields: { count: '0i' }, ts: NOW + MIN }]);
    expect(snapshots.alertLines(NOW + 2 * MIN)).toBe('');
  });
});

describe('writing', () => {
  it('spools a big city SLICE_LINES at a time, letting the event loop turn in between, every line written', async () => {
    harness = await rulesHarness();
    const h = harness;
    h.feed(track(DEVICES.gps1, NOW - 3 * MIN, [{ fromLon: 120.56, toLon: 120.58, speedKmh: 40 }]).filter((f) => f.ts <= NOW - MIN));
    const [latest] = [...h.engine.latestFixes()];
    const trucks = 2.5 * SLICE_LINES;
    const writes: string[] = [];
    const snapshots = new StateSnapshots({
      city: h.city,
      source: {
        latestFixes: () => Array.from({ length: trucks }, () => latest!),
        latestBinSample: (id) => h.engine.latestBinSample(id),
        binForecast: (id) => h.engine.binForecast(id),
        openAlertCounts: () => h.alerts.store.openCounts(),
        ongoing: (types) => h.alerts.store.ongoing(types),
      },
      options: { intervalS: 60, binIntervalS: 300, truckActiveS: 600, movingKmh: 5, loadedKg: 500, parts: { devices: true, openAlerts: true }, everyBin: true },
      writeLines: async (text) => void writes.push(text),
      log: createLogger('silent'),
      clock: () => NOW,
    });
    const truckLinesPerWrite = () => writes.map((w) => parse(w).filter((p) => p.measurement === 'truck_state').length).filter((n) => n > 0);
    snapshots.start();
    try {
      // start() returns after the first slice: the rest waits for the event loop's next turns.
      expect(truckLinesPerWrite()).toEqual([SLICE_LINES]);
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(truckLinesPerWrite()).toEqual([SLICE_LINES, SLICE_LINES, trucks - 2 * SLICE_LINES]);
    } finally {
      snapshots.stop();
    }
  });
});

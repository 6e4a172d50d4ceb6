// The bin rules on hand-built readings with known answers, through the engine into the alert store.
import { afterEach, describe, expect, it } from 'vitest';
import type { RulesConfig } from '../../../services/config/schema.ts';
import { DEVICES, binReading, binSeries } from '../../helpers/rules-world.ts';
import { essence, rulesHarness } from './harness.ts';

const MIN = 60_000;
/** 10:00 on 2 June 2026, China Standard Time: outside CM-1's drop-off windows. */
const MORNING = Date.parse('2026-06-02T10:00:00+08:00');
const iso = (ms: number) => new Date(ms).toISOString();
/** Readings every 15 min from MORNING; the n-th at: */
const at = (n: number) => MORNING + n * 15 * MIN;

let harness: Awaited<ReturnType<typeof rulesHarness>>;
afterEach(() => harness?.close());

async function run(readings: Parameters<typeof harness.feed>[0], config: Partial<RulesConfig> = {}) {
  harness = await rulesHarness({ config });
  harness.feed(readings);
  return harness;
}

describe('overflow', () => {
  it('raises at the second reading at or above 90 %, holds above 70 %, and ends at the last reading before the clear level', async () => {
    const h = await run(binSeries(DEVICES.bin1, MORNING, [85, 90, 89.9, 91, 80, 71, 70, 50]));
    const [alert, ...rest] = h.list('overflow');
    expect(rest).toEqual([]);
    expect(alert).toMatchObject({ status: 'open', severity: 'warning', started_at: iso(at(1)), ended_at: iso(at(5)), jurisdictions: ['WEST'] });
    expect(alert!.subject).toEqual({ kind: 'bin', id: 'BIN-1', device_id: DEVICES.bin1 });
    expect(alert!.detail).toMatchObject({ community_id: 'CM-1', district_id: 'D-1', category: 'kitchen', ended_by: 'level' });
    expect(alert!.location).toEqual({ type: 'Point', coordinates: [120.571, 31.32] });
  });

  it('raises nothing for one high reading, nor for high readings split by a clear one', async () => {
    const h = await run(binSeries(DEVICES.bin1, MORNING, [50, 95, 60, 95, 70, 92, 40]));
    expect(h.list('overflow')).toEqual([]);
  });

  it('works out the fill level from the distance reading and the bin depth', async () => {
    // Depth 1000 mm: 50 mm from the sensor is 95 % full, 600 mm is 40 %.
    const readings = [600, 50, 50, 600].map((distance_mm, i) => binReading(DEVICES.bin2, at(i), { fill_pct: undefined, distance_mm }));
    const h = await run(readings);
    const [alert] = h.list('overflow');
    expect(alert).toMatchObject({ started_at: iso(at(1)), ended_at: iso(at(2)) });
    expect(alert!.evidence.map((e) => (e.kind === 'reading' ? e.fill_pct : null))).toEqual([95, 95, 40]);
  });

  it('ends an overflow on an emptying in the middle of it; the refill is a new alert and no collection was missed', async () => {
    // Overflowing from 10:15 for 3 h, emptied, refilled to overflowing in an hour for 2 h more.
    const fills = [60, 92, ...Array(12).fill(97), 5, 40, 70, 88, 93, ...Array(8).fill(96)];
    const h = await run(binSeries(DEVICES.bin1, MORNING, fills));
    const overflows = h.list('overflow');
    expect(overflows.map((a) => [a.started_at, a.ended_at])).toEqual([
      [iso(at(1)), iso(at(13))],
      [iso(at(18)), null],
    ]);
    expect(overflows[0]!.detail).toMatchObject({ ended_by: 'emptying' });
    expect(h.list('missed_collection')).toEqual([]);
  });

  it('takes a sharp fall above the clear level for an emptying when configured so', async () => {
    const h = await run(binSeries(DEVICES.bin1, MORNING, [92, 96, 100, 78, 82]), { emptyingDropPct: 20 });
    expect(h.list('overflow').map((a) => [a.ended_at, a.detail.ended_by])).toEqual([[iso(at(2)), 'emptying']]);
  });
});

describe('missed collection', () => {
  it('starts four hours after the overflow was raised and ends with the emptying', async () => {
    // Raised at the second high reading (10:15); still overflowing at 14:15 and after; emptied at 16:00.
    const fills = [95, ...Array(23).fill(97), 3];
    const h = await run(binSeries(DEVICES.bin1, MORNING, fills));
    const [missed, ...rest] = h.list('missed_collection');
    expect(rest).toEqual([]);
    expect(missed).toMatchObject({ started_at: iso(at(1) + 4 * 60 * MIN), ended_at: iso(at(23)) });
    expect(missed!.detail).toMatchObject({ overflowing_since: iso(at(0)) });
  });

  it('is not raised for a bin emptied three hours and 59 minutes after its overflow was raised', async () => {
    const readings = [...binSeries(DEVICES.bin1, MORNING, [95, 97]), binReading(DEVICES.bin1, at(1) + 239 * MIN, { fill_pct: 99 }), binReading(DEVICES.bin1, at(1) + 240 * MIN, { fill_pct: 2 })];
    const h = await run(readings);
    expect(h.list('overflow')).toHaveLength(1);
    expect(h.list('missed_collection')).toEqual([]);
  });
});

describe('fire risk, tilt, low battery', () => {
  it('raises fire risk on a fast rise before the threshold, keeps it while hot, and ends when cool', async () => {
    const temps = [20, 21, 38, 55, 75, 80, 50, 30, 22];
    const h = await run(temps.map((temp_c, i) => binReading(DEVICES.bin1, at(i), { temp_c })));
    const [fire, ...rest] = h.list('fire_risk');
    expect(rest).toEqual([]);
    // 21 → 38 within 30 min is a rise of 17 °C; 50 °C at 11:30 is neither hot nor rising.
    expect(fire).toMatchObject({ severity: 'critical', started_at: iso(at(2)), ended_at: iso(at(5)) });
  });

  it('raises nothing for the afternoon warming a bin in the sun', async () => {
    const temps = [18, 22, 26, 30, 34, 38, 41, 44, 46, 47];
    const h = await run(temps.map((temp_c, i) => binReading(DEVICES.bin1, MORNING + i * 30 * MIN, { temp_c })));
    expect(h.list('fire_risk')).toEqual([]);
  });

  it('raises tilt while the bin lies over', async () => {
    const tilts = [2, 3, 80, 85, 2];
    const h = await run(tilts.map((tilt_deg, i) => binReading(DEVICES.bin1, at(i), { tilt_deg })));
    expect(h.list('tilt').map((a) => [a.started_at, a.ended_at])).toEqual([[iso(at(2)), iso(at(3))]]);
  });

  it('raises one low-battery alert for a voltage wavering at the threshold, ended by a new battery', async () => {
    const volts = [3.35, 3.29, 3.31, 3.28, 3.32, 3.27, 3.61, 3.6];
    const h = await run(volts.map((battery_v, i) => binReading(DEVICES.bin1, at(i), { battery_v })));
    expect(h.list('low_battery').map((a) => [a.severity, a.started_at, a.ended_at])).toEqual([['info', iso(at(1)), iso(at(5))]]);
  });

  it('raises tilt from a sensor that reports only a position flag (no angle)', async () => {
    const flags = [false, false, true, true, false];
    const h = await run(flags.map((tilted, i) => binReading(DEVICES.bin1, at(i), { tilt_deg: undefined, tilted })));
    expect(h.list('tilt').map((a) => [a.started_at, a.ended_at])).toEqual([[iso(at(2)), iso(at(3))]]);
  });

  it('judges a battery reported in percent by the percent thresholds (20 % low, 30 % recovered)', async () => {
    const percents = [25, 19, 21, 18, 22, 35, 34];
    const h = await run(percents.map((battery_pct, i) => binReading(DEVICES.bin1, at(i), { battery_v: undefined, battery_pct })));
    expect(h.list('low_battery').map((a) => [a.severity, a.started_at, a.ended_at])).toEqual([['info', iso(at(1)), iso(at(4))]]);
  });
});

describe('device offline', () => {
  it('raises offline after three report intervals of silence while other bins report, and ends it when the sensor is back', async () => {
    harness = await rulesHarness();
    const h = harness;
    // Both report every 15 min for two hours; then BIN-S1 falls silent for three hours.
    h.feed([...binSeries(DEVICES.bin1, MORNING, Array(9).fill(40)), ...binSeries(DEVICES.bin2, MORNING, Array(9).fill(40))].sort((a, b) => a.ts - b.ts));
    const silentFrom = at(8);
    for (let n = 9; n <= 20; n++) {
      h.feed([binReading(DEVICES.bin2, at(n))]);
      h.engine.checkSilence(Date.now());
      const open = h.list('device_offline');
      // Silent for more than 45 min only from the fourth missing report on.
      expect(open.length, `after reading ${n}`).toBe(at(n) - silentFrom > 45 * MIN ? 1 : 0);
    }
    const [raised] = h.list('device_offline');
    expect(raised).toMatchObject({ subject: { kind: 'bin', id: 'BIN-1' }, started_at: iso(silentFrom + 15 * MIN), ended_at: null, jurisdictions: ['WEST'] });
    h.feed([binReading(DEVICES.bin1, at(21))]);
    const [back, ...rest] = h.list('device_offline');
    expect(rest).toEqual([]);
    expect(back).toMatchObject({ id: raised!.id, started_at: iso(silentFrom + 15 * MIN), ended_at: iso(at(21)) });
    expect(back!.detail).toMatchObject({ back_online_at: iso(at(21)), report_interval_s: 900 });
  });

  it('raises and ends an outage seen only afterwards, as in a replay', async () => {
    const readings = [...binSeries(DEVICES.bin1, MORNING, Array(5).fill(40)), ...binSeries(DEVICES.bin1, at(12), Array(3).fill(40))];
    const h = await run(readings);
    expect(h.list('device_offline').map((a) => [a.started_at, a.ended_at])).toEqual([[iso(at(5)), iso(at(12))]]);
  });

  it('raises nothing for a sensor that skips two reports', async () => {
    const readings = [...binSeries(DEVICES.bin1, MORNING, Array(5).fill(40)), ...binSeries(DEVICES.bin1, at(7), Array(3).fill(40))];
    const h = await run(readings);
    expect(h.list('device_offline')).toEqual([]);
  });
});

describe('out-of-window drop-off', () => {
  const night = (hhmm: string) => Date.parse(`2026-06-02T${hhmm}:00+08:00`);

  it('raises lid openings reported for an interval wholly outside the windows, across an overnight window', async () => {
    const h = await run([
      // Inside the 21:00-01:00 window, over midnight: allowed.
      binReading(DEVICES.bin1, night('23:45') - 86_400_000, { lid_opens: 0 }),
      binReading(DEVICES.bin1, night('00:00'), { lid_opens: 4 }),
      // 00:50-01:05 overlaps the window's end: the openings may have been inside it.
      binReading(DEVICES.bin1, night('00:50'), { lid_opens: 2 }),
      binReading(DEVICES.bin1, night('01:05'), { lid_opens: 1 }),
      binReading(DEVICES.bin1, night('01:45'), { lid_opens: 0 }),
      // 01:45-02:00: outside every window.
      binReading(DEVICES.bin1, night('02:00'), { lid_opens: 2 }),
      binReading(DEVICES.bin1, night('02:15'), { lid_opens: 0 }),
      binReading(DEVICES.bin1, night('07:00'), { lid_opens: 0 }),
      binReading(DEVICES.bin1, night('07:15'), { lid_opens: 9 }),
    ]);
    const alerts = h.list('out_of_window_dropoff');
    expect(alerts.map((a) => [a.started_at, a.ended_at, a.detail.lid_opens])).toEqual([[iso(night('01:45')), iso(night('02:00')), 2]]);
    expect(alerts[0]!.detail).toMatchObject({ dropoff_windows: ['07:00-09:00', '21:00-01:00'] });
  });

  it('raises nothing in a community without drop-off windows', async () => {
    const h = await run([binReading(DEVICES.bin3, night('02:00')), binReading(DEVICES.bin3, night('02:15'), { lid_opens: 3 })]);
    expect(h.list('out_of_window_dropoff')).toEqual([]);
  });
});

describe('late and duplicated readings', () => {
  it('give the same bin alerts as the clean stream', async () => {
    const fills = [50, 91, 93, 96, 98, 99, 99, 2, 10, 20];
    const temps = [20, 20, 20, 70, 75, 30, 20, 20, 20, 20];
    const clean = fills.map((fill_pct, i) => binReading(DEVICES.bin1, at(i), { fill_pct, temp_c: temps[i]!, tilt_deg: i === 8 ? 80 : 2 }));
    harness = await rulesHarness();
    harness.feed(clean);
    const expected = essence(harness.list());
    expect(expected.map((a) => a.type).sort()).toEqual(['fire_risk', 'overflow', 'tilt']);
    harness.close();

    // Reading 3 an hour late, reading 5 delivered twice, 6 and 7 swapped.
    const noisy = [clean[0]!, clean[1]!, clean[2]!, clean[4]!, clean[5]!, clean[5]!, clean[7]!, clean[6]!, clean[3]!, clean[8]!, clean[9]!];
    harness = await rulesHarness();
    harness.feed(noisy);
    expect(essence(harness.list())).toEqual(expected);
  });
});

// The fire-risk rule on its own, with synthetic timestamps: its state stays the same size however
// often a bin reports, and a rise within the window is still seen.
import { describe, expect, it } from 'vitest';
import { rulesSchema } from '../../../../services/config/schema.ts';
import type { BinInfo } from '../../../../services/registry/city-index.ts';
import { fireRisk } from '../../../../services/rules/rules/fire-risk.ts';
import type { BinContext, Finding } from '../../../../services/rules/types.ts';

const config = rulesSchema.parse({});
const bin = { id: 'B1', deviceId: 'BIN-1', location: [120.6, 31.3], jurisdictions: ['J1'] } as unknown as BinInfo;

function feed(readings: { ts: number; tempC: number }[]) {
  const findings: Finding[] = [];
  const state = fireRisk.initialState();
  let largest = 0;
  for (const { ts, tempC } of readings) {
    const ctx = { rule: 'fire_risk', sample: { ts, deviceId: 'BIN-1', fillPct: 10, tempC }, previous: null, bin, intervalMs: 500, config, report: (f: Finding) => findings.push(f) } as unknown as BinContext;
    fireRisk.onReading(ctx, state);
    largest = Math.max(largest, state.slices.length);
  }
  return { findings, largest };
}

describe('fire risk', () => {
  it('keeps at most 33 slices for a sensor reporting twice a second for a day', () => {
    const t0 = Date.UTC(2026, 10, 1);
    const { largest, findings } = feed(Array.from({ length: 172_800 }, (_, i) => ({ ts: t0 + i * 500, tempC: 20 + Math.sin(i / 100) })));
    expect(largest).toBeLessThanOrEqual(33);
    expect(findings).toEqual([]);
  });

  it('sees a rise of fireRiseC within the window from readings twice a second, and not a slower one', () => {
    const t0 = Date.UTC(2026, 10, 1);
    const window = config.fireRiseWindowS * 1000;
    const ramp = (spanMs: number) => Array.from({ length: spanMs / 500 + 1 }, (_, i) => ({ ts: t0 + i * 500, tempC: 20 + (config.fireRiseC * (i * 500)) / spanMs }));
    expect(feed(ramp(window * 0.9)).findings.length).toBeGreaterThan(0);
    // Twice as slow: never fireRiseC within any window (not even with the one slice more).
    expect(feed(ramp(window * 2)).findings).toEqual([]);
  });
});

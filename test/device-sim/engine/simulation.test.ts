// The simulation without a broker: determinism, which violations appear, and clean trips.
import crypto from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { generateCity } from '../../../device-sim/city/generate.ts';
import { NO_NOISE, DEFAULT_NOISE, type NoiseOptions, type Outgoing } from '../../../device-sim/engine/noise.ts';
import { Simulation } from '../../../device-sim/engine/simulation.ts';
import { labelJson, type Label } from '../../../device-sim/world/labels.ts';
import { LABEL_TYPES, VIOLATIONS, uniformRates, type ViolationRates } from '../../../device-sim/world/violations.ts';
import { binReadingSchema, truckFixSchema, weighTicketSchema } from '../../../services/contract/payloads.ts';

const city = generateCity({ seed: 21, trucks: 40, collectionTrucks: 10, bins: 300, constructionSites: 6, startDate: '2026-11-01' });
const START = Date.parse('2026-11-20T12:00:00+08:00');
const HOUR = 3_600_000;

function run(options: { seed?: string; rates: ViolationRates; noise?: NoiseOptions; hours: number; audit?: boolean }) {
  const sim = new Simulation(city, { seed: options.seed ?? 's', start: START, rates: options.rates, noise: options.noise ?? DEFAULT_NOISE, audit: options.audit });
  const messages: Outgoing[] = [];
  const labels: Label[] = [];
  for (let t = START; t <= START + options.hours * HOUR; t += 5 * 60_000) sim.advance(t, (m) => messages.push(m), (l) => labels.push(l));
  sim.finish((l) => labels.push(l));
  return { messages, labels };
}

/** 36 hours with every violation on (no permit on every trip it can be), run once for the tests that read it. */
let violatingRun: ReturnType<typeof run> | null = null;
function violating(): ReturnType<typeof run> {
  if (!violatingRun) {
    const rates = uniformRates(0.25);
    rates.no_permit = 1;
    rates.out_of_hours = 0.5;
    violatingRun = run({ rates, hours: 36 });
  }
  return violatingRun;
}

const digest = (items: unknown[]) => crypto.createHash('sha256').update(items.map((i) => JSON.stringify(i)).join('\n')).digest('hex');

describe('Simulation', () => {
  it('gives the same messages and labels for the same seed, and others for another seed', () => {
    const a = run({ rates: uniformRates(0.1), hours: 8 });
    const b = run({ rates: uniformRates(0.1), hours: 8 });
    expect(a.labels.length).toBeGreaterThan(10);
    expect(digest(a.labels.map(labelJson))).toBe(digest(b.labels.map(labelJson)));
    expect(digest(a.messages)).toBe(digest(b.messages));
    const c = run({ seed: 'other', rates: uniformRates(0.1), hours: 8 });
    expect(digest(c.labels.map(labelJson))).not.toBe(digest(a.labels.map(labelJson)));
  });

  it('labels every violation type whose rate is on', () => {
    const { labels } = violating();
    const causes = new Set(labels.map((l) => l.cause));
    for (const violation of VIOLATIONS) expect(causes, violation).toContain(violation);
    for (const label of labels) {
      if (label.cause !== 'natural') expect(LABEL_TYPES[label.cause]).toContain(label.type);
      expect(label.detectableAt, JSON.stringify(label)).toBeGreaterThanOrEqual(label.start);
      if (label.end !== null) expect(label.end).toBeGreaterThanOrEqual(label.start);
      expect(label.jurisdictions.length).toBeGreaterThan(0);
    }
    // An injected crossing takes the truck into the neighbouring jurisdiction.
    expect(labels.some((l) => l.cause === 'jurisdiction_crossing' && l.jurisdictions.length === 2)).toBe(true);
  });

  it('labels no injected violation when the rates are off, and only the one that is on', () => {
    const none = run({ rates: uniformRates(0), hours: 24 });
    expect(none.labels.filter((l) => l.cause !== 'natural')).toEqual([]);
    const rates = uniformRates(0);
    rates.speeding = 0.5;
    const speeding = run({ rates, hours: 24 });
    expect(new Set(speeding.labels.map((l) => l.cause))).toEqual(new Set(['speeding', ...speeding.labels.filter((l) => l.cause === 'natural').map(() => 'natural')]));
    expect(speeding.labels.filter((l) => l.type === 'speeding').length).toBeGreaterThan(5);
  });

  it('drives clean trips that break no rule: every trip checked second by second', () => {
    const { labels } = run({ rates: uniformRates(0), noise: NO_NOISE, hours: 24, audit: true });
    // Only bins may overflow on their own; trucks without an injected violation break nothing.
    expect(labels.filter((l) => l.subject.kind === 'truck')).toEqual([]);
  });

  it('publishes only payloads the service accepts', () => {
    const { messages } = violating();
    const schemas = { trucks: truckFixSchema, bins: binReadingSchema, scales: weighTicketSchema };
    const counts = { trucks: 0, bins: 0, scales: 0 };
    for (const m of messages) {
      if (m.kind !== 'publish') continue;
      for (const p of Array.isArray(m.payload) ? m.payload : [m.payload]) {
        const parsed = schemas[m.deviceClass].safeParse(p);
        expect(parsed.success, JSON.stringify(p)).toBe(true);
        counts[m.deviceClass]++;
      }
    }
    expect(counts.trucks).toBeGreaterThan(10_000);
    expect(counts.bins).toBeGreaterThan(10_000);
    expect(counts.scales).toBeGreaterThan(100);
    // Collection tickets name the community they came from, in all four categories.
    const tickets = messages.flatMap((m) => (m.kind === 'publish' && m.deviceClass === 'scales' ? [m.payload as Record<string, unknown>] : []));
    expect(new Set(tickets.filter((t) => t.origin).map((t) => t.category))).toEqual(new Set(['kitchen', 'other', 'recyclable', 'hazardous']));
  });
});

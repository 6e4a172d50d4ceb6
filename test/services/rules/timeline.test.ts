// The timeline behind every truck and bin: events applied once on the way in, a late or back-filled
// event replayed from the nearest copy of the state, the same end state whatever the arrival order.
import seedrandom from 'seedrandom';
import { describe, expect, it } from 'vitest';
import { Timeline } from '../../../services/rules/timeline.ts';

interface Event {
  ts: number;
}
/** A state that remembers every event it was given, in order. */
interface Seen {
  ts: number[];
}

function timeline(windowMs = 60_000, maxEvents = 500) {
  let applied = 0;
  const t = new Timeline<Event, Seen>(() => ({ ts: [] }), windowMs, maxEvents);
  const add = (ts: number) =>
    t.add({ ts }, (e, state) => {
      applied++;
      state.ts.push(e.ts);
    });
  return { t, add, applied: () => applied };
}

describe('timeline', () => {
  it('applies each event of an in-order stream exactly once, however long the stream', () => {
    const { t, add, applied } = timeline();
    for (let i = 0; i < 5000; i++) expect(add(i * 1000)).toBe('newest');
    expect(applied()).toBe(5000);
    expect(t.state.ts).toEqual(Array.from({ length: 5000 }, (_, i) => i * 1000));
    // The window is 60 events; the oldest kept go back at most one checkpoint interval further.
    expect(t.events.length).toBeGreaterThanOrEqual(61);
    expect(t.events.length).toBeLessThanOrEqual(61 + 32);
  });

  it('ends in the state of the sorted stream whatever the order events arrive in within the window', () => {
    const random = seedrandom('timeline');
    for (let run = 0; run < 20; run++) {
      const { t, add } = timeline(60_000);
      const times = Array.from({ length: 400 }, (_, i) => i * 1000);
      // Each event is late by up to 50 s, less than the window.
      const arrivals = times.map((ts) => ({ ts, at: ts + random() * 50_000 })).sort((a, b) => a.at - b.at);
      const placements = arrivals.map(({ ts }) => add(ts));
      expect(placements).not.toContain('too_late');
      expect(placements).toContain('replayed');
      expect(t.state.ts).toEqual(times);
    }
  });

  it('replays a late event from the checkpoint before it, not from the start of the window', () => {
    const { t, add, applied } = timeline(3_600_000);
    for (let i = 1; i <= 300; i++) add(i * 1000);
    const before = applied();
    expect(add(290_500)).toBe('replayed');
    // The last checkpoint before 290.5 s is after the 288th event: 12 events and the late one.
    expect(applied() - before).toBe(13);
    expect(t.state.ts).toEqual([...Array.from({ length: 290 }, (_, i) => (i + 1) * 1000), 290_500, ...Array.from({ length: 10 }, (_, i) => (i + 291) * 1000)]);
  });

  it('refuses a duplicate and an event older than the window, and keeps the state as it was', () => {
    const { t, add } = timeline(60_000);
    for (let i = 0; i < 200; i++) add(i * 1000);
    const state = [...t.state.ts];
    expect(add(150_000)).toBe('duplicate');
    expect(add(199_000 - 60_001)).toBe('too_late');
    expect(add(10_500)).toBe('too_late');
    expect(t.state.ts).toEqual(state);
    expect(add(199_000 - 59_500)).toBe('replayed');
  });

  it('keeps at most maxEvents (and one checkpoint interval) of a device reporting faster than the window allows', () => {
    const { t, add } = timeline(3_600_000, 100);
    for (let i = 0; i < 2000; i++) add(i);
    expect(t.events.length).toBeLessThanOrEqual(100 + 32);
    expect(t.state.ts).toHaveLength(2000);
  });

  it('places a batch among the events kept with one replay: at most its length and the events kept in applications', () => {
    const { t, add } = timeline(3_600_000);
    const kept = Array.from({ length: 300 }, (_, i) => 1_000_000 + i * 1000);
    for (const ts of kept) add(ts);
    // Sent newest first, as a terminal empties its blind-area store; placed oldest first.
    const batch = Array.from({ length: 1000 }, (_, j) => 1_000_251 + j * 290).reverse();
    let applications = 0;
    const placements = t.addAll(
      batch.map((ts) => ({ ts })).sort((a, b) => a.ts - b.ts),
      (e, state) => {
        applications++;
        state.ts.push(e.ts);
      },
    );
    expect(placements.every((p) => p === 'replayed')).toBe(true);
    expect(applications).toBe(1300);
    expect(t.state.ts).toEqual([...kept, ...batch].sort((a, b) => a - b));
    expect(t.events.length).toBeLessThanOrEqual(500 + 32);
  });

  it('never keeps more than maxEvents and one checkpoint interval, in whatever order events come', () => {
    const { t, add, applied } = timeline(3_600_000, 100);
    let worst = 0;
    for (let i = 2000; i > 0; i--) {
      const before = applied();
      add(i * 1000);
      worst = Math.max(worst, applied() - before);
      expect(t.events.length).toBeLessThanOrEqual(100 + 32);
    }
    expect(worst).toBeLessThanOrEqual(100 + 32);
  });

  it('never takes an event older than the base for the newest, even with a cap below one checkpoint interval', () => {
    const { t, add } = timeline(3_600_000, 20);
    for (let i = 1; i <= 320; i++) add(i * 1000);
    expect(add(5)).toBe('too_late');
    expect(t.state.ts.at(-1)).toBe(320_000);
  });
});

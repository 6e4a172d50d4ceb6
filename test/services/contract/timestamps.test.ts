import { describe, expect, it } from 'vitest';
import { parseTimestamp } from '../../../services/contract/timestamps.ts';

describe('parseTimestamp', () => {
  it('takes epoch milliseconds as they are', () => {
    expect(parseTimestamp(1714521600000)).toEqual({ ok: true, ms: 1714521600000 });
  });

  it('reads ISO-8601 with a +08:00 offset as the same instant as UTC', () => {
    expect(parseTimestamp('2024-05-01T08:00:00+08:00')).toEqual({ ok: true, ms: Date.UTC(2024, 4, 1, 0, 0, 0) });
    expect(parseTimestamp('2024-05-01T00:00:00Z')).toEqual({ ok: true, ms: Date.UTC(2024, 4, 1, 0, 0, 0) });
  });

  it('accepts a space separator, a compact offset and sub-millisecond fractions', () => {
    expect(parseTimestamp('2024-05-01 08:00:00.123456+0800')).toEqual({ ok: true, ms: Date.UTC(2024, 4, 1, 0, 0, 0, 123) });
  });

  it('refuses local time without an offset instead of guessing the zone', () => {
    const result = parseTimestamp('2024-05-01T08:00:00');
    expect(result.ok).toBe(false);
    expect(!result.ok && result.message).toMatch(/offset/);
  });

  it('refuses epoch seconds sent by mistake, naming the mistake', () => {
    const result = parseTimestamp(1714521600);
    expect(!result.ok && result.message).toMatch(/epoch seconds/);
  });

  it('refuses impossible dates, missing ts and other types', () => {
    expect(parseTimestamp('2024-13-45T08:00:00Z').ok).toBe(false);
    expect(parseTimestamp(undefined).ok).toBe(false);
    expect(parseTimestamp(true).ok).toBe(false);
    expect(parseTimestamp(Number.NaN).ok).toBe(false);
  });

  it('refuses days the calendar does not have, which Date.parse would roll into the next month', () => {
    for (const day of ['2022-02-30T00:00:00Z', '2021-02-29T12:00:00+08:00', '2022-04-31T23:59:59+08:00']) expect(parseTimestamp(day)).toMatchObject({ ok: false, message: expect.stringMatching(/not a valid date/) });
    expect(parseTimestamp('2024-02-29T12:00:00+08:00')).toEqual({ ok: true, ms: Date.UTC(2024, 1, 29, 4) });
  });
});

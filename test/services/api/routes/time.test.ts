import { describe, expect, it } from 'vitest';
import { day, instant, month } from '../../../../services/api/routes/time.ts';

describe('time parameters', () => {
  it('takes real dates, months and instants within 1970-2100, and nothing else', () => {
    expect(day.safeParse('2024-02-29').success).toBe(true);
    // Date.parse rolls these over into the next month.
    for (const d of ['2023-02-29', '2023-02-30', '2024-04-31', '2024-13-01', '9999-12-31', '1969-12-31']) expect(day.safeParse(d).success, d).toBe(false);
    expect(month.safeParse('2099-12').success).toBe(true);
    expect(month.safeParse('2100-01').success).toBe(false);
    expect(instant.safeParse('2026-11-01T08:00:00+08:00').success).toBe(true);
    expect(instant.safeParse('9999-12-31T00:00:00Z').success).toBe(false);
  });
});

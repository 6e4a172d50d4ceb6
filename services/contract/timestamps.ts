// Device timestamps (docs/architecture.md §3): epoch milliseconds, or ISO-8601 with an explicit offset.
// Devices in China usually send local time (+08:00); a string without an offset is ambiguous and
// refused rather than guessed.

const ISO_WITH_OFFSET =
  /^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}(?::\d{2})?)(?:\.(\d{1,9}))?(Z|[+-]\d{2}:?\d{2})$/i;

/** Epoch ms below this (1973-03-03) are almost certainly epoch seconds sent by mistake. */
const SMALLEST_PLAUSIBLE_MS = 100_000_000_000;
/**
 * Epoch ms from this on (2262-04-11) are past what InfluxDB can store (int64 nanoseconds) and, far
 * beyond, past what a JavaScript Date can hold (±8.64e15, ECMA-262 §21.4.1.1): refused as invalid
 * rather than carried to where a Date of them throws.
 */
const LARGEST_STORABLE_MS = 9_223_372_036_854;

export type TimestampResult = { ok: true; ms: number } | { ok: false; message: string };

export function parseTimestamp(value: unknown): TimestampResult {
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) return { ok: false, message: 'ts must be a finite number' };
    if (value > 0 && value < SMALLEST_PLAUSIBLE_MS) {
      return { ok: false, message: `ts ${value} looks like epoch seconds; send epoch milliseconds` };
    }
    return storable(Math.round(value), String(value));
  }
  if (typeof value === 'string') {
    const match = ISO_WITH_OFFSET.exec(value.trim());
    if (!match) {
      return {
        ok: false,
        message: `ts "${value.slice(0, 40)}" is not epoch ms or ISO-8601 with an offset (e.g. 2024-05-01T08:00:00+08:00)`,
      };
    }
    const [, date, time, fraction = '', zone] = match as unknown as [string, string, string, string | undefined, string];
    const offset = zone.toUpperCase() === 'Z' ? 'Z' : zone.length === 5 ? `${zone.slice(0, 3)}:${zone.slice(3)}` : zone;
    const ms = Date.parse(`${date}T${time}${fraction ? '.' + fraction.slice(0, 3).padEnd(3, '0') : ''}${offset}`);
    // Date.parse rolls 30 February over into March instead of refusing it.
    if (Number.isNaN(ms) || !onCalendar(date)) return { ok: false, message: `ts "${value.slice(0, 40)}" is not a valid date` };
    return storable(ms, `"${value.slice(0, 40)}"`);
  }
  return { ok: false, message: 'ts is required (epoch ms or ISO-8601 with offset)' };
}

function storable(ms: number, shown: string): TimestampResult {
  if (Math.abs(ms) >= LARGEST_STORABLE_MS) return { ok: false, message: `ts ${shown} is outside the years 1678-2262 that can be stored` };
  return { ok: true, ms };
}

/** Whether YYYY-MM-DD is a day of the calendar (no 30 February, no 31 April). */
function onCalendar(date: string): boolean {
  const [year, month, day] = date.split('-').map(Number) as [number, number, number];
  const parsed = new Date(Date.UTC(year, month - 1, day));
  return parsed.getUTCFullYear() === year && parsed.getUTCMonth() === month - 1 && parsed.getUTCDate() === day;
}

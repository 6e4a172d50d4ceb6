// China Standard Time (UTC+8, no daylight saving): permit windows, drop-off windows and collection
// rounds are local times of day.

export const CST_OFFSET_MS = 8 * 3_600_000;
export const MINUTE = 60_000;
export const HOUR = 3_600_000;
export const DAY = 86_400_000;

export interface TimeWindow {
  from: string;
  to: string;
}

/** Minutes since local midnight of "HH:MM". */
export function minutesOf(hhmm: string): number {
  const [h, m] = hhmm.split(':').map(Number) as [number, number];
  return h * 60 + m;
}

/** Epoch ms of local midnight on the day holding t. */
export function localMidnight(t: number): number {
  return Math.floor((t + CST_OFFSET_MS) / DAY) * DAY - CST_OFFSET_MS;
}

/** Local minutes since midnight at t. */
export function localMinutes(t: number): number {
  return (t - localMidnight(t)) / MINUTE;
}

/** The concrete [start, end) intervals of the windows that overlap [from, to); windows may run overnight. */
export function windowIntervals(windows: readonly TimeWindow[], from: number, to: number): [number, number][] {
  const out: [number, number][] = [];
  for (let day = localMidnight(from) - DAY; day < to; day += DAY) {
    for (const w of windows) {
      const start = day + minutesOf(w.from) * MINUTE;
      let end = day + minutesOf(w.to) * MINUTE;
      if (end <= start) end += DAY;
      if (end > from && start < to) out.push([start, end]);
    }
  }
  return out.sort((a, b) => a[0] - b[0]);
}

/** Whether t falls inside one of the windows. */
export function insideWindows(windows: readonly TimeWindow[], t: number): boolean {
  const m = localMinutes(t);
  return windows.some((w) => {
    const from = minutesOf(w.from);
    const to = minutesOf(w.to);
    return from < to ? m >= from && m < to : m >= from || m < to;
  });
}

/** The local calendar date (YYYY-MM-DD) at t, as permits' validity dates are written. */
export function localDate(t: number): string {
  return new Date(t + CST_OFFSET_MS).toISOString().slice(0, 10);
}

/** Epoch ms of the local midnight starting a local calendar date (YYYY-MM-DD): localDate's inverse. */
export function localDayStart(date: string): number {
  return Date.parse(`${date}T00:00:00Z`) - CST_OFFSET_MS;
}

/** The local calendar date n days after `date` (n may be negative). */
export function addDays(date: string, n: number): string {
  return new Date(Date.parse(`${date}T00:00:00Z`) + n * DAY).toISOString().slice(0, 10);
}

/** Overlap in ms of [from, to) with the windows. */
export function overlapWithWindows(windows: readonly TimeWindow[], from: number, to: number): number {
  return windowIntervals(windows, from, to).reduce((sum, [s, e]) => sum + Math.max(0, Math.min(e, to) - Math.max(s, from)), 0);
}

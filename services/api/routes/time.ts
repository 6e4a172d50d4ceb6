// Time parameters of every route, bounded. Instants outside these bounds mean nothing for this
// data, and past them InfluxDB (1677-2262), SQLite arithmetic or Date itself fail: a request for
// `to=9999-12-31T00:00:00Z` must be told so, not answered with a 500.
import { z } from 'zod';

export const EARLIEST = '1970-01-01T00:00:00Z';
export const LATEST = '2100-01-01T00:00:00Z';
const earliestMs = Date.parse(EARLIEST);
const latestMs = Date.parse(LATEST);
const BOUNDS = `must lie between ${EARLIEST} and ${LATEST}`;

/** An ISO-8601 instant with an offset, within the bounds. */
export const instant = z.iso
  .datetime({ offset: true })
  .refine((text) => {
    const ms = Date.parse(text);
    return ms >= earliestMs && ms < latestMs;
  }, { error: BOUNDS });

/** A local date YYYY-MM-DD, real and within the bounds. */
export const day = z
  .string()
  .regex(/^\d{4}-\d{2}-\d{2}$/, { error: 'must be a date YYYY-MM-DD' })
  // Date.parse rolls 2023-02-30 over to March; a real date reads back the same.
  .refine((d) => {
    const ms = Date.parse(`${d}T00:00:00Z`);
    return !Number.isNaN(ms) && new Date(ms).toISOString().slice(0, 10) === d;
  }, { error: 'must be a real date' })
  .refine((d) => d >= EARLIEST.slice(0, 10) && d < LATEST.slice(0, 10), { error: `must lie between ${EARLIEST.slice(0, 10)} and 2099-12-31` });

/** A month YYYY-MM within the bounds. */
export const month = z
  .string()
  .regex(/^\d{4}-(0[1-9]|1[0-2])$/, { error: 'must be a month YYYY-MM' })
  .refine((m) => m >= EARLIEST.slice(0, 7) && m < LATEST.slice(0, 7), { error: `must lie between ${EARLIEST.slice(0, 7)} and 2099-12` });

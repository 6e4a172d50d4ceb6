// Payload schemas of the device topics (docs/architecture.md §3). SI units; unknown fields are ignored
// (zod strips them); optional fields may be missing. `ts` is checked by timestamps.ts and the
// time window by the validator, because "too old" depends on configuration and the clock.
import { z } from 'zod';
import { DEVICE_ID_PATTERN } from './topics.ts';

function bounded(min: number, max: number, unit: string, options: { int?: boolean; maxExclusive?: boolean } = {}) {
  const range = `must be between ${min} and ${max}${options.maxExclusive ? ' (exclusive)' : ''} ${unit}`.trimEnd();
  let schema = z.number({ error: (issue) => (issue.input === undefined ? 'is required' : 'must be a number') });
  if (options.int) schema = schema.int({ error: 'must be a whole number' });
  schema = schema.min(min, { error: range });
  return options.maxExclusive ? schema.lt(max, { error: range }) : schema.max(max, { error: range });
}

const flag = z.boolean({ error: 'must be true or false' });
/**
 * Control characters (C0, DEL, C1) and lone UTF-16 surrogates: neither belongs in a plate or a
 * ticket number, a line break would end a line-protocol record (contract/line-protocol.ts), and a
 * lone surrogate is not UTF-8, so it would be stored as U+FFFD, not as sent.
 */
// eslint-disable-next-line no-control-regex -- control characters are what this pattern finds
export const UNSTORABLE = /[\u0000-\u001f\u007f-\u009f]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

const text = (max: number) =>
  z
    .string({ error: (issue) => (issue.input === undefined ? 'is required' : 'must be a string') })
    .min(1, { error: 'must not be empty' })
    .max(max, { error: `must be at most ${max} characters` })
    .refine((value) => !UNSTORABLE.test(value), { error: 'must not contain control characters or unpaired surrogates' });

/** Largest weight a weighbridge reports: 100 t. */
const MAX_KG = 100_000;

export const binReadingSchema = z
  .object({
    ts: z.unknown(),
    fill_pct: bounded(0, 100, '%').optional(),
    distance_mm: bounded(0, 10_000, 'mm').optional(),
    temp_c: bounded(-50, 150, '°C').optional(),
    tilt_deg: bounded(0, 180, 'degrees').optional(),
    /** Sensors that report a position flag (tilted or not) rather than an angle, such as the Milesight EM310-UDL. */
    tilted: flag.optional(),
    battery_v: bounded(0, 60, 'V').optional(),
    /** Battery as the sensor reports it in percent (Milesight and most LoRaWAN sensors), next to or instead of battery_v. */
    battery_pct: bounded(0, 100, '%').optional(),
    rssi: bounded(-200, 0, 'dBm', { int: true }).optional(),
    lid_opens: bounded(0, 100_000, 'openings', { int: true }).optional(),
  })
  .refine((r) => r.fill_pct !== undefined || r.distance_mm !== undefined, {
    error: 'one of fill_pct or distance_mm is required',
    path: ['fill_pct'],
  });

export const truckFixSchema = z.object({
  ts: z.unknown(),
  lat: bounded(-90, 90, 'degrees'),
  lon: bounded(-180, 180, 'degrees'),
  speed_kmh: bounded(0, 250, 'km/h'),
  heading: bounded(0, 360, 'degrees', { maxExclusive: true }),
  ignition: flag.optional(),
  tipper_up: flag.optional(),
  cover_closed: flag.optional(),
  load_kg: bounded(0, MAX_KG, 'kg').optional(),
  // From JT/T 808 terminals (docs/jt808.md); any device may send them.
  /** Loaded, without a weight: JT/T 808 status bits 8-9 half or fully loaded; without load_kg, true counts as loaded in the rules. */
  loaded: flag.optional(),
  /** JT/T 808 alarm flags DWORD (JT/T 808-2013 table 24), as sent. */
  alarm_flags: bounded(0, 0xffff_ffff, '', { int: true }).optional(),
  mileage_km: bounded(0, 100_000_000, 'km').optional(),
  /** Speed from the tachograph (JT/T 808 item 0x03), next to the GNSS speed_kmh. */
  tachograph_kmh: bounded(0, 250, 'km/h').optional(),
  /** Wireless network signal strength as the terminal reports it (JT/T 808 item 0x30, 0-31 on most). */
  signal: bounded(0, 255, '', { int: true }).optional(),
  satellites: bounded(0, 255, 'satellites', { int: true }).optional(),
});

export const WASTE_CATEGORIES = ['kitchen', 'recyclable', 'hazardous', 'other', 'construction'] as const;

export const weighTicketSchema = z
  .object({
    ticket_id: text(64),
    ts: z.unknown(),
    plate: text(16).optional(),
    truck_device_id: z.string().regex(DEVICE_ID_PATTERN, { error: 'must be a device id' }).optional(),
    gross_kg: bounded(0, MAX_KG, 'kg'),
    tare_kg: bounded(0, MAX_KG, 'kg'),
    net_kg: bounded(0, MAX_KG, 'kg'),
    category: z.enum(WASTE_CATEGORIES, { error: `must be one of ${WASTE_CATEGORIES.join(', ')}` }),
    direction: z.enum(['in', 'out'], { error: 'must be "in" or "out"' }),
    origin: text(64).optional(),
  })
  .refine((t) => t.plate !== undefined || t.truck_device_id !== undefined, {
    error: 'one of plate or truck_device_id is required',
    path: ['plate'],
  });

export const statusSchema = z.object({ online: flag });

export type BinReadingInput = z.infer<typeof binReadingSchema>;
export type TruckFixInput = z.infer<typeof truckFixSchema>;
export type WeighTicketInput = z.infer<typeof weighTicketSchema>;

/** A validated reading, timestamped in epoch ms, ready for the time-series store and the rules. */
export type Reading =
  | ({ kind: 'bin'; deviceId: string; ts: number } & Omit<BinReadingInput, 'ts'>)
  | ({ kind: 'truck'; deviceId: string; ts: number } & Omit<TruckFixInput, 'ts'>)
  | ({ kind: 'ticket'; deviceId: string; ts: number } & Omit<WeighTicketInput, 'ts'>)
  | { kind: 'status'; deviceId: string; deviceClass: string; ts: number; online: boolean };

export type TicketReading = Extract<Reading, { kind: 'ticket' }>;

// The alert contract (docs/architecture.md §3 "Contracts", §4 what the rules flag): the alert types and the shape of
// an alert as it is delivered on waste/alerts/{jurisdiction}/{type}, to webhooks and by the API.
// The simulator's ground-truth labels use the same type names, so that alerts can be scored.
import { z } from 'zod';

export const TRUCK_ALERT_TYPES = [
  'route_deviation',
  'illegal_dump',
  'uncovered_transport',
  'load_loss',
  'out_of_hours',
  'no_permit',
  'speeding',
  'overload',
] as const;

export const BIN_ALERT_TYPES = [
  'overflow',
  'missed_collection',
  'fire_risk',
  'tilt',
  'low_battery',
  'device_offline',
  'out_of_window_dropoff',
] as const;

export const ALERT_TYPES = [...TRUCK_ALERT_TYPES, ...BIN_ALERT_TYPES, 'separation_below_target'] as const;
export type AlertType = (typeof ALERT_TYPES)[number];

export const SUBJECT_KINDS = ['truck', 'bin', 'community', 'district', 'device'] as const;

const isoTime = z.string().datetime({ offset: true });

export const alertSchema = z.object({
  id: z.string().min(1),
  type: z.enum(ALERT_TYPES),
  severity: z.enum(['info', 'warning', 'critical']),
  status: z.enum(['open', 'acknowledged', 'resolved']),
  /** What the alert is about: a registry id, with the device and plate where there is one. */
  subject: z.object({
    kind: z.enum(SUBJECT_KINDS),
    id: z.string().min(1),
    device_id: z.string().optional(),
    plate: z.string().optional(),
  }),
  /** Every jurisdiction the violation touched; it is delivered to each of them. */
  jurisdictions: z.array(z.string()),
  location: z.object({ type: z.literal('Point'), coordinates: z.tuple([z.number(), z.number()]) }).nullable(),
  /** Event time (device clock) the violation started and ended; ended_at is null while it lasts. */
  started_at: isoTime,
  ended_at: isoTime.nullable(),
  /** Server time the alert was first raised. */
  raised_at: isoTime,
});

export type Alert = z.infer<typeof alertSchema>;

// What the rules tell the rest of the service: findings (a violation begun, going on or ended,
// with the fixes, tickets and readings that prove it), which the alert service turns into alerts
// and the sorting job raises too; and what the rules know of each truck and bin that the state
// snapshots and the API read (a truck's latest fix, a bin's latest reading, its forecast).
// Defined here so that those services depend on this contract, not on the rules' insides.
import type { AlertType } from './alerts.ts';
import type { Reading } from './payloads.ts';

/** A position: longitude, latitude (WGS-84 degrees). */
export type LonLat = [number, number];

/** A truck's fix, as the rules keep it. */
export type TruckFix = Extract<Reading, { kind: 'truck' }>;

/** Evidence items always kept from the start of a violation; the rest are the latest. */
export const EVIDENCE_HEAD = 5;

/** A fix or ticket that proves a finding, as kept in the alert's evidence. */
export type Evidence =
  | { kind: 'fix'; ts: number; device_id: string; lon: number; lat: number; speed_kmh: number; cover_closed?: boolean; tipper_up?: boolean; load_kg?: number; distance_m?: number }
  | { kind: 'ticket'; ts: number; device_id: string; ticket_id: string; site_id: string; direction: 'in' | 'out'; gross_kg: number; net_kg: number }
  | { kind: 'reading'; ts: number; device_id: string; fill_pct: number; temp_c?: number; tilt_deg?: number; tilted?: boolean; battery_v?: number; battery_pct?: number; lid_opens?: number };

/** What an alert is about (docs/architecture.md §3, docs/alerts.md). */
export interface FindingSubject {
  kind: 'truck' | 'bin' | 'community' | 'district';
  id: string;
  deviceId?: string | null;
  plate?: string;
}

/** What a rule reports: a violation that has begun, goes on, or has ended. */
export interface Finding {
  type: AlertType;
  severity: 'info' | 'warning' | 'critical';
  subject: FindingSubject;
  /** Event time the violation started and ended; endedAt is null while it lasts. */
  startedAt: number;
  endedAt: number | null;
  location: LonLat | null;
  jurisdictions: string[];
  evidence: Evidence[];
  permit: { id: string; number: string } | null;
  detail: Record<string, unknown>;
}

/** A bin reading as the bin rules see it: the fill level worked out, the sensor's other values as sent. */
export interface BinSample {
  ts: number;
  deviceId: string;
  fillPct: number;
  tempC?: number;
  tiltDeg?: number;
  tilted?: boolean;
  batteryV?: number;
  batteryPct?: number;
  lidOpens?: number;
}

/** A bin's fill level and predicted time to overflow and to full (null: not filling). */
export interface Forecast {
  fill_pct: number;
  read_at: string;
  rate_pct_per_h: number | null;
  overflow_at: string | null;
  full_at: string | null;
}

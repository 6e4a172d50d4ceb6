// The rules' interfaces. A rule is one file: it looks at one truck's fixes or one bin's readings
// (in event-time order), or at tickets, and reports findings; the engine owns the state, the order
// and the error handling, and the alerts service turns findings into alerts. What leaves the rules
// (Finding, Evidence, TruckFix, BinSample) is defined in contract/findings.ts and re-exported here
// for the rules.
import type { AlertType } from '../contract/alerts.ts';
import type { BinSample, Evidence, Finding, LonLat, TruckFix } from '../contract/findings.ts';
import type { Reading, TicketReading } from '../contract/payloads.ts';
import type { RulesConfig } from '../config/schema.ts';
import type { BinInfo, CityView, PermitInfo, SiteInfo, TruckInfo } from '../registry/city-index.ts';
import type { TicketBook } from './tickets.ts';

export { EVIDENCE_HEAD } from '../contract/findings.ts';
export type { BinSample, Evidence, Finding, FindingSubject, TruckFix } from '../contract/findings.ts';

export type WeighTicket = TicketReading;
export type BinReading = Extract<Reading, { kind: 'bin' }>;

export type Report = (finding: Omit<Finding, 'subject'>) => void;

export interface FixContext {
  /** The rule being run (set by the engine before each call). */
  rule: AlertType;
  fix: TruckFix;
  position: LonLat;
  /** The truck's previous fix the rules accepted (not an outlier), in event time. */
  previous: TruckFix | null;
  truck: TruckInfo;
  /** The truck's permits in force at the fix's time. */
  permits: PermitInfo[];
  moving: boolean;
  loaded: boolean;
  registry: CityView;
  config: RulesConfig;
  report: Report;
  /** The speed limit at a position (its speed zone's, or the general one). */
  speedLimitAt(position: LonLat): number;
  /** Records road driven in a way that spills (uncovered, losing load) for the hotspot map. */
  spill(kind: SpillKind, from: LonLat, to: LonLat, ts: number): void;
}

export type SpillKind = 'uncovered' | 'load_loss';

export interface TicketContext {
  ticket: WeighTicket;
  site: SiteInfo | undefined;
  truck: TruckInfo;
  /** This truck's tickets, this one included. */
  book: TicketBook;
  registry: CityView;
  config: RulesConfig;
  report: Report;
  spill(kind: SpillKind, from: LonLat, to: LonLat, ts: number): void;
}

export type Fleet = TruckInfo['fleet'];

/** A rule over a truck's fixes. Its state is plain data, so the engine can copy it to replay. */
export interface FixRule<S = unknown> {
  readonly type: AlertType;
  readonly fleets: readonly Fleet[];
  initialState(): S;
  onFix(context: FixContext, state: S): void;
}

/** A rule over weighbridge tickets; tickets pair by time, so their order of arrival does not matter. */
export interface TicketRule {
  readonly type: AlertType;
  readonly fleets: readonly Fleet[];
  /** Judge the ticket only after rules.ticketSettleS, once tickets delivered late are in. */
  readonly settles?: boolean;
  onTicket(context: TicketContext): void;
}

export function fixEvidence(fix: TruckFix, extra: { distance_m?: number } = {}): Evidence {
  const e: Evidence = { kind: 'fix', ts: fix.ts, device_id: fix.deviceId, lon: fix.lon, lat: fix.lat, speed_kmh: fix.speed_kmh };
  if (fix.cover_closed !== undefined) e.cover_closed = fix.cover_closed;
  if (fix.tipper_up !== undefined) e.tipper_up = fix.tipper_up;
  if (fix.load_kg !== undefined) e.load_kg = fix.load_kg;
  if (extra.distance_m !== undefined) e.distance_m = Math.round(extra.distance_m);
  return e;
}

export function ticketEvidence(ticket: WeighTicket, siteId: string): Evidence {
  return { kind: 'ticket', ts: ticket.ts, device_id: ticket.deviceId, ticket_id: ticket.ticket_id, site_id: siteId, direction: ticket.direction, gross_kg: ticket.gross_kg, net_kg: ticket.net_kg };
}

export interface BinContext {
  /** The rule being run (set by the engine before each call). */
  rule: AlertType;
  sample: BinSample;
  /** The bin's previous reading, in event time. */
  previous: BinSample | null;
  bin: BinInfo;
  /** The bin's report interval: the median gap between its recent readings (rules.binReportIntervalS until known). */
  intervalMs: number;
  config: RulesConfig;
  report: Report;
}

/** The engine's periodic look at a bin, for rules about readings that do not come. */
export interface SilenceContext {
  rule: AlertType;
  bin: BinInfo;
  last: BinSample;
  intervalMs: number;
  /** Event-time clock: the newest reading time seen from any bin, advanced by server time while none arrive. */
  now: number;
  config: RulesConfig;
  report: Report;
}

/** A rule over a bin's readings. Like a FixRule, its state is plain data. */
export interface BinRule<S = unknown> {
  readonly type: AlertType;
  initialState(): S;
  onReading(context: BinContext, state: S): void;
  onSilence?(context: SilenceContext, state: S): void;
}

export function binEvidence(sample: BinSample): Evidence {
  const e: Evidence = { kind: 'reading', ts: sample.ts, device_id: sample.deviceId, fill_pct: Math.round(sample.fillPct * 10) / 10 };
  if (sample.tempC !== undefined) e.temp_c = sample.tempC;
  if (sample.tiltDeg !== undefined) e.tilt_deg = sample.tiltDeg;
  if (sample.tilted !== undefined) e.tilted = sample.tilted;
  if (sample.batteryV !== undefined) e.battery_v = sample.batteryV;
  if (sample.batteryPct !== undefined) e.battery_pct = sample.batteryPct;
  if (sample.lidOpens !== undefined) e.lid_opens = sample.lidOpens;
  return e;
}

/** Reports a finding about a bin: located at the bin, routed to its jurisdictions, naming its community. */
export function reportBin(
  ctx: { bin: BinInfo; report: Report },
  finding: Pick<Finding, 'type' | 'severity' | 'startedAt' | 'endedAt' | 'evidence'> & { detail?: Record<string, unknown> },
): void {
  const { bin } = ctx;
  ctx.report({
    ...finding,
    location: bin.location,
    jurisdictions: bin.jurisdictions,
    permit: null,
    detail: { community_id: bin.communityId, district_id: bin.districtId, category: bin.category, ...finding.detail },
  });
}

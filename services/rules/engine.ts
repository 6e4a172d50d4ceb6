// The rules engine: takes validated readings from the ingest pipeline and runs the rule catalogue
// per truck and per bin, by event time. Each keeps its recent events (rules.reorderWindowS) in a
// timeline (timeline.ts), so a late, duplicated or back-filled fix or reading gives the same
// findings as the clean stream. Findings repeat on a replay; the alerts service recognises them.
// A rule that throws is logged and skipped; the others still run.
import type { Logger } from 'pino';
import type { Reading } from '../contract/payloads.ts';
import type { RulesConfig } from '../config/schema.ts';
import { distanceM, type LonLat } from '../geo.ts';
import { permitsAt, type BinInfo, type CityView, type TruckInfo } from '../registry/city-index.ts';
import { BIN_RULES, FIX_RULES, TICKET_RULES } from './catalogue.ts';
import { FORECAST_POINTS, forecast, type FillPoint, type Forecast } from './forecast.ts';
import { emptied } from './level.ts';
import type { SpeedLimitAt } from './speed-zones.ts';
import { TicketBook } from './tickets.ts';
import { Timeline, type Apply, type Placement } from './timeline.ts';
import type {
  BinContext,
  BinReading,
  BinRule,
  BinSample,
  Finding,
  FindingSubject,
  FixContext,
  FixRule,
  Report,
  SilenceContext,
  SpillKind,
  TicketRule,
  TruckFix,
  WeighTicket,
} from './types.ts';

export type FindingSink = (finding: Finding) => void;
export type SpillSink = (spill: { kind: SpillKind; truck: TruckInfo; from: LonLat; to: LonLat; ts: number }) => void;

export interface EngineDeps {
  config: RulesConfig;
  registry: () => CityView;
  speedLimitAt: SpeedLimitAt;
  onFinding: FindingSink;
  onSpill: SpillSink;
  log: Logger;
  /** Server clock, for tickets waiting to settle. */
  clock?: () => number;
  fixRules?: readonly FixRule[];
  ticketRules?: readonly TicketRule[];
  binRules?: readonly BinRule[];
}

export interface EngineStats {
  fixes: number;
  binReadings: number;
  tickets: number;
  duplicates: number;
  outliers: number;
  /** Fixes older than the reorder window when they arrived: stored, not judged. */
  tooLate: number;
  replays: number;
  /** Events applied to a state, counting each replay's: the rules' work, whatever the arrival order. */
  applications: number;
  /** Readings from devices no registered truck or bin carries. */
  unregistered: number;
  ruleErrors: number;
  /** Total time spent in rules, in ms. */
  evaluationMs: number;
}

interface TrackState {
  previous: TruckFix | null;
  /** The last fix skipped as an outlier, while no plausible fix has followed it. */
  suspect: TruckFix | null;
  rules: unknown[];
}

interface TruckTrack {
  timeline: Timeline<TruckFix, TrackState>;
  book: TicketBook;
}

interface BinState {
  previous: BinSample | null;
  /** The latest gaps between readings (ms), for the report interval. */
  gaps: number[];
  /** The latest fill levels since the bin was last emptied, for the forecast. */
  filling: FillPoint[];
  rules: unknown[];
}

type BinTrack = Timeline<BinSample, BinState>;

/** Rule errors logged one by one before they are only counted. */
const LOGGED_ERRORS = 20;
/** Most events kept per subject for reordering, whatever the window (a device reporting far faster than real ones). */
const MAX_TRACK_EVENTS = 500;
/** GPS error allowed on top of the distance a fix's speed explains. */
const JUMP_ALLOWANCE_M = 100;
/** Gaps between a bin's readings its report interval is the median of. */
const INTERVAL_GAPS = 8;
/** Gaps known before the median replaces rules.binReportIntervalS. */
const MIN_INTERVAL_GAPS = 3;
/** While no bin reading arrives for longer than this (server time), the bins' event clock runs on with the server's. */
const BIN_CLOCK_IDLE_MS = 60_000;

export class RulesEngine {
  readonly stats: EngineStats = { fixes: 0, binReadings: 0, tickets: 0, duplicates: 0, outliers: 0, tooLate: 0, replays: 0, applications: 0, unregistered: 0, ruleErrors: 0, evaluationMs: 0 };
  private readonly tracks = new Map<string, TruckTrack>();
  private readonly bins = new Map<string, BinTrack>();
  /** The bins' event-time clock: the newest reading time seen, and when (server time) it arrived. */
  private binWatermark = { ts: Number.NEGATIVE_INFINITY, arrivedAt: 0 };
  /** Tickets whose settling rules run once they are due (server time), oldest first. */
  private readonly settling: { due: number; truckId: string; ticket: WeighTicket }[] = [];
  private readonly fixRules: readonly FixRule[];
  private readonly ticketRules: readonly TicketRule[];
  private readonly binRules: readonly BinRule[];
  private readonly clock: () => number;
  /** Findings of the event being placed, held back to be coalesced. */
  private pending: Finding[] | null = null;

  constructor(private readonly deps: EngineDeps) {
    this.fixRules = deps.fixRules ?? FIX_RULES;
    this.ticketRules = deps.ticketRules ?? TICKET_RULES;
    this.binRules = deps.binRules ?? BIN_RULES;
    this.clock = deps.clock ?? Date.now;
  }

  /**
   * Judges the readings (one message's); returns the time it took, ms. Each device's fixes or bin
   * readings are placed as one batch in event-time order, so the batch costs one replay at most
   * whatever order the device sent it in.
   */
  consume(readings: readonly Reading[]): number {
    const started = performance.now();
    if (readings.length === 1) {
      const reading = readings[0]!;
      if (reading.kind === 'truck') this.onFixes(reading.deviceId, [reading]);
      else if (reading.kind === 'bin') this.onBinReadings(reading.deviceId, [reading]);
      else if (reading.kind === 'ticket') this.onTicket(reading);
    } else {
      const fixes = new Map<string, TruckFix[]>();
      const binReadings = new Map<string, BinReading[]>();
      for (const reading of readings) {
        if (reading.kind === 'truck') pushTo(fixes, reading.deviceId, reading);
        else if (reading.kind === 'bin') pushTo(binReadings, reading.deviceId, reading);
        else if (reading.kind === 'ticket') this.onTicket(reading);
      }
      for (const [deviceId, batch] of fixes) this.onFixes(deviceId, batch.sort(byTs));
      for (const [deviceId, batch] of binReadings) this.onBinReadings(deviceId, batch.sort(byTs));
    }
    const ms = performance.now() - started;
    this.stats.evaluationMs += ms;
    return ms;
  }

  /** Runs the settling rules on tickets that are due; the rules service calls it every second. */
  tick(now: number): void {
    while (this.settling.length > 0 && this.settling[0]!.due <= now) {
      const { truckId, ticket } = this.settling.shift()!;
      const truck = this.deps.registry().truck(truckId);
      if (truck) this.runTicketRules(truck, ticket, true);
    }
  }

  /** Tickets waiting for their settling rules. */
  settlingTickets(): number {
    return this.settling.length;
  }

  /** The bins' event-time clock at a server time (see BIN_CLOCK_IDLE_MS). */
  binClock(serverNow: number): number {
    const { ts, arrivedAt } = this.binWatermark;
    return ts + Math.max(0, serverNow - arrivedAt - BIN_CLOCK_IDLE_MS);
  }

  /**
   * Lets the rules about readings that do not come (device offline) look at every bin (those
   * `judged` says), by the bins' event-time clock: in a replay at many times real speed, silence is
   * judged against the readings other bins send, not against the wall clock.
   */
  checkSilence(serverNow: number, judged: (deviceId: string) => boolean = () => true): void {
    if (this.bins.size === 0) return;
    const started = performance.now();
    const now = this.binClock(serverNow);
    const registry = this.deps.registry();
    for (const [deviceId, track] of this.bins) {
      if (!judged(deviceId)) continue;
      const bin = registry.binByDevice(deviceId);
      const last = track.newest;
      if (!bin || !last) continue;
      const context: SilenceContext = { rule: 'device_offline', bin, last, intervalMs: this.intervalOf(track.state), now, config: this.deps.config, report: this.reporter(binSubject(bin)) };
      this.binRules.forEach((rule, i) => {
        if (!rule.onSilence) return;
        context.rule = rule.type;
        this.guarded(rule.type, bin.id, () => rule.onSilence!(context, track.state.rules[i]));
      });
    }
    this.stats.evaluationMs += performance.now() - started;
  }

  /** Reports findings about one subject; `context` goes into every finding's detail. */
  private reporter(subject: FindingSubject, context: Record<string, unknown> = {}): Report {
    return (finding) => {
      const full = { ...finding, subject, detail: { ...context, ...finding.detail } };
      if (this.pending) this.pending.push(full);
      else this.deps.onFinding(full);
    };
  }

  /** Reports findings about a truck, naming its company in their detail (for the dashboards). */
  private truckReporter(truck: TruckInfo): Report {
    return this.reporter(truckSubject(truck), { company_id: truck.companyId });
  }

  /**
   * Adds an event to a timeline and passes on what the rules found, one finding per violation: a
   * replay reports a violation once per event it spans, and its intermediate states (an alert
   * reopened, then ended again) are nobody's news.
   */
  private place<E extends { ts: number }, S>(timeline: Timeline<E, S>, batch: readonly E[], apply: Apply<E, S>): void {
    this.pending = [];
    try {
      const counted: Apply<E, S> = (event, state) => {
        this.stats.applications++;
        apply(event, state);
      };
      for (const placement of timeline.addAll(batch, counted)) this.count(placement);
    } finally {
      const found = this.pending;
      this.pending = null;
      for (const finding of coalesce(found)) this.deps.onFinding(finding);
    }
  }

  private newTimeline(): TruckTrack['timeline'] {
    const initial = (): TrackState => ({ previous: null, suspect: null, rules: this.fixRules.map((r) => r.initialState()) });
    return new Timeline(initial, this.deps.config.reorderWindowS * 1000, MAX_TRACK_EVENTS);
  }

  private track(truck: TruckInfo): TruckTrack {
    let track = this.tracks.get(truck.id);
    if (!track) {
      track = { timeline: this.newTimeline(), book: new TicketBook(this.deps.config.maxTripH * 3_600_000) };
      this.tracks.set(truck.id, track);
    }
    return track;
  }

  /** One device's fixes, oldest first. */
  private onFixes(deviceId: string, fixes: TruckFix[]): void {
    const truck = this.deps.registry().truckByDevice(deviceId);
    if (!truck) {
      this.stats.unregistered += fixes.length;
      return;
    }
    this.stats.fixes += fixes.length;
    const track = this.track(truck);
    this.place(track.timeline, fixes, (f, state) => this.apply(truck, track, f, state));
  }

  private count(placement: Placement): void {
    if (placement === 'duplicate') this.stats.duplicates++;
    else if (placement === 'too_late') this.stats.tooLate++;
    else if (placement === 'replayed') this.stats.replays++;
  }

  private apply(truck: TruckInfo, track: TruckTrack, fix: TruckFix, state: TrackState): void {
    const { config } = this.deps;
    const position: LonLat = [fix.lon, fix.lat];
    const previous = state.previous;
    if (previous && this.implausible(previous, fix, position)) {
      // Two implausible fixes in a row that agree with each other: the truck really is there.
      const suspect = state.suspect;
      if (!suspect || this.implausible(suspect, fix, position)) {
        this.stats.outliers++;
        state.suspect = fix;
        return;
      }
    }
    state.suspect = null;
    const registry = this.deps.registry();
    const context: FixContext = {
      rule: 'route_deviation',
      fix,
      position,
      previous,
      truck,
      permits: permitsAt(truck, fix.ts),
      moving: fix.speed_kmh > config.movingKmh,
      // A weight decides; without one, a terminal's "loaded" status (JT/T 808 status bits 8-9) or the weighing tickets.
      loaded: fix.load_kg !== undefined ? fix.load_kg > config.loadedKg : fix.loaded === true || track.book.loadedAt(fix.ts),
      registry,
      config,
      report: this.truckReporter(truck),
      speedLimitAt: this.deps.speedLimitAt,
      spill: (kind, from, to, ts) => this.deps.onSpill({ kind, truck, from, to, ts }),
    };
    this.fixRules.forEach((rule, i) => {
      if (!rule.fleets.includes(truck.fleet)) return;
      context.rule = rule.type;
      this.guarded(rule.type, truck.id, () => rule.onFix(context, state.rules[i]));
    });
    state.previous = fix;
  }

  /** One device's bin readings, oldest first. */
  private onBinReadings(deviceId: string, readings: BinReading[]): void {
    const bin = this.deps.registry().binByDevice(deviceId);
    if (!bin) {
      this.stats.unregistered += readings.length;
      return;
    }
    this.stats.binReadings += readings.length;
    const newestTs = readings.at(-1)!.ts;
    if (newestTs > this.binWatermark.ts) this.binWatermark = { ts: newestTs, arrivedAt: this.clock() };
    let track = this.bins.get(bin.deviceId);
    if (!track) {
      const initial = (): BinState => ({ previous: null, gaps: [], filling: [], rules: this.binRules.map((r) => r.initialState()) });
      track = new Timeline(initial, this.deps.config.binReorderWindowS * 1000, MAX_TRACK_EVENTS);
      this.bins.set(bin.deviceId, track);
    }
    this.place(track, readings.map((reading) => binSample(reading, bin)), (sample, state) => this.applyBin(bin, sample, state));
  }

  private applyBin(bin: BinInfo, sample: BinSample, state: BinState): void {
    const context: BinContext = {
      rule: 'overflow',
      sample,
      previous: state.previous,
      bin,
      intervalMs: this.intervalOf(state),
      config: this.deps.config,
      report: this.reporter(binSubject(bin)),
    };
    this.binRules.forEach((rule, i) => {
      context.rule = rule.type;
      this.guarded(rule.type, bin.id, () => rule.onReading(context, state.rules[i]));
    });
    if (state.previous) {
      state.gaps.push(sample.ts - state.previous.ts);
      if (state.gaps.length > INTERVAL_GAPS) state.gaps.shift();
    }
    if (emptied(context)) state.filling = [];
    const horizon = sample.ts - this.deps.config.forecastWindowH * 3_600_000;
    state.filling = [...state.filling.filter((p) => p.ts >= horizon).slice(1 - FORECAST_POINTS), { ts: sample.ts, fill: sample.fillPct }];
    state.previous = sample;
  }

  /** Each truck's latest fix judged so far (event order), by truck id. */
  *latestFixes(): Generator<[truckId: string, fix: TruckFix]> {
    for (const [truckId, track] of this.tracks) {
      const fix = track.timeline.state.previous;
      if (fix) yield [truckId, fix];
    }
  }

  /** A bin's latest reading judged so far (event order). */
  /**
   * Drops what is known of a device: it reported through another process meanwhile
   * (rules-service.ts), so the gap since its last reading here is no silence, and its state here
   * is stale.
   */
  forget(deviceId: string): void {
    this.bins.delete(deviceId);
    const truck = this.deps.registry().truckByDevice(deviceId);
    // The truck's fixes start again; its weighing tickets, which come from weighbridges, stay.
    const track = truck ? this.tracks.get(truck.id) : undefined;
    if (track) track.timeline = this.newTimeline();
  }

  latestBinSample(deviceId: string): BinSample | null {
    return this.bins.get(deviceId)?.state.previous ?? null;
  }

  /** A bin's fill level and predicted time to full, from the readings judged so far. */
  binForecast(deviceId: string): Forecast | null {
    const state = this.bins.get(deviceId)?.state;
    return state ? forecast(state.filling, this.deps.config.overflowRaisePct) : null;
  }

  /** A bin's report interval: the median of its latest gaps, robust to the one long gap of an outage. */
  private intervalOf(state: BinState): number {
    if (state.gaps.length < MIN_INTERVAL_GAPS) return this.deps.config.binReportIntervalS * 1000;
    const sorted = [...state.gaps].sort((a, b) => a - b);
    return sorted[Math.floor(sorted.length / 2)]!;
  }

  /** Further from the previous fix than its speeds can explain: a GPS outlier. */
  private implausible(previous: TruckFix, fix: TruckFix, position: LonLat): boolean {
    const seconds = Math.abs(fix.ts - previous.ts) / 1000;
    const metres = distanceM([previous.lon, previous.lat], position);
    const explained = (Math.max(previous.speed_kmh, fix.speed_kmh, this.deps.config.movingKmh) / 3.6) * seconds * 1.5 + JUMP_ALLOWANCE_M;
    return metres > explained || metres > (this.deps.config.outlierKmh / 3.6) * seconds + JUMP_ALLOWANCE_M;
  }

  private onTicket(ticket: WeighTicket): void {
    const registry = this.deps.registry();
    const truck = (ticket.truck_device_id && registry.truckByDevice(ticket.truck_device_id)) || (ticket.plate && registry.truckByPlate(ticket.plate)) || undefined;
    if (!truck) {
      this.stats.unregistered++;
      return;
    }
    this.stats.tickets++;
    const track = this.track(truck);
    if (!track.book.add(ticket, registry.siteOfScale(ticket.deviceId) ?? null)) {
      this.stats.duplicates++;
      return;
    }
    this.runTicketRules(truck, ticket, false);
    if (this.ticketRules.some((rule) => rule.settles && rule.fleets.includes(truck.fleet))) {
      this.settling.push({ due: this.clock() + this.deps.config.ticketSettleS * 1000, truckId: truck.id, ticket });
    }
  }

  private runTicketRules(truck: TruckInfo, ticket: WeighTicket, settled: boolean): void {
    const registry = this.deps.registry();
    const track = this.track(truck);
    const context = {
      ticket,
      site: registry.siteOfScale(ticket.deviceId),
      truck,
      book: track.book,
      registry,
      config: this.deps.config,
      report: this.truckReporter(truck),
      spill: (kind: SpillKind, from: LonLat, to: LonLat, ts: number) => this.deps.onSpill({ kind, truck, from, to, ts }),
    };
    for (const rule of this.ticketRules) {
      if (!rule.fleets.includes(truck.fleet) || (rule.settles ?? false) !== settled) continue;
      this.guarded(rule.type, truck.id, () => rule.onTicket(context));
    }
  }

  /** Runs one rule; one that throws is logged and skipped, and the others still run. */
  private guarded(type: string, subjectId: string, run: () => void): void {
    try {
      run();
    } catch (error) {
      if (this.stats.ruleErrors++ < LOGGED_ERRORS) {
        this.deps.log.error({ rule: type, subject: subjectId, error: (error as Error).message, stack: (error as Error).stack }, `rule ${type} failed; skipped for this reading, the other rules ran`);
      }
    }
  }
}

function pushTo<T>(groups: Map<string, T[]>, key: string, item: T): void {
  const group = groups.get(key);
  if (group) group.push(item);
  else groups.set(key, [item]);
}

const byTs = (a: { ts: number }, b: { ts: number }): number => a.ts - b.ts;

function truckSubject(truck: TruckInfo): FindingSubject {
  return { kind: 'truck', id: truck.id, deviceId: truck.deviceId, plate: truck.plate };
}

function binSubject(bin: BinInfo): FindingSubject {
  return { kind: 'bin', id: bin.id, deviceId: bin.deviceId };
}

/** A bin reading with its fill level: as sent, or from the distance to the waste and the bin's depth. */
export function binSample(reading: BinReading, bin: BinInfo): BinSample {
  const fillPct = reading.fill_pct ?? Math.min(100, Math.max(0, ((bin.depthMm - reading.distance_mm!) / bin.depthMm) * 100));
  const sample: BinSample = { ts: reading.ts, deviceId: reading.deviceId, fillPct };
  if (reading.temp_c !== undefined) sample.tempC = reading.temp_c;
  if (reading.tilt_deg !== undefined) sample.tiltDeg = reading.tilt_deg;
  if (reading.tilted !== undefined) sample.tilted = reading.tilted;
  if (reading.battery_v !== undefined) sample.batteryV = reading.battery_v;
  if (reading.battery_pct !== undefined) sample.batteryPct = reading.battery_pct;
  if (reading.lid_opens !== undefined) sample.lidOpens = reading.lid_opens;
  return sample;
}

/**
 * Findings of one violation (same type and start) as one: the latest state, with all their
 * evidence. Linear in the findings and their evidence: a batch of 1,000 readings that each
 * report the same violation is common (a bin overflowing throughout a back-fill).
 */
export function coalesce(findings: Finding[]): Finding[] {
  if (findings.length < 2) return findings;
  const byViolation = new Map<string, { latest: Finding; evidence: Finding['evidence']; seen: Set<string>; detail: Finding['detail']; jurisdictions: Set<string> }>();
  for (const f of findings) {
    const key = `${f.type}|${f.startedAt}`;
    let group = byViolation.get(key);
    if (!group) {
      group = { latest: f, evidence: [], seen: new Set(), detail: {}, jurisdictions: new Set() };
      byViolation.set(key, group);
    }
    group.latest = f;
    for (const e of f.evidence) {
      const id = `${e.kind}:${e.ts}`;
      if (group.seen.has(id)) continue;
      group.seen.add(id);
      group.evidence.push(e);
    }
    Object.assign(group.detail, f.detail);
    for (const j of f.jurisdictions) group.jurisdictions.add(j);
  }
  return [...byViolation.values()].map(({ latest, evidence, detail, jurisdictions }) => ({ ...latest, evidence, detail, jurisdictions: [...jurisdictions] }));
}

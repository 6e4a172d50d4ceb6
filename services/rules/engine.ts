// The rules engine: takes validated readings from the ingest pipeline and runs the rule catalogue
// per truck, by event time. Each truck keeps its recent fixes (rules.reorderWindowS) and the rules'
// state as it was before the oldest of them, so that a fix arriving out of order is slotted in and
// the rules replayed from there: a late, duplicated or back-filled fix gives the same findings as
// the clean stream. Findings repeat on a replay; the alerts service recognises them. A rule that
// throws is logged and skipped; the others still run.
import type { Logger } from 'pino';
import type { Reading } from '../contract/payloads.ts';
import type { RulesConfig } from '../config/schema.ts';
import { FIX_RULES, TICKET_RULES } from './catalogue.ts';
import { distanceM, type LonLat } from './geo.ts';
import { permitsAt, type RulesRegistry, type TruckInfo } from './registry-index.ts';
import type { SpeedLimitAt } from './speed-zones.ts';
import { TicketBook } from './tickets.ts';
import type { Finding, FixContext, FixRule, SpillKind, TicketRule, TruckFix, WeighTicket } from './types.ts';

export type FindingSink = (finding: Finding) => void;
export type SpillSink = (spill: { kind: SpillKind; truck: TruckInfo; from: LonLat; to: LonLat; ts: number }) => void;

export interface EngineDeps {
  config: RulesConfig;
  registry: () => RulesRegistry;
  speedLimitAt: SpeedLimitAt;
  onFinding: FindingSink;
  onSpill: SpillSink;
  log: Logger;
  /** Server clock, for tickets waiting to settle. */
  clock?: () => number;
  fixRules?: readonly FixRule[];
  ticketRules?: readonly TicketRule[];
}

export interface EngineStats {
  fixes: number;
  tickets: number;
  duplicates: number;
  outliers: number;
  /** Fixes older than the reorder window when they arrived: stored, not judged. */
  tooLate: number;
  replays: number;
  /** Readings from devices no registered truck carries. */
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
  /** Fixes judged, oldest first, all within the reorder window of the newest. */
  fixes: TruckFix[];
  /** State before fixes[0]. */
  base: TrackState;
  /** State after the last of fixes. */
  state: TrackState;
  book: TicketBook;
}

/** Rule errors logged one by one before they are only counted. */
const LOGGED_ERRORS = 20;
/** Most fixes kept per truck for reordering, whatever the window (a device reporting far faster than real GPS units). */
const MAX_TRACK_FIXES = 500;
/** GPS error allowed on top of the distance a fix's speed explains. */
const JUMP_ALLOWANCE_M = 100;

export class RulesEngine {
  readonly stats: EngineStats = { fixes: 0, tickets: 0, duplicates: 0, outliers: 0, tooLate: 0, replays: 0, unregistered: 0, ruleErrors: 0, evaluationMs: 0 };
  private readonly tracks = new Map<string, TruckTrack>();
  /** Tickets whose settling rules run once they are due (server time), oldest first. */
  private readonly settling: { due: number; truckId: string; ticket: WeighTicket }[] = [];
  private readonly fixRules: readonly FixRule[];
  private readonly ticketRules: readonly TicketRule[];

  constructor(private readonly deps: EngineDeps) {
    this.fixRules = deps.fixRules ?? FIX_RULES;
    this.ticketRules = deps.ticketRules ?? TICKET_RULES;
  }

  consume(readings: readonly Reading[]): void {
    const started = performance.now();
    for (const reading of readings) {
      if (reading.kind === 'truck') this.onFix(reading);
      else if (reading.kind === 'ticket') this.onTicket(reading);
    }
    this.stats.evaluationMs += performance.now() - started;
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

  private track(truck: TruckInfo): TruckTrack {
    let track = this.tracks.get(truck.id);
    if (!track) {
      const initial = (): TrackState => ({ previous: null, suspect: null, rules: this.fixRules.map((r) => r.initialState()) });
      track = { fixes: [], base: initial(), state: initial(), book: new TicketBook(this.deps.config.maxTripH * 3_600_000) };
      this.tracks.set(truck.id, track);
    }
    return track;
  }

  private onFix(fix: TruckFix): void {
    const truck = this.deps.registry().truckByDevice(fix.deviceId);
    if (!truck) {
      this.stats.unregistered++;
      return;
    }
    this.stats.fixes++;
    const track = this.track(truck);
    const { fixes } = track;
    const newest = fixes.at(-1);
    if (!newest || fix.ts > newest.ts) {
      this.apply(truck, track, fix, track.state, true);
      fixes.push(fix);
      this.trim(truck, track);
      return;
    }
    if (fix.ts < fixes[0]!.ts) {
      this.stats.tooLate++;
      return;
    }
    let i = fixes.length;
    while (i > 0 && fixes[i - 1]!.ts > fix.ts) i--;
    if (fixes[i - 1]?.ts === fix.ts) {
      this.stats.duplicates++;
      return;
    }
    fixes.splice(i, 0, fix);
    this.stats.replays++;
    track.state = structuredClone(track.base);
    for (const f of fixes) this.apply(truck, track, f, track.state, true);
  }

  /** Moves fixes older than the reorder window into the base state (without reporting again). */
  private trim(truck: TruckInfo, track: TruckTrack): void {
    const { fixes } = track;
    const horizon = fixes.at(-1)!.ts - this.deps.config.reorderWindowS * 1000;
    while (fixes.length > 1 && (fixes[0]!.ts < horizon || fixes.length > MAX_TRACK_FIXES)) this.apply(truck, track, fixes.shift()!, track.base, false);
  }

  private apply(truck: TruckInfo, track: TruckTrack, fix: TruckFix, state: TrackState, live: boolean): void {
    const { config } = this.deps;
    const position: LonLat = [fix.lon, fix.lat];
    const previous = state.previous;
    if (previous && this.implausible(previous, fix, position)) {
      // Two implausible fixes in a row that agree with each other: the truck really is there.
      const suspect = state.suspect;
      if (!suspect || this.implausible(suspect, fix, position)) {
        if (live) this.stats.outliers++;
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
      loaded: fix.load_kg !== undefined ? fix.load_kg > config.loadedKg : track.book.loadedAt(fix.ts),
      registry,
      config,
      report: live ? (finding) => this.deps.onFinding({ ...finding, truck }) : () => {},
      speedLimitAt: this.deps.speedLimitAt,
      spill: live ? (kind, from, to, ts) => this.deps.onSpill({ kind, truck, from, to, ts }) : () => {},
    };
    this.fixRules.forEach((rule, i) => {
      if (!rule.fleets.includes(truck.fleet)) return;
      context.rule = rule.type;
      try {
        rule.onFix(context, state.rules[i]);
      } catch (error) {
        this.ruleFailed(rule.type, truck, error);
      }
    });
    state.previous = fix;
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
      this.settling.push({ due: (this.deps.clock ?? Date.now)() + this.deps.config.ticketSettleS * 1000, truckId: truck.id, ticket });
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
      report: (finding: Omit<Finding, 'truck'>) => this.deps.onFinding({ ...finding, truck }),
      spill: (kind: SpillKind, from: LonLat, to: LonLat, ts: number) => this.deps.onSpill({ kind, truck, from, to, ts }),
    };
    for (const rule of this.ticketRules) {
      if (!rule.fleets.includes(truck.fleet) || (rule.settles ?? false) !== settled) continue;
      try {
        rule.onTicket(context);
      } catch (error) {
        this.ruleFailed(rule.type, truck, error);
      }
    }
  }

  private ruleFailed(type: string, truck: TruckInfo, error: unknown): void {
    if (this.stats.ruleErrors++ < LOGGED_ERRORS) {
      this.deps.log.error({ rule: type, truck: truck.id, error: (error as Error).message, stack: (error as Error).stack }, `rule ${type} failed; skipped for this reading, the other rules ran`);
    }
  }
}

// An ultrasonic bin fill sensor (NB-IoT style: it wakes, connects, sends one reading and sleeps).
// The bin fills only while residents drop waste off, which in timed drop-off communities (定时投放)
// is inside the community's windows; kitchen bins fill fastest. Collection trucks empty it.
// Labels come from the bin's true state at each report, so an overflow that happens on its own is
// labelled as well as an injected one, and from what the sensor can observe: one without a lid
// counter (a LoRaWAN ultrasonic sensor, docs/simulator.md "Bins over LoRaWAN") sees no drop-off
// outside the windows, so none is labelled for it, though the residents still make it.
import type { Actor, Output } from '../engine/actor.ts';
import { DAY, HOUR, MINUTE, insideWindows, localMidnight, overlapWithWindows, windowIntervals } from '../../services/contract/local-time.ts';
import type { Random } from '../city/random.ts';
import { makeLabel, type Label, type LabelSubject } from './labels.ts';
import { TRUTH } from './thresholds.ts';
import { BIN_VIOLATIONS, type BinViolation, type ViolationRates } from './violations.ts';
import type { SimBin, SimCommunity, World } from './world.ts';

/** Share of the bin filled per day, by category. */
const DAILY_FILL: Record<SimBin['category'], [number, number]> = {
  kitchen: [0.8, 1.15],
  other: [0.6, 0.9],
  recyclable: [0.3, 0.6],
  hazardous: [0.05, 0.15],
};
/** Mass of a full bin, by category (240 L kitchen bins, 660 L bins for other waste). */
export const FULL_KG: Record<SimBin['category'], number> = { kitchen: 120, other: 230, recyclable: 40, hazardous: 30 };
/** Fill added by one drop-off. */
const PER_OPENING = 0.02;

interface Injection {
  at: number;
  kind: BinViolation;
}

/** What the bin's sensor can measure besides level, temperature, tilt and battery. */
export interface SensorAbilities {
  /** Counts lid openings (lid_opens), which out-of-window drop-offs are seen by. */
  countsLidOpens: boolean;
}

export class BinSensor implements Actor {
  readonly deviceId: string;
  private readonly subject: LabelSubject;
  private readonly community: SimCommunity;
  private readonly jurisdictions: string[];
  private readonly intervalMs: number;
  private readonly dailyFill: number;
  private readonly reportsFillPct: boolean;
  private readonly baseBatteryV: number;
  private fill: number;
  private updatedAt = 0;
  private opensSinceReport = 0;
  private day = -Infinity;
  private injections: Injection[] = [];
  private fire: { from: number; until: number; peak: number } | null = null;
  private tiltedUntil = 0;
  private batteryLow = false;
  private silent: { from: number; until: number } | null = null;
  private skipCollectionUntil = 0;
  private lastReport = 0;
  private startedAt = 0;
  private outOfWindowAt: number | null = null;
  private overflowStart = 0;
  // Open labels, keyed by type.
  private readonly open = new Map<string, Label>();
  private overflowReadings = 0;
  private overflowCause: Label['cause'] = 'natural';

  constructor(
    world: World,
    readonly bin: SimBin,
    private readonly random: Random,
    private readonly rates: ViolationRates,
    private readonly abilities: SensorAbilities = { countsLidOpens: true },
  ) {
    this.deviceId = bin.deviceId;
    this.subject = { kind: 'bin', id: bin.id, device_id: bin.deviceId };
    this.community = world.communities.get(bin.communityId)!;
    this.jurisdictions = world.jurisdictionsAt(bin.location);
    this.intervalMs = random.pick([10, 15, 20, 30]) * MINUTE;
    this.dailyFill = random.between(...DAILY_FILL[bin.category]);
    this.reportsFillPct = random.chance(0.5);
    this.baseBatteryV = random.between(3.45, 3.65);
    this.fill = random.between(0, 0.3);
  }

  start(t0: number): number {
    this.updatedAt = t0;
    this.lastReport = t0;
    this.startedAt = t0;
    return t0 + Math.floor(this.random.next() * this.intervalMs);
  }

  wake(now: number, out: Output): number {
    this.advanceTo(now);
    const readingDue = !this.silent || now >= this.silent.until;
    if (this.silent && now >= this.silent.until) {
      this.closeLabel('device_offline', now, out);
      this.silent = null;
    }
    if (readingDue) {
      this.report(now, out);
      this.lastReport = now;
    } else if (this.silent && !this.open.has('device_offline') && now >= this.silent.from) {
      // The first report that does not come.
      this.openLabel('device_offline', 'device_silent', now, this.lastReport + TRUTH.offlineIntervals * this.intervalMs);
    }
    return now + this.intervalMs;
  }

  finish(_now: number, out: Output): void {
    for (const label of this.open.values()) out.label({ ...label, end: null });
    this.open.clear();
  }

  /** Emptied by a collection truck; returns the kilograms taken. Skipped bins keep their waste. */
  collect(t: number, out: Output): number {
    this.advanceTo(t);
    if (t < this.skipCollectionUntil) return 0;
    const kg = Math.min(this.fill, 1.1) * FULL_KG[this.bin.category];
    this.fill = this.random.between(0, 0.03);
    this.overflowReadings = 0;
    this.closeLabel('overflow', t, out);
    this.closeLabel('missed_collection', t, out);
    return kg;
  }

  get category(): SimBin['category'] {
    return this.bin.category;
  }

  /** Drop-offs and injected events from the last update to t. */
  private advanceTo(t: number): void {
    if (t <= this.updatedAt) return;
    for (let dayStart = localMidnight(this.updatedAt); dayStart <= t; dayStart += DAY) if (dayStart > this.day) this.planDay(dayStart);
    // Drop-offs: a Poisson number of openings over the window time passed.
    const windowMs = overlapWithWindows(this.community.windows, this.updatedAt, t);
    const windowDayMs = this.community.windows.length > 0 ? overlapWithWindows(this.community.windows, localMidnight(t), localMidnight(t) + DAY) : DAY;
    const expected = ((this.dailyFill / PER_OPENING) * windowMs) / windowDayMs;
    const opens = this.random.poisson(expected);
    this.opensSinceReport += opens;
    this.fill += opens * PER_OPENING;
    while (this.injections[0] && this.injections[0].at <= t) this.inject(this.injections.shift()!);
    this.updatedAt = t;
  }

  private planDay(dayStart: number): void {
    this.day = dayStart;
    for (const kind of BIN_VIOLATIONS) {
      if (!this.random.chance(this.rates[kind])) continue;
      let at = dayStart + this.random.next() * DAY;
      if (kind === 'out_of_window_dropoff') {
        // A community without windows allows drop-off at any time.
        if (this.community.windows.length === 0) continue;
        // At least an hour from any window, so the report holding it is outside the window too.
        const clear = (x: number) => windowIntervals(this.community.windows, x - HOUR, x + HOUR).length === 0;
        const candidates = Array.from({ length: 48 }, (_, i) => dayStart + (i + 0.5) * 30 * MINUTE).filter(clear);
        if (candidates.length === 0) continue;
        at = this.random.pick(candidates);
      }
      // Nothing is injected before the run starts.
      if (at >= this.startedAt) this.injections.push({ at, kind });
    }
    this.injections.sort((a, b) => a.at - b.at);
  }

  private inject({ at, kind }: Injection): void {
    const r = this.random;
    if (kind === 'bin_overflow') {
      // Bulky waste left at the bin, and the next two rounds pass it by.
      this.fill += r.between(0.5, 0.7);
      this.skipCollectionUntil = at + r.between(14, 20) * HOUR;
      this.overflowCause = 'bin_overflow';
    } else if (kind === 'fire_risk') this.fire = { from: at, until: at + r.between(30, 60) * MINUTE, peak: r.between(70, 90) };
    else if (kind === 'tilt') this.tiltedUntil = at + r.between(1, 6) * HOUR;
    else if (kind === 'low_battery') this.batteryLow = true;
    else if (kind === 'device_silent') {
      if (!this.silent) this.silent = { from: at, until: at + r.between(3, 8) * HOUR };
    } else if (kind === 'out_of_window_dropoff') {
      const opens = r.int(1, 3);
      this.opensSinceReport += opens;
      this.fill += opens * PER_OPENING;
      this.outOfWindowAt = at;
    }
  }

  private temperature(t: number): number {
    const hour = (t - localMidnight(t)) / HOUR;
    const ambient = 12 + 6 * Math.sin(((hour - 9) / 24) * 2 * Math.PI);
    if (!this.fire || t < this.fire.from) return ambient;
    const { from, until, peak } = this.fire;
    if (t < until) return ambient + (peak - ambient) * Math.min(1, (t - from) / (10 * MINUTE));
    // Cools with a 15-minute time constant once it is out.
    const cooled = ambient + (peak - ambient) * Math.exp(-(t - until) / (15 * MINUTE));
    if (cooled < ambient + 1) this.fire = null;
    return cooled;
  }

  private report(now: number, out: Output): void {
    const r = this.random;
    const temp = this.temperature(now);
    const tilt = now < this.tiltedUntil ? r.between(70, 90) : Math.abs(r.normal(2, 1));
    const battery = this.batteryLow ? r.between(3.05, 3.2) : this.baseBatteryV + r.normal(0, 0.01);
    const fillPct = Math.min(this.fill, 1) * 100;
    const payload: Record<string, unknown> = {
      temp_c: round1(temp + r.normal(0, 0.3)),
      tilt_deg: round1(tilt),
      battery_v: Math.round(battery * 100) / 100,
      rssi: Math.round(r.between(-110, -80)),
      lid_opens: this.opensSinceReport,
    };
    if (this.reportsFillPct) payload.fill_pct = round1(Math.min(100, Math.max(0, fillPct + r.normal(0, 0.7))));
    // The sensor sits at the rim; a bin filled above it reads about its 50 mm blind zone.
    else payload.distance_mm = Math.max(50, Math.round(this.bin.depthMm * (1 - Math.min(this.fill, 1)) + r.normal(0, 8)));
    out.message({ at: now, deviceId: this.deviceId, deviceClass: 'bins', payload });
    this.opensSinceReport = 0;

    // Ground truth at this report.
    if (fillPct >= TRUTH.overflowRaisePct) {
      this.overflowReadings++;
      if (this.overflowReadings === 1) this.overflowStart = now;
      if (this.overflowReadings === TRUTH.overflowReadings) this.openLabel('overflow', this.overflowCause, this.overflowStart, now);
      const overflow = this.open.get('overflow');
      if (overflow && now >= overflow.detectableAt + TRUTH.missedCollectionH * HOUR) {
        this.openLabel('missed_collection', this.overflowCause, overflow.detectableAt + TRUTH.missedCollectionH * HOUR, now);
      }
    } else if (fillPct <= TRUTH.overflowClearPct) {
      this.overflowReadings = 0;
      this.overflowCause = 'natural';
      this.closeLabel('overflow', now, out);
      this.closeLabel('missed_collection', now, out);
    }
    this.track('fire_risk', 'fire_risk', temp > TRUTH.fireC, now, out);
    this.track('tilt', 'tilt', tilt > TRUTH.tiltDeg, now, out);
    this.track('low_battery', 'low_battery', battery < TRUTH.lowBatteryV, now, out);
    // The drop-off happened either way (its waste is in the bin); a sensor without a lid counter
    // cannot see it, and no rule could raise it from what that sensor sends.
    if (this.outOfWindowAt !== null && this.abilities.countsLidOpens && !insideWindows(this.community.windows, now)) {
      const at = this.outOfWindowAt;
      this.openLabel('out_of_window_dropoff', 'out_of_window_dropoff', at, now);
      this.closeLabel('out_of_window_dropoff', at, out);
    }
    this.outOfWindowAt = null;
  }

  private track(type: 'fire_risk' | 'tilt' | 'low_battery', cause: BinViolation, holds: boolean, now: number, out: Output): void {
    if (holds) this.openLabel(type, cause, now, now);
    else this.closeLabel(type, now, out);
  }

  private openLabel(type: Label['type'], cause: Label['cause'], start: number, detectableAt: number): void {
    if (this.open.has(type)) return;
    this.open.set(
      type,
      makeLabel({ type, cause, subject: this.subject, jurisdictions: this.jurisdictions, start, end: null, detectableAt, location: this.bin.location, detail: { community_id: this.bin.communityId, category: this.bin.category } }),
    );
  }

  private closeLabel(type: Label['type'], end: number, out: Output): void {
    const label = this.open.get(type);
    if (!label) return;
    this.open.delete(type);
    out.label({ ...label, end });
  }
}

function round1(value: number): number {
  return Math.round(value * 10) / 10;
}

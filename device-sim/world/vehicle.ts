// What every simulated truck's GPS terminal does: a fix every 10–30 s on the move, every minute
// standing with the engine on, every five minutes parked; plus the events its plan holds (tickets,
// collections) when their time comes. Subclasses plan the movements.
import type { Actor, Output, TrueMessage } from '../engine/actor.ts';
import { HOUR, MINUTE } from '../../services/contract/local-time.ts';
import type { LonLat } from '../engine/path.ts';
import type { Random } from '../city/random.ts';
import { Timeline, type VehicleState } from './timeline.ts';
import type { SimTruck } from './world.ts';

const PARKED_INTERVAL_MS = 5 * MINUTE;
const IDLE_INTERVAL_MS = MINUTE;

export interface PlannedEvent {
  at: number;
  run: (out: Output) => void;
}

export abstract class Vehicle implements Actor {
  readonly deviceId: string;
  protected timeline!: Timeline;
  private readonly movingIntervalMs: number;
  private events: PlannedEvent[] = [];
  private nextFix = 0;

  constructor(
    protected readonly truck: SimTruck,
    protected readonly random: Random,
    /** Whether the terminal reports tipper, cover and load sensors (muck trucks do). */
    private readonly bodySensors: boolean,
  ) {
    this.deviceId = truck.deviceId;
    this.movingIntervalMs = random.pick([10, 15, 20, 30]) * 1000;
  }

  protected abstract home(): LonLat;
  /** Extends the plan until `until`. */
  protected abstract plan(until: number): void;

  start(t0: number): number {
    this.timeline = new Timeline(t0, this.home());
    this.nextFix = t0 + Math.floor(this.random.next() * PARKED_INTERVAL_MS);
    this.plan(this.nextFix + 2 * HOUR);
    return this.nextFix;
  }

  wake(now: number, out: Output): number {
    this.plan(now + 2 * HOUR);
    while (this.events[0] && this.events[0].at <= now) this.events.shift()!.run(out);
    if (now >= this.nextFix) {
      const s = this.timeline.stateAt(now);
      out.message(this.fix(now, s));
      const interval = s.speedKmh > 0 ? this.movingIntervalMs : s.ignition ? IDLE_INTERVAL_MS : PARKED_INTERVAL_MS;
      this.nextFix = now + Math.round(interval * this.random.between(0.9, 1.1));
    }
    return Math.min(this.nextFix, this.events[0]?.at ?? Infinity);
  }

  finish(_now: number, _out: Output): void {}

  protected schedule(at: number, run: (out: Output) => void): void {
    this.events.push({ at, run });
    this.events.sort((a, b) => a.at - b.at);
  }

  private fix(now: number, s: VehicleState): TrueMessage {
    const moving = s.speedKmh > 0;
    const payload: Record<string, unknown> = {
      lat: s.position[1],
      lon: s.position[0],
      speed_kmh: moving ? Math.max(0, Math.round((s.speedKmh + this.random.normal(0, 1.5)) * 10) / 10) : 0,
      heading: s.heading,
      ignition: s.ignition,
    };
    if (this.bodySensors) Object.assign(payload, { tipper_up: s.tipperUp, cover_closed: s.coverClosed, load_kg: Math.round(s.loadKg / 10) * 10 });
    return { at: now, deviceId: this.deviceId, deviceClass: 'trucks', moving, payload };
  }
}

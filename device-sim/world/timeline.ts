// A vehicle's planned movements: consecutive phases of standing or driving, each with the state
// of its sensors. The true state at any time is read off the plan.
import { Path, type LonLat } from '../engine/path.ts';

export interface VehicleState {
  position: LonLat;
  heading: number;
  speedKmh: number;
  ignition: boolean;
  tipperUp: boolean;
  coverClosed: boolean;
  loadKg: number;
}

export type Attributes = Pick<VehicleState, 'ignition' | 'tipperUp' | 'coverClosed'> & { loadFrom: number; loadTo: number };

export interface Phase extends Attributes {
  start: number;
  end: number;
  /** Driving along a path, or standing (null) at `at`. */
  path: Path | null;
  at: LonLat;
  heading: number;
  speedKmh: number;
}

export class Timeline {
  private phases: Phase[] = [];
  private position: LonLat;
  private heading = 0;
  private time: number;

  constructor(start: number, position: LonLat) {
    this.time = start;
    this.position = position;
  }

  /** Time the plan runs to. */
  get end(): number {
    return this.time;
  }

  get lastPosition(): LonLat {
    return this.position;
  }

  stand(durationMs: number, attributes: Attributes): Phase {
    return this.add({ ...attributes, start: this.time, end: this.time + Math.max(1, Math.round(durationMs)), path: null, at: this.position, heading: this.heading, speedKmh: 0 });
  }

  /** Standing until an absolute time (nothing when it has passed). */
  standUntil(t: number, attributes: Attributes): void {
    if (t > this.time) this.stand(t - this.time, attributes);
  }

  drive(path: Path, speedKmh: number, attributes: Attributes): Phase {
    const duration = Math.max(1000, Math.round((path.length / (speedKmh / 3.6)) * 1000));
    const phase = this.add({ ...attributes, start: this.time, end: this.time + duration, path, at: path.points[0]!, heading: path.at(0).heading, speedKmh });
    this.position = path.points.at(-1)!;
    this.heading = path.at(path.length).heading;
    return phase;
  }

  /** The true state at t; phases that ended before t are forgotten (time only moves forward). */
  stateAt(t: number): VehicleState {
    while (this.phases.length > 1 && this.phases[0]!.end <= t) this.phases.shift();
    const phase = this.phases[0];
    if (!phase) throw new Error('nothing planned');
    return stateIn(phase, t);
  }

  /** The phases between two times, for the ground-truth oracle (before they are forgotten). */
  between(from: number, to: number): Phase[] {
    return this.phases.filter((p) => p.end > from && p.start < to);
  }

  private add(phase: Phase): Phase {
    this.phases.push(phase);
    this.time = phase.end;
    return phase;
  }
}

export function stateIn(phase: Phase, t: number): VehicleState {
  const f = Math.min(1, Math.max(0, (t - phase.start) / (phase.end - phase.start)));
  const loadKg = phase.loadFrom + (phase.loadTo - phase.loadFrom) * f;
  const base = { ignition: phase.ignition, tipperUp: phase.tipperUp, coverClosed: phase.coverClosed, loadKg };
  if (!phase.path) return { ...base, position: phase.at, heading: phase.heading, speedKmh: 0 };
  const { position, heading } = phase.path.at(phase.path.length * f);
  return { ...base, position, heading, speedKmh: phase.speedKmh };
}

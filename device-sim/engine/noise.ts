// What the field does to the messages devices mean to send: GPS jitter and outliers, dead zones
// whose fixes arrive later as one back-filled batch, duplicated and late (out-of-order) deliveries,
// device clocks that run off, and connections that drop. Deterministic per device and seed; the
// ground truth is never touched, only the messages.
import type CheapRuler from 'cheap-ruler';
import type { DeviceClass } from '../../services/contract/topics.ts';
import { Random } from '../city/random.ts';
import type { TrueMessage } from './actor.ts';
import { CST_OFFSET_MS, HOUR } from '../../services/contract/local-time.ts';

export interface NoiseOptions {
  /** Mean horizontal GPS error in metres (errors are Rayleigh-distributed around it). */
  jitterM: number;
  /** Share of fixes thrown 300–1,500 m off. */
  outlierRate: number;
  /** Dead zones (tunnels, underpasses) a moving truck enters per hour; each lasts 1–5 min. */
  deadZonesPerHour: number;
  /** Share of messages delivered twice. */
  duplicateRate: number;
  /** Share of messages held back 5–60 s, so later ones overtake them. */
  outOfOrderRate: number;
  /** Standard deviation of a device clock's offset, in seconds. */
  clockSkewS: number;
  /** Connection drops per connected device and hour; the device is back after 5–60 s. */
  reconnectsPerHour: number;
}

export const DEFAULT_NOISE: NoiseOptions = {
  jitterM: 10,
  outlierRate: 0.002,
  deadZonesPerHour: 0.5,
  duplicateRate: 0.01,
  outOfOrderRate: 0.01,
  clockSkewS: 2,
  reconnectsPerHour: 0.05,
};

export const NO_NOISE: NoiseOptions = { jitterM: 0, outlierRate: 0, deadZonesPerHour: 0, duplicateRate: 0, outOfOrderRate: 0, clockSkewS: 0, reconnectsPerHour: 0 };

export type Outgoing =
  | { kind: 'publish'; at: number; deviceId: string; deviceClass: DeviceClass; payload: Record<string, unknown> | Record<string, unknown>[] }
  | { kind: 'reconnect'; at: number; deviceId: string; deviceClass: DeviceClass; downForMs: number };

interface DeviceNoise {
  random: Random;
  skewMs: number;
  lastAt: number;
  deadUntil: number;
  held: Record<string, unknown>[];
}

/** Mean of a Rayleigh distribution is sigma * sqrt(pi / 2). */
const RAYLEIGH_MEAN = Math.sqrt(Math.PI / 2);

export class Noise {
  private readonly devices = new Map<string, DeviceNoise>();

  constructor(
    private readonly options: NoiseOptions,
    private readonly seed: string,
    private readonly ruler: CheapRuler,
  ) {}

  apply(message: TrueMessage, push: (out: Outgoing) => void): void {
    const o = this.options;
    const d = this.device(message.deviceId);
    const r = d.random;
    const hoursSinceLast = d.lastAt === 0 ? 0 : (message.at - d.lastAt) / HOUR;
    d.lastAt = message.at;
    // Sleepy bin sensors connect per report; the others hold a connection that can drop.
    if (message.deviceClass !== 'bins' && r.chance(o.reconnectsPerHour * hoursSinceLast)) {
      push({ kind: 'reconnect', at: message.at, deviceId: message.deviceId, deviceClass: message.deviceClass, downForMs: Math.round(r.between(5, 60) * 1000) });
    }
    const payload = { ts: this.stamp(message, d), ...message.payload };
    if (message.deviceClass === 'trucks') this.displace(payload, r);

    if (message.deviceClass === 'trucks' && message.moving && d.deadUntil === 0 && r.chance(o.deadZonesPerHour * hoursSinceLast)) {
      d.deadUntil = message.at + r.between(60, 300) * 1000;
    }
    if (d.deadUntil > 0) {
      d.held.push(payload);
      if (message.at < d.deadUntil) return;
      // Out of the dead zone: everything stored, with this fix, in one back-filled batch.
      push({ kind: 'publish', at: message.at, deviceId: message.deviceId, deviceClass: message.deviceClass, payload: d.held });
      d.held = [];
      d.deadUntil = 0;
      return;
    }
    const late = r.chance(o.outOfOrderRate) ? r.between(5, 60) * 1000 : 0;
    const publish = { kind: 'publish' as const, deviceId: message.deviceId, deviceClass: message.deviceClass, payload };
    push({ ...publish, at: message.at + late });
    if (r.chance(o.duplicateRate)) push({ ...publish, at: message.at + late + r.between(0.2, 5) * 1000 });
  }

  /** Truck terminals send epoch ms; bin sensors and weighbridges send local time with its offset. */
  private stamp(message: TrueMessage, d: DeviceNoise): number | string {
    const ts = Math.round(message.at + d.skewMs);
    if (message.deviceClass === 'trucks') return ts;
    return `${new Date(ts + CST_OFFSET_MS).toISOString().slice(0, 23)}+08:00`;
  }

  private displace(payload: Record<string, unknown>, r: Random): void {
    const o = this.options;
    let east = 0;
    let north = 0;
    if (o.jitterM > 0) {
      const sigma = o.jitterM / RAYLEIGH_MEAN;
      east = r.normal(0, sigma);
      north = r.normal(0, sigma);
    }
    if (r.chance(o.outlierRate)) {
      const distance = r.between(300, 1500);
      const angle = r.between(0, 2 * Math.PI);
      east += distance * Math.cos(angle);
      north += distance * Math.sin(angle);
    }
    const [lon, lat] = this.ruler.offset([payload.lon as number, payload.lat as number], east, north);
    payload.lon = Math.round(lon * 1e6) / 1e6;
    payload.lat = Math.round(lat * 1e6) / 1e6;
  }

  private device(deviceId: string): DeviceNoise {
    let d = this.devices.get(deviceId);
    if (!d) {
      const random = new Random(`${this.seed}/noise/${deviceId}`);
      d = { random, skewMs: Math.max(-60_000, Math.min(60_000, random.normal(0, this.options.clockSkewS * 1000))), lastAt: 0, deadUntil: 0, held: [] };
      this.devices.set(deviceId, d);
    }
    return d;
  }
}

// What the bridge remembers of each sensor's uplinks: the latest ones, to know an uplink delivered
// again (ChirpStack re-delivering what was not acknowledged, a second network-server connection)
// as the one already taken; and the frame counter, whose gaps are uplinks the service has not seen.
// LoRaWAN 1.0.3 §4.3.1.5: FCntUp counts up by one with every uplink of a session and starts from
// 0 again at a join (or an ABP device's reset).
//
// Uplinks do not always come in order: a broker re-delivers the ones not acknowledged before a
// reconnect ahead of, or after, newer ones. So a gap is remembered (the counters missing), and a
// missing counter that arrives late is taken off again.

/** A jump in FCnt larger than this is taken as a new session (a device swapped, counters reset), not as lost uplinks. */
const MAX_COUNTED_GAP = 16_384;
/** Missing counters remembered per sensor, the most recent; older ones stay counted as missing for good. */
const MAX_REMEMBERED_MISSING = 1024;
/** A counter this low, far below the latest, is a session starting again rather than a late uplink. */
const NEW_SESSION_BELOW = 16;

interface SensorUplinks {
  /** Keys of the latest uplinks taken, oldest first. */
  keys: string[];
  highest: number | null;
  /** Counters between the first and the highest seen that have not come (insertion order: oldest first). */
  missing: Set<number>;
}

export interface UplinkGap {
  /** Change in the uplinks missing: the gap before this one (positive), or -1 for a late one that filled a gap. */
  missing: number;
  /** The counter started again (a join, a reset) or jumped too far to count. */
  reset: boolean;
}

export class UplinkTracker {
  private readonly sensors = new Map<string, SensorUplinks>();

  constructor(private readonly memory: number) {}

  /** Whether this uplink of this sensor was taken already. */
  seen(deviceId: string, uplinkKey: string): boolean {
    return this.sensors.get(deviceId)?.keys.includes(uplinkKey) ?? false;
  }

  /**
   * Records an uplink taken (after it was made durable, so that one that failed is taken when it
   * comes again), and what its frame counter says of the uplinks before it.
   */
  taken(deviceId: string, uplinkKey: string, fCnt: number): UplinkGap {
    let sensor = this.sensors.get(deviceId);
    if (!sensor) {
      sensor = { keys: [], highest: null, missing: new Set() };
      this.sensors.set(deviceId, sensor);
    }
    sensor.keys.push(uplinkKey);
    if (sensor.keys.length > this.memory) sensor.keys.shift();
    const { highest } = sensor;
    if (highest === null) {
      sensor.highest = fCnt;
      return { missing: 0, reset: false };
    }
    if (fCnt > highest) {
      const step = fCnt - highest;
      if (step > MAX_COUNTED_GAP) return this.restart(sensor, fCnt);
      for (let counter = Math.max(highest + 1, fCnt - MAX_REMEMBERED_MISSING); counter < fCnt; counter++) sensor.missing.add(counter);
      for (const counter of sensor.missing) {
        if (sensor.missing.size <= MAX_REMEMBERED_MISSING) break;
        sensor.missing.delete(counter);
      }
      sensor.highest = fCnt;
      return { missing: step - 1, reset: false };
    }
    // A late uplink filling a gap; else a retransmission (the same counter) or an older one already
    // taken, unless the counter is back near 0: a new session.
    if (sensor.missing.delete(fCnt)) return { missing: -1, reset: false };
    if (fCnt < NEW_SESSION_BELOW && highest - fCnt > NEW_SESSION_BELOW) return this.restart(sensor, fCnt);
    return { missing: 0, reset: false };
  }

  /** A join starts a new session: its first uplink counts from 0. */
  joined(deviceId: string): void {
    const sensor = this.sensors.get(deviceId);
    if (sensor) {
      sensor.highest = null;
      sensor.missing.clear();
    }
  }

  /** Forgets sensors no longer provisioned. */
  retain(deviceIds: ReadonlySet<string>): void {
    for (const id of this.sensors.keys()) if (!deviceIds.has(id)) this.sensors.delete(id);
  }

  private restart(sensor: SensorUplinks, fCnt: number): UplinkGap {
    sensor.highest = fCnt;
    sensor.missing.clear();
    return { missing: 0, reset: true };
  }
}

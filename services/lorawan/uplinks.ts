// What the bridge remembers of each sensor's uplinks: the latest ones, to know an uplink delivered
// again (ChirpStack re-delivering what was not acknowledged, a second network-server connection)
// as the one already taken; and the frame counter, whose gaps are uplinks the service never saw.
// LoRaWAN 1.0.3 §4.3.1.5: FCntUp counts up by one with every uplink of a session and starts from
// 0 again at a join (or an ABP device's reset), so a counter going back is a new session, not a gap.

/** A jump in FCnt larger than this is taken as a new session (a device swapped, counters reset), not as lost uplinks. */
const MAX_COUNTED_GAP = 16_384;
/** An uplink at most this many behind the latest is a late one of the same session; further back, the counter started again. */
const LATE_WINDOW = 16;

interface SensorUplinks {
  /** Keys of the latest uplinks taken, oldest first. */
  keys: string[];
  lastFCnt: number | null;
}

export interface UplinkGap {
  /** Uplinks the frame counter says were sent before this one and never arrived. */
  missing: number;
  /** The counter went back (a join, a reset) or jumped too far to count. */
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
      sensor = { keys: [], lastFCnt: null };
      this.sensors.set(deviceId, sensor);
    }
    sensor.keys.push(uplinkKey);
    if (sensor.keys.length > this.memory) sensor.keys.shift();
    const last = sensor.lastFCnt;
    const step = last === null ? null : fCnt - last;
    if (step === null || step > MAX_COUNTED_GAP || (step < 0 && -step > LATE_WINDOW)) {
      // The first uplink seen, or a counter that started again or jumped: nothing to count.
      sensor.lastFCnt = fCnt;
      return { missing: 0, reset: step !== null };
    }
    if (step > 0) sensor.lastFCnt = fCnt;
    // Step 0 (a retransmission) or a little back (a late uplink): the counter stays where it was.
    return { missing: Math.max(0, step - 1), reset: false };
  }

  /** A join starts a new session: its first uplink counts from 0. */
  joined(deviceId: string): void {
    const sensor = this.sensors.get(deviceId);
    if (sensor) sensor.lastFCnt = null;
  }

  /** Forgets sensors no longer provisioned. */
  retain(deviceIds: ReadonlySet<string>): void {
    for (const id of this.sensors.keys()) if (!deviceIds.has(id)) this.sensors.delete(id);
  }
}

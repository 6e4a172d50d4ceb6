// A household-waste collection truck (环卫车) for one category. After each drop-off period it drives
// a round of its communities, empties their bins of its category, and takes the load to its plant
// or transfer station, where the weighbridge issues one ticket per community of origin (the
// tonnage the separation rate is computed from).
import type { Output } from '../engine/actor.ts';
import { DAY, MINUTE, localMidnight, minutesOf } from '../../services/contract/local-time.ts';
import { Path, type LonLat } from '../engine/path.ts';
import type { Random } from '../city/random.ts';
import { FULL_KG, type BinSensor } from './bin-sensor.ts';
import type { Attributes } from './timeline.ts';
import { Vehicle } from './vehicle.ts';
import type { SimBin, SimCommunity, SimSite, SimTruck, World } from './world.ts';

/** Rounds start after the morning and evening drop-off windows; dry categories once a day. */
const ROUNDS: Record<SimBin['category'], string[]> = { kitchen: ['09:30', '20:30'], other: ['09:30', '20:30'], recyclable: ['10:00'], hazardous: ['10:30'] };

export class CollectionTruck extends Vehicle {
  private readonly capacityKg: number;
  private carried = new Map<string, number>();
  private tickets = 0;

  constructor(
    private readonly world: World,
    truck: SimTruck,
    random: Random,
    readonly category: SimBin['category'],
    private readonly depot: SimSite,
    /** The communities of its round, in driving order, with their bins of its category. */
    private readonly round: { community: SimCommunity; bins: BinSensor[] }[],
  ) {
    super(truck, random, false);
    this.capacityKg = truck.ratedGrossKg - truck.tareKg;
  }

  protected home(): LonLat {
    return this.depot.centre;
  }

  protected plan(until: number): void {
    const tl = this.timeline;
    while (tl.end < until) {
      const t = tl.end;
      const starts = [0, 1].flatMap((d) => ROUNDS[this.category].map((hhmm) => localMidnight(t) + d * DAY + minutesOf(hhmm) * MINUTE));
      const next = starts.find((s) => s >= t) ?? t + DAY;
      tl.standUntil(next + this.random.between(0, 10) * MINUTE, off);
      if (this.round.length === 0) {
        tl.stand(DAY, off);
        continue;
      }
      tl.stand(2 * MINUTE, on);
      let expected = 0;
      for (const stop of this.round) {
        const stopKg = stop.bins.length * FULL_KG[this.category] * 0.8;
        if (expected + stopKg > this.capacityKg && expected > 0) {
          this.unload();
          expected = 0;
        }
        this.driveTo(stop.community.centre);
        const parked = tl.stand((2 + stop.bins.length / 3) * MINUTE, on);
        this.schedule(parked.end, (out) => this.collect(parked.end, stop.community.id, stop.bins, out));
        expected += stopKg;
      }
      this.unload();
      tl.stand(2 * MINUTE, off);
    }
  }

  private driveTo(target: LonLat): void {
    const from = this.timeline.lastPosition;
    if (this.world.ruler.distance(from, target) < 1) return;
    this.timeline.drive(new Path(this.world.ruler, this.world.drive(from, target)), this.random.between(25, 40), on);
  }

  /** To the depot, over the weighbridge (one ticket per community of origin), and tip. */
  private unload(): void {
    this.driveTo(this.depot.centre);
    const weighed = this.timeline.stand(MINUTE, on);
    this.schedule(weighed.end, (out) => this.weigh(weighed.end, out));
    this.timeline.stand(4 * MINUTE, on);
  }

  private collect(at: number, communityId: string, bins: BinSensor[], out: Output): void {
    const kg = bins.reduce((sum, bin) => sum + bin.collect(at, out), 0);
    this.carried.set(communityId, (this.carried.get(communityId) ?? 0) + kg);
  }

  private weigh(at: number, out: Output): void {
    const scale = this.depot.scaleDeviceId;
    let printed = 0;
    for (const [origin, kg] of this.carried) {
      // Household waste goes over a 20 kg weighbridge; the small dry loads over a 1 kg platform scale.
      const division = this.category === 'kitchen' || this.category === 'other' ? 20 : 1;
      const net = Math.round(kg / division) * division;
      if (!scale || net === 0) continue;
      // One ticket after another, a second apart: tickets of one weighbridge are one series.
      out.message({
        at: at + 1000 * printed++,
        deviceId: scale,
        deviceClass: 'scales',
        payload: {
          ticket_id: `${this.depot.id}-${this.truck.id}-${++this.tickets}`,
          plate: this.truck.plate,
          truck_device_id: this.truck.deviceId,
          gross_kg: this.truck.tareKg + net,
          tare_kg: this.truck.tareKg,
          net_kg: net,
          category: this.category,
          direction: 'in',
          origin,
        },
      });
    }
    this.carried.clear();
  }
}

const on: Attributes = { ignition: true, tipperUp: false, coverClosed: true, loadFrom: 0, loadTo: 0 };
const off: Attributes = { ...on, ignition: false };

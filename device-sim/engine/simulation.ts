// The simulated city in motion: every device an actor woken in time order, their messages passed
// through the noise of the field into an outbox ordered by delivery time, and the ground-truth
// labels held until the run has passed their end. Deterministic: the same city, seed, start and
// settings give the same messages and the same labels, however fast the run goes.
import type { City } from '../city/generate.ts';
import { Random } from '../city/random.ts';
import type { Label } from '../world/labels.ts';
import { BinSensor } from '../world/bin-sensor.ts';
import { CollectionTruck } from '../world/collection-truck.ts';
import { MuckTruck } from '../world/muck-truck.ts';
import type { ViolationRates } from '../world/violations.ts';
import { World, type SimBin, type SimCommunity, type SimSite } from '../world/world.ts';
import type { Actor, Output } from './actor.ts';
import { TimeHeap } from './heap.ts';
import { Noise, type NoiseOptions, type Outgoing } from './noise.ts';

export interface SimulationOptions {
  seed: string;
  /** Simulated start, epoch ms. */
  start: number;
  rates: ViolationRates;
  noise: NoiseOptions;
  /** Check every truck trip against the rule catalogue, not only those with a violation (tests). */
  audit?: boolean;
  /**
   * Bins (device ids) whose sensors count no lid openings in this run (LoRaWAN sensors sending
   * their own frames): no out-of-window drop-off is labelled for them, as none can be seen.
   */
  withoutLidCounter?: ReadonlySet<string>;
}

/** Collection trucks per category, in a repeating pattern of ten: 4 kitchen, 4 other, 1 each of the dry ones. */
const COLLECTION_PATTERN: SimBin['category'][] = ['kitchen', 'other', 'kitchen', 'other', 'recyclable', 'kitchen', 'other', 'hazardous', 'kitchen', 'other'];

export class Simulation {
  readonly world: World;
  readonly actors: Actor[] = [];
  private readonly wakes = new TimeHeap<Actor>();
  private readonly outbox = new TimeHeap<Outgoing>();
  private readonly labels = new TimeHeap<Label>();
  private readonly noise: Noise;
  private readonly output: Output;
  private clock: number;

  constructor(
    city: Pick<City, 'bundle' | 'roads'>,
    private readonly options: SimulationOptions,
  ) {
    this.world = new World(city);
    this.clock = options.start;
    this.noise = new Noise(options.noise, options.seed, this.world.ruler);
    this.output = {
      message: (m) => this.noise.apply(m, (o) => this.outbox.push(o.at, o)),
      // A label is final once the run is past both its end and the moment it became detectable.
      label: (l) => this.labels.push(Math.max(l.end ?? Infinity, l.detectableAt), l),
    };
    const random = (id: string) => new Random(`${options.seed}/${id}`);
    const bins = new Map<string, BinSensor>();
    for (const bin of this.world.bins) {
      const sensor = new BinSensor(this.world, bin, random(bin.deviceId), options.rates, { countsLidOpens: !options.withoutLidCounter?.has(bin.deviceId) });
      bins.set(bin.id, sensor);
      this.actors.push(sensor);
    }
    const collectors = this.world.trucks.filter((t) => t.fleet === 'collection');
    const rounds = this.rounds(collectors.map((_, i) => COLLECTION_PATTERN[i % COLLECTION_PATTERN.length]!), [...bins.values()]);
    collectors.forEach((truck, i) => {
      const { category, depot, round } = rounds[i]!;
      this.actors.push(new CollectionTruck(this.world, truck, random(truck.deviceId), category, depot, round));
    });
    for (const truck of this.world.trucks) if (truck.fleet === 'muck') this.actors.push(new MuckTruck(this.world, truck, random(truck.deviceId), options.rates, options.audit));
    for (const actor of this.actors) this.wakes.push(actor.start(options.start), actor);
  }

  /** Simulated time reached so far. */
  get now(): number {
    return this.clock;
  }

  /** Runs the city to `until`: hands every message due by then to `send`, and every final label to `label`. */
  advance(until: number, send: (message: Outgoing) => void, label: (label: Label) => void): void {
    while (this.wakes.peekTime() <= until) {
      const { at, value: actor } = this.wakes.pop()!;
      this.wakes.push(actor.wake(at, this.output), actor);
    }
    while (this.outbox.peekTime() <= until) send(this.outbox.pop()!.value);
    while (this.labels.peekTime() <= until) label(this.labels.pop()!.value);
    this.clock = until;
  }

  /** Ends the run at the time reached: labels still going on get no end; ones not yet detectable are left out. */
  finish(label: (label: Label) => void): void {
    for (const actor of this.actors) actor.finish(this.clock, this.output);
    while (this.labels.size > 0) {
      const l = this.labels.pop()!.value;
      if (l.detectableAt > this.clock || l.start > this.clock) continue;
      label(l.end !== null && l.end > this.clock ? { ...l, end: null } : l);
    }
  }

  /** Splits the communities among the collection trucks of each category, each round in driving order. */
  private rounds(categories: SimBin['category'][], bins: BinSensor[]) {
    const plants = this.world.sitesOfKind('plant');
    const transfers = this.world.sitesOfKind('transfer');
    const depots: Record<SimBin['category'], SimSite> = { kitchen: plants[0]!, other: plants[1 % plants.length]!, recyclable: transfers[0]!, hazardous: transfers.at(-1)! };
    const communities = [...this.world.communities.values()].sort((a, b) => a.centre[0] - b.centre[0] || a.centre[1] - b.centre[1]);
    const binsOf = new Map<string, BinSensor[]>();
    for (const bin of bins) {
      const key = `${bin.bin.communityId}/${bin.category}`;
      binsOf.set(key, [...(binsOf.get(key) ?? []), bin]);
    }
    return categories.map((category, i) => {
      const same = categories.map((c, k) => [c, k] as const).filter(([c]) => c === category).map(([, k]) => k);
      const share = same.indexOf(i);
      const chunk = Math.ceil(communities.length / same.length);
      const mine = communities.slice(share * chunk, (share + 1) * chunk).filter((c) => binsOf.has(`${c.id}/${category}`));
      return { category, depot: depots[category], round: this.order(depots[category].centre, mine).map((community) => ({ community, bins: binsOf.get(`${community.id}/${category}`)! })) };
    });
  }

  /** Nearest neighbour first, from the depot. */
  private order(from: [number, number], communities: SimCommunity[]): SimCommunity[] {
    const left = [...communities];
    const ordered: SimCommunity[] = [];
    let here = from;
    while (left.length > 0) {
      let best = 0;
      for (let i = 1; i < left.length; i++) if (this.world.ruler.distance(here, left[i]!.centre) < this.world.ruler.distance(here, left[best]!.centre)) best = i;
      const next = left.splice(best, 1)[0]!;
      ordered.push(next);
      here = next.centre;
    }
    return ordered;
  }
}

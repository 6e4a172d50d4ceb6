// A muck truck (渣土车) and its GPS terminal. With a permit it hauls in the permit's windows: loads
// at the site, is weighed out, drives the approved route with the cover closed, is weighed in at
// the disposal site, tips inside it, and drives back; parked between windows. A truck without a
// permit stands in its yard. Injected violations change single trips (violations.ts); every trip
// that carries one is labelled by the oracle, and every ticket pair is checked for overload and
// load loss.
import { DAY, HOUR, MINUTE, windowIntervals } from '../../services/contract/local-time.ts';
import { Path, type LonLat } from '../engine/path.ts';
import type { Random } from '../city/random.ts';
import { makeLabel, type LabelSubject } from './labels.ts';
import { tripLabels } from './oracle.ts';
import { TRUTH } from './thresholds.ts';
import type { Attributes } from './timeline.ts';
import { Vehicle } from './vehicle.ts';
import { TRIP_VIOLATIONS, type Violation, type ViolationRates } from './violations.ts';
import type { SimPermit, SimSite, SimTruck, World } from './world.ts';

interface Ticket {
  at: number;
  site: SimSite & { scaleDeviceId: string };
  payload: Record<string, unknown>;
}

export class MuckTruck extends Vehicle {
  private readonly subject: LabelSubject;
  private readonly permit: SimPermit | null;
  private readonly yard: SimSite;
  private trips = 0;

  constructor(
    private readonly world: World,
    truck: SimTruck,
    random: Random,
    private readonly rates: ViolationRates,
    /** Check every trip against the rule catalogue, not only those with a violation (for tests). */
    private readonly audit = false,
  ) {
    super(truck, random, true);
    this.subject = { kind: 'truck', id: truck.id, device_id: truck.deviceId, plate: truck.plate };
    this.permit = world.permitOf(truck.id);
    const construction = world.sitesOfKind('construction');
    this.yard = this.permit ? world.site(this.permit.siteId) : construction[Math.floor(random.next() * construction.length)]!;
  }

  protected home(): LonLat {
    return this.yard.centre;
  }

  protected plan(until: number): void {
    while (this.timeline.end < until) {
      const t = this.timeline.end;
      if (!this.permit || t >= this.permit.validTo || t < this.permit.validFrom) this.planIdleDay(t);
      else this.planPermitted(t, this.permit);
    }
  }

  /** No valid permit: parked; now and then (no_permit) it hauls anyway. */
  private planIdleDay(t: number): void {
    const parked = off(0);
    if (this.random.chance(this.rates.no_permit)) {
      const dump = this.random.pick(this.world.sitesOfKind('disposal'));
      const route = new Path(this.world.ruler, this.world.drive(this.yard.centre, dump.centre));
      this.timeline.standUntil(t + this.random.between(1, 20) * HOUR, parked);
      this.trip(route, this.yard, dump, 'no_permit', null);
    }
    this.timeline.standUntil(t + DAY, parked);
  }

  private planPermitted(t: number, permit: SimPermit): void {
    const windows = windowIntervals(permit.windows, t, t + 2 * DAY);
    const current = windows.find(([s, e]) => s <= t && t < e);
    const estimate = this.tripEstimateMs(permit);
    if (current && t + estimate + 10 * MINUTE <= current[1]) {
      const violation = TRIP_VIOLATIONS.find((v) => this.random.chance(this.rates[v])) ?? null;
      this.trip(permit.route, this.world.site(permit.siteId), this.world.site(permit.disposalSiteId), violation, permit);
      return;
    }
    // Park until the next window opens (trucks leave over its first half hour).
    const next = windows.find(([s]) => s > t);
    const nextStart = Math.min(next ? next[0] : t + DAY, permit.validTo);
    const departure = nextStart + this.random.between(0, 30) * MINUTE;
    const spell = departure - t;
    if (spell > estimate + 2 * HOUR && this.random.chance(this.rates.out_of_hours)) {
      // Out of hours: a whole trip between the windows, done an hour before the next one opens.
      this.timeline.standUntil(t + HOUR + this.random.next() * (spell - estimate - 2 * HOUR), off(0));
      this.trip(permit.route, this.world.site(permit.siteId), this.world.site(permit.disposalSiteId), 'out_of_hours', permit);
    }
    this.timeline.standUntil(Math.max(departure, this.timeline.end + MINUTE), off(0));
  }

  private tripEstimateMs(permit: SimPermit): number {
    return (25 + 1 + 1 + 5 + 1 + 5) * MINUTE + ((2 * permit.route.length) / (30 / 3.6)) * 1000;
  }

  /** One round trip from the site to the disposal site and back, with at most one violation. */
  private trip(route: Path, site: SimSite, dump: SimSite, violation: Violation | null, permit: SimPermit | null): void {
    const r = this.random;
    const tl = this.timeline;
    const { tareKg, ratedGrossKg } = this.truck;
    const capacity = ratedGrossKg - tareKg;
    const load = Math.round((violation === 'overload' ? ratedGrossKg * r.between(1.12, 1.3) - tareKg : capacity * r.between(0.8, 0.97)) / 10) * 10;
    const tripStart = tl.end;
    const tripNo = ++this.trips;
    const cruise = Math.min(48, Math.max(28, r.normal(38, 4)));

    tl.stand(r.between(15, 25) * MINUTE, on(0, load, { coverClosed: false }));
    const gate = tl.stand(MINUTE, on(load, load));
    const outTicket = this.ticket(site, gate.end, tripNo, 'out', load);

    let arrivedLoad = load;
    if (violation === 'illegal_dump') {
      // Tips part-way along the route, on the road, and goes back to the site.
      const at = route.length * r.between(0.3, 0.7);
      tl.drive(route.slice(0, at), cruise, on(load, load));
      tl.stand(MINUTE, on(load, load));
      tl.stand(r.between(2, 4) * MINUTE, on(load, 0, { tipperUp: true }));
      tl.stand(MINUTE, on(0, 0));
      tl.drive(route.slice(0, at).reversed(), cruise, on(0, 0));
      tl.stand(5 * MINUTE, on(0, 0));
      this.settle(tripStart, violation, permit, outTicket, null);
      return;
    }
    if (violation === 'route_deviation' || violation === 'jurisdiction_crossing') {
      const detour = permit && this.detour(permit, violation === 'jurisdiction_crossing');
      tl.drive(detour ?? route, cruise, on(load, load));
    } else if (violation === 'speeding') {
      const from = route.length * r.between(0.2, 0.4);
      const to = Math.min(route.length - 100, from + r.between(1000, 2000));
      tl.drive(route.slice(0, from), cruise, on(load, load));
      tl.drive(route.slice(from, to), r.between(66, 80), on(load, load));
      tl.drive(route.slice(to, route.length), cruise, on(load, load));
    } else if (violation === 'uncovered_transport') {
      tl.drive(route, cruise, on(load, load, { coverClosed: false }));
    } else if (violation === 'load_loss') {
      arrivedLoad = Math.round((load * (1 - r.between(0.15, 0.35))) / 10) * 10;
      tl.drive(route, cruise, on(load, arrivedLoad));
    } else {
      // A little mud and water is lost on every trip, well under the load-loss threshold.
      arrivedLoad = Math.round((load * (1 - r.between(0, 0.015))) / 10) * 10;
      tl.drive(route, cruise, on(load, arrivedLoad));
    }
    const weighIn = tl.stand(MINUTE, on(arrivedLoad, arrivedLoad));
    const inTicket = this.ticket(dump, weighIn.end, tripNo, 'in', arrivedLoad);
    tl.stand(r.between(3, 5) * MINUTE, on(arrivedLoad, 0, { tipperUp: true }));
    tl.stand(MINUTE, on(0, 0));
    tl.drive(route.reversed(), Math.min(48, Math.max(28, r.normal(40, 4))), on(0, 0));
    tl.stand(5 * MINUTE, on(0, 0));
    this.settle(tripStart, violation, permit, outTicket, inTicket);
  }

  /** Labels for the trip just planned: the oracle's (for trips with a violation) and the tickets'. */
  private settle(tripStart: number, violation: Violation | null, permit: SimPermit | null, out: Ticket | null, inbound: Ticket | null): void {
    const labels = violation || this.audit ? tripLabels(this.world, this.timeline.between(tripStart, this.timeline.end), permit, this.subject, violation ?? 'natural') : [];
    const net = (t: Ticket | null) => (t ? (t.payload.net_kg as number) : 0);
    const jurisdictions = (...tickets: (Ticket | null)[]) => [...new Set(tickets.flatMap((t) => (t ? this.world.jurisdictionsAt(t.site.centre) : [])))].sort();
    if (out && (out.payload.gross_kg as number) > this.truck.ratedGrossKg) {
      labels.push(
        makeLabel({ type: 'overload', cause: violation ?? 'overload', subject: this.subject, jurisdictions: jurisdictions(out), start: out.at, end: inbound?.at ?? out.at, detectableAt: out.at, location: out.site.centre, detail: { ticket_ids: [out, inbound].filter(Boolean).map((t) => t!.payload.ticket_id), gross_kg: out.payload.gross_kg, rated_gross_kg: this.truck.ratedGrossKg } }),
      );
    }
    if (out && inbound && net(out) - net(inbound) >= TRUTH.loadLossFraction * net(out)) {
      labels.push(
        makeLabel({ type: 'load_loss', cause: violation ?? 'load_loss', subject: this.subject, jurisdictions: jurisdictions(out, inbound), start: out.at, end: inbound.at, detectableAt: inbound.at, location: inbound.site.centre, detail: { ticket_ids: [out.payload.ticket_id, inbound.payload.ticket_id], out_net_kg: net(out), in_net_kg: net(inbound) } }),
      );
    }
    // Known now, from the plan; the simulation holds each label until the run reaches its end.
    if (labels.length > 0) this.schedule(tripStart, (out) => labels.forEach(out.label));
  }

  private ticket(site: SimSite, at: number, tripNo: number, direction: 'in' | 'out', loadKg: number): Ticket | null {
    const { scaleDeviceId } = site;
    if (!scaleDeviceId) return null;
    const { tareKg, plate, deviceId } = this.truck;
    // A weighbridge reads to 20 kg.
    const gross = Math.round((tareKg + loadKg + this.random.normal(0, 10)) / 20) * 20;
    const ticket: Ticket = {
      at,
      site: { ...site, scaleDeviceId },
      payload: {
        ticket_id: `${site.id}-${this.truck.id}-${tripNo}-${direction}`,
        plate,
        truck_device_id: deviceId,
        gross_kg: gross,
        tare_kg: tareKg,
        net_kg: gross - tareKg,
        category: 'construction',
        direction,
      },
    };
    this.schedule(at, (out) => out.message({ at, deviceId: scaleDeviceId, deviceClass: 'scales', payload: ticket.payload }));
    return ticket;
  }

  /**
   * The route with a detour: leaves it at one intersection and rejoins it a few further on, over
   * roads that keep well clear of it; into the neighbouring jurisdiction when `cross` is set.
   */
  private detour(permit: SimPermit, cross: boolean): Path | null {
    const nodes = permit.routeNodes;
    const { roads, ruler } = this.world;
    for (let attempt = 0; attempt < 20; attempt++) {
      if (nodes.length < 4) return null;
      const i = this.random.int(0, nodes.length - 4);
      const j = Math.min(nodes.length - 1, i + this.random.int(2, 4));
      const blocked = new Set(nodes.slice(i + 1, j));
      let via: string[];
      try {
        if (cross) {
          const leave = roads.node(nodes[i]!);
          const here = this.world.jurisdictionsAt([leave.lon, leave.lat]);
          // The nearest intersection in another jurisdiction that keeps well clear of the route.
          let target: (typeof roads.data.nodes)[number] | undefined;
          let targetDistance = Infinity;
          for (const n of roads.data.nodes) {
            if (nodes.includes(n.id) || !this.world.jurisdictionsAt([n.lon, n.lat]).some((k) => !here.includes(k)) || permit.route.distanceTo([n.lon, n.lat]) <= 400) continue;
            const d = ruler.distance([n.lon, n.lat], [leave.lon, leave.lat]);
            if (d < targetDistance) {
              target = n;
              targetDistance = d;
            }
          }
          if (!target) return null;
          const there = roads.route(nodes[i]!, target.id, blocked);
          const back = roads.route(target.id, nodes[j]!, blocked);
          via = [...there.map((n) => n.id), ...back.slice(1).map((n) => n.id)];
        } else {
          via = roads.route(nodes[i]!, nodes[j]!, blocked).map((n) => n.id);
        }
      } catch {
        continue;
      }
      const middle: LonLat[] = via.map((id) => [roads.node(id).lon, roads.node(id).lat]);
      if (Math.max(...middle.map((p) => permit.route.distanceTo(p))) < 250) continue;
      const coordinates = permit.route.points;
      const first = coordinates.findIndex(([lon, lat]) => lon === middle[0]![0] && lat === middle[0]![1]);
      const last = coordinates.findIndex(([lon, lat]) => lon === middle.at(-1)![0] && lat === middle.at(-1)![1]);
      return new Path(ruler, [...coordinates.slice(0, first), ...middle, ...coordinates.slice(last + 1)]);
    }
    return null;
  }
}

function on(loadFrom: number, loadTo: number, overrides: Partial<Attributes> = {}): Attributes {
  return { ignition: true, tipperUp: false, coverClosed: true, loadFrom, loadTo, ...overrides };
}

function off(load: number): Attributes {
  return { ignition: false, tipperUp: false, coverClosed: true, loadFrom: load, loadTo: load };
}

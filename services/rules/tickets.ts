// One truck's weighbridge tickets, for the ticket rules: duplicates dropped by ticket id, kept in
// event-time order, and paired into trips (the construction site's exit ticket and the next
// disposal-site entry ticket) however late either arrives.
import type { SiteInfo } from '../registry/city-index.ts';
import type { WeighTicket } from './types.ts';

export interface BookedTicket {
  ticket: WeighTicket;
  /** The site of the weighbridge that printed it; null for a weighbridge the registry lacks. */
  site: SiteInfo | null;
}

export interface Trip {
  exit: BookedTicket & { site: SiteInfo };
  entry: BookedTicket & { site: SiteInfo };
}

const isExit = (t: BookedTicket): t is Trip['exit'] => t.ticket.direction === 'out' && t.site?.kind === 'construction';
const isEntry = (t: BookedTicket): t is Trip['entry'] => t.ticket.direction === 'in' && t.site?.kind === 'disposal';

export class TicketBook {
  private readonly tickets: BookedTicket[] = [];
  private readonly byId = new Map<string, BookedTicket>();

  constructor(private readonly maxTripMs: number) {}

  /** Adds a ticket; false for one already booked (a duplicate delivery). */
  add(ticket: WeighTicket, site: SiteInfo | null): boolean {
    if (this.byId.has(ticket.ticket_id)) return false;
    const booked = { ticket, site };
    this.byId.set(ticket.ticket_id, booked);
    let i = this.tickets.length;
    while (i > 0 && this.tickets[i - 1]!.ticket.ts > ticket.ts) i--;
    this.tickets.splice(i, 0, booked);
    this.prune();
    return true;
  }

  get(ticketId: string): BookedTicket | undefined {
    return this.byId.get(ticketId);
  }

  /** The trip a ticket belongs to, once both of its tickets are here. */
  tripOf(ticket: WeighTicket): Trip | null {
    const booked = this.byId.get(ticket.ticket_id);
    if (!booked) return null;
    const i = this.tickets.indexOf(booked);
    if (isExit(booked)) {
      // The first disposal entry after the exit, unless the truck left a site again before it.
      for (let j = i + 1; j < this.tickets.length; j++) {
        const next = this.tickets[j]!;
        if (next.ticket.ts - booked.ticket.ts > this.maxTripMs || isExit(next)) return null;
        if (isEntry(next)) return { exit: booked, entry: next };
      }
    } else if (isEntry(booked)) {
      for (let j = i - 1; j >= 0; j--) {
        const previous = this.tickets[j]!;
        if (booked.ticket.ts - previous.ticket.ts > this.maxTripMs || isEntry(previous)) return null;
        if (isExit(previous)) return this.tripOf(previous.ticket)?.entry === booked ? { exit: previous, entry: booked } : null;
      }
    }
    return null;
  }

  /** Loaded at ts: weighed out of a site and not yet weighed in at a disposal site. */
  loadedAt(ts: number): boolean {
    for (let j = this.tickets.length - 1; j >= 0; j--) {
      const t = this.tickets[j]!;
      if (t.ticket.ts > ts) continue;
      if (ts - t.ticket.ts > this.maxTripMs || isEntry(t)) return false;
      if (isExit(t)) return true;
    }
    return false;
  }

  /** Keeps two trips' worth of time behind the newest ticket. */
  private prune(): void {
    const newest = this.tickets.at(-1)!.ticket.ts;
    while (this.tickets.length > 0 && newest - this.tickets[0]!.ticket.ts > 2 * this.maxTripMs) {
      this.byId.delete(this.tickets.shift()!.ticket.ticket_id);
    }
  }
}

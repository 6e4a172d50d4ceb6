// Overload: a ticket's gross weight over the truck's rated gross weight. A trip weighed over at
// both ends is one violation, from the exit ticket to the entry ticket.
import type { TicketRule } from '../types.ts';
import { ticketEvidence } from '../types.ts';
import type { BookedTicket } from '../tickets.ts';

export const overload: TicketRule = {
  type: 'overload',
  fleets: ['muck', 'collection'],
  onTicket(ctx) {
    const limit = ctx.truck.ratedGrossKg + ctx.config.overloadToleranceKg;
    const over = (t: BookedTicket) => t.ticket.gross_kg > limit;
    const booked = ctx.book.get(ctx.ticket.ticket_id);
    if (!booked || !over(booked)) return;
    const trip = ctx.book.tripOf(ctx.ticket);
    const tickets = trip && over(trip.exit) && over(trip.entry) ? [trip.exit, trip.entry] : [booked];
    ctx.report({
      type: 'overload',
      severity: 'warning',
      startedAt: tickets[0]!.ticket.ts,
      endedAt: tickets.at(-1)!.ticket.ts,
      location: tickets[0]!.site?.centre ?? null,
      jurisdictions: [...new Set(tickets.flatMap((t) => t.site?.jurisdictions ?? []))].sort(),
      evidence: tickets.map((t) => ticketEvidence(t.ticket, t.site?.id ?? '')),
      permit: null,
      detail: { gross_kg: Math.max(...tickets.map((t) => t.ticket.gross_kg)), rated_gross_kg: ctx.truck.ratedGrossKg },
    });
  },
};

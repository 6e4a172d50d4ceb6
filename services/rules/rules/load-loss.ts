// Load loss: the net weight at the disposal site's weighbridge well below the net weight at the
// construction site's exit on the same trip. Tickets pair by time whichever arrives first. The
// permitted route between the two is recorded as a spillage route.
import type { TicketRule } from '../types.ts';
import { ticketEvidence } from '../types.ts';

export const loadLoss: TicketRule = {
  type: 'load_loss',
  fleets: ['muck'],
  // A site-exit ticket delivered after its disposal ticket would otherwise leave the disposal
  // ticket paired with the exit of an earlier trip that never reached a disposal site.
  settles: true,
  onTicket(ctx) {
    const trip = ctx.book.tripOf(ctx.ticket);
    if (!trip) return;
    const { exit, entry } = trip;
    const lost = exit.ticket.net_kg - entry.ticket.net_kg;
    if (exit.ticket.net_kg <= 0 || lost < ctx.config.loadLossFraction * exit.ticket.net_kg) return;
    const permit = ctx.truck.permits.find((p) => p.siteId === exit.site.id && p.disposalSiteId === entry.site.id);
    ctx.report({
      type: 'load_loss',
      severity: 'warning',
      startedAt: exit.ticket.ts,
      endedAt: entry.ticket.ts,
      location: entry.site.centre,
      jurisdictions: [...new Set([...exit.site.jurisdictions, ...entry.site.jurisdictions])].sort(),
      evidence: [ticketEvidence(exit.ticket, exit.site.id), ticketEvidence(entry.ticket, entry.site.id)],
      permit: permit ? { id: permit.id, number: permit.number } : null,
      detail: { exit_net_kg: exit.ticket.net_kg, entry_net_kg: entry.ticket.net_kg, lost_kg: lost, lost_fraction: Math.round((lost / exit.ticket.net_kg) * 1000) / 1000 },
    });
    const route = permit?.route.coordinates;
    for (let i = 1; route && i < route.length; i++) ctx.spill('load_loss', route[i - 1]!, route[i]!, exit.ticket.ts);
  },
};

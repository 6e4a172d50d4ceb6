// A weighing ticket as the contract has it (services/contract/payloads.ts weighTicketSchema,
// docs/mqtt.md "Weighing ticket"): made from two weighings of one plate, the larger the gross,
// the smaller the tare, timed at the second weighing, numbered
// `{prefix}-{local date}-{queue file id}-{counter}`: the counter alone repeats when a queue file is
// deleted or two agents share a prefix; the queue file's random id (ledger.ts) tells them apart.
import { weighTicketSchema, type WeighTicketInput } from '../../services/contract/payloads.ts';
import type { WASTE_CATEGORIES } from '../../services/contract/payloads.ts';

export type Category = (typeof WASTE_CATEGORIES)[number];

export interface SiteOptions {
  /** First part of every ticket number; the device id unless configured. */
  ticketPrefix: string;
  direction: 'in' | 'out';
  category: Category;
  /** A community id the loads come from, for a transfer station serving one community. */
  origin?: string | undefined;
  /** The site's offset from UTC in minutes (480 in China): the ticket's date and its `ts` are local. */
  utcOffsetMinutes: number;
}

export type Ticket = WeighTicketInput & { ticket_id: string; ts: string; plate: string };

/** Rounds away the binary noise of t × 1000 and of subtractions (18.5 − 12.7). */
const kg = (value: number) => Math.round(value * 1000) / 1000;

/** `ms` as ISO-8601 local time with the site's offset, e.g. 2026-11-22T21:14:05.120+08:00. */
export function localIso(ms: number, offsetMinutes: number): string {
  const local = new Date(ms + offsetMinutes * 60_000).toISOString().slice(0, 23);
  const sign = offsetMinutes < 0 ? '-' : '+';
  const abs = Math.abs(offsetMinutes);
  return `${local}${sign}${String(Math.floor(abs / 60)).padStart(2, '0')}:${String(abs % 60).padStart(2, '0')}`;
}

/** Which ticket of which queue file: `fileId` six characters, so that a 40-character prefix still fits the contract's 64. */
export interface TicketSerial {
  fileId: string;
  counter: number;
}

export function ticketId(site: SiteOptions, ms: number, serial: TicketSerial): string {
  const day = localIso(ms, site.utcOffsetMinutes).slice(0, 10).replaceAll('-', '');
  return `${site.ticketPrefix}-${day}-${serial.fileId}-${String(serial.counter).padStart(6, '0')}`;
}

export interface WeighingPair {
  plate: string;
  first: { ts: number; kg: number };
  second: { ts: number; kg: number };
}

/** The ticket of a pair; throws with the contract's reason if the weights are out of its range. */
export function makeTicket(site: SiteOptions, pair: WeighingPair, serial: TicketSerial): Ticket {
  const gross = kg(Math.max(pair.first.kg, pair.second.kg));
  const tare = kg(Math.min(pair.first.kg, pair.second.kg));
  const ticket: Ticket = {
    ticket_id: ticketId(site, pair.second.ts, serial),
    ts: localIso(pair.second.ts, site.utcOffsetMinutes),
    plate: pair.plate,
    gross_kg: gross,
    tare_kg: tare,
    net_kg: kg(gross - tare),
    category: site.category,
    direction: site.direction,
    ...(site.origin ? { origin: site.origin } : {}),
  };
  const checked = weighTicketSchema.safeParse(ticket);
  if (!checked.success) {
    throw new Error(`ticket ${ticket.ticket_id} is not a valid contract ticket: ${checked.error.issues.map((i) => `${i.path.join('.')} ${i.message}`).join('; ')}`);
  }
  return ticket;
}

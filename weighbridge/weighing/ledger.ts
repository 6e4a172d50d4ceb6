// The weighings waiting for their pair, kept in the queue file so that a restart between a
// truck's two weighings loses neither. A weighing waits for its plate, or with its plate for the
// same plate's other weighing; the two then become one ticket, queued in the same transaction that
// closes them and counts the ticket number up, so a crash leaves either both weighings or the ticket.
import type Database from 'better-sqlite3';
import type { TicketQueue } from '../store/queue.ts';
import { makeTicket, type SiteOptions, type Ticket } from './ticket.ts';

export interface Weighing {
  id: number;
  ts: number;
  kg: number;
  plate: string | null;
  plateSource: string | null;
}

/** `problem`: the pair's weights make no valid ticket (over 100 t); both stay open for the operator to see. */
export type Outcome = { kind: 'open'; weighing: Weighing; problem?: string } | { kind: 'ticket'; ticket: Ticket; first: Weighing; second: Weighing };

interface Row {
  id: number;
  ts: number;
  kg: number;
  plate: string | null;
  plate_source: string | null;
}

const toWeighing = (row: Row): Weighing => ({ id: row.id, ts: row.ts, kg: row.kg, plate: row.plate, plateSource: row.plate_source });

const COUNTER = 'ticket_counter';

export class Ledger {
  constructor(
    private readonly db: Database.Database,
    private readonly queue: TicketQueue,
    private readonly site: SiteOptions,
    private readonly now: () => number = Date.now,
  ) {}

  /** A new weighing, with the plate it came with if any. */
  record(kg: number, ts: number, plate: { plate: string; source: string } | null): Outcome {
    return this.db.transaction(() => {
      const { lastInsertRowid } = this.db.prepare('INSERT INTO weighings (ts, kg, plate, plate_source) VALUES (?, ?, ?, ?)').run(ts, kg, plate?.plate ?? null, plate?.source ?? null);
      return this.settle(Number(lastInsertRowid));
    })();
  }

  /** Sets (or corrects) the plate of an open weighing; null when there is no such open weighing. */
  setPlate(weighingId: number, plate: string, source: string): Outcome | null {
    return this.db.transaction(() => {
      const changed = this.db.prepare('UPDATE weighings SET plate = ?, plate_source = ? WHERE id = ?').run(plate, source, weighingId);
      return changed.changes === 0 ? null : this.settle(weighingId);
    })();
  }

  /** Open weighings, oldest first. */
  open(): Weighing[] {
    return this.db.prepare<[], Row>('SELECT * FROM weighings ORDER BY ts, id').all().map(toWeighing);
  }

  /** Closes the weighings older than `before` that found no pair; returns them. */
  expire(before: number): Weighing[] {
    return this.db.transaction(() => {
      const rows = this.db.prepare<[number], Row>('SELECT * FROM weighings WHERE ts < ? ORDER BY ts, id').all(before).map(toWeighing);
      this.db.prepare('DELETE FROM weighings WHERE ts < ?').run(before);
      return rows;
    })();
  }

  /** Inside a transaction: pairs the weighing with the other open weighing of its plate, if any. */
  private settle(id: number): Outcome {
    const weighing = toWeighing(this.db.prepare<[number], Row>('SELECT * FROM weighings WHERE id = ?').get(id)!);
    if (weighing.plate === null) return { kind: 'open', weighing };
    const partnerRow = this.db.prepare<[string, number], Row>('SELECT * FROM weighings WHERE plate = ? AND id != ? ORDER BY ts, id LIMIT 1').get(weighing.plate, id);
    if (!partnerRow) return { kind: 'open', weighing };
    const partner = toWeighing(partnerRow);
    const [first, second] = partner.ts <= weighing.ts ? [partner, weighing] : [weighing, partner];
    const counter = (this.db.prepare<[string], { value: number }>('SELECT value FROM meta WHERE key = ?').get(COUNTER)?.value ?? 0) + 1;
    let ticket: Ticket;
    try {
      ticket = makeTicket(this.site, { plate: weighing.plate, first, second }, counter);
    } catch (error) {
      return { kind: 'open', weighing, problem: (error as Error).message };
    }
    this.db.prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value').run(COUNTER, counter);
    this.db.prepare('DELETE FROM weighings WHERE id IN (?, ?)').run(first.id, second.id);
    this.queue.insert(ticket.ticket_id, JSON.stringify(ticket), this.now());
    return { kind: 'ticket', ticket, first, second };
  }
}

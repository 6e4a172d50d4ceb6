// The weighings waiting for their pair, kept in the queue file so that a restart between a
// truck's two weighings loses neither. A weighing waits for its plate, or with its plate for the
// same plate's other weighing; the two then become one ticket, queued in the same transaction that
// closes them and counts the ticket number up, so a crash leaves either both weighings or the ticket.
//
// Pairing rules (a wrong pair is the worst failure):
// - a weighing's partner is the latest other open weighing of its plate: an older one (a weighing
//   whose pair was lost, a plate given to the wrong truck) never completes the truck's newest;
// - a weighing no ticket can have (at or below 0, above the capacity) is never a partner: it waits
//   for the operator to void it, or for its expiry;
// - two weighings closer than `minPairIntervalS` or `minNetKg` are one truck weighed twice (an agent
//   restart with the truck on the bridge, a weighing split by a stray reading), not a ticket: the
//   later replaces the earlier, and waits for the truck's real other weighing.
import { randomInt } from 'node:crypto';
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

export interface PairingRules {
  /** Two weighings of a plate closer in time than this are the same truck, s. */
  minPairIntervalS: number;
  /** Two weighings of a plate closer in weight than this are the same truck, kg. */
  minNetKg: number;
  /** A weighing above this can be in no ticket, kg. */
  capacityKg: number;
}

/** The configuration's defaults (config.ts uses them). */
export const PAIRING_DEFAULTS: PairingRules = { minPairIntervalS: 120, minNetKg: 100, capacityKg: 100_000 };

/**
 * `problem`: the weighing, or its pair, makes no valid ticket; it stays open for the operator to see.
 * `replaced`: an earlier weighing of the plate that this one replaced (the same truck weighed again), now gone.
 */
export type Outcome =
  | { kind: 'open'; weighing: Weighing; problem?: string; replaced?: Weighing }
  | { kind: 'ticket'; ticket: Ticket; first: Weighing; second: Weighing };

interface Row {
  id: number;
  ts: number;
  kg: number;
  plate: string | null;
  plate_source: string | null;
}

const toWeighing = (row: Row): Weighing => ({ id: row.id, ts: row.ts, kg: row.kg, plate: row.plate, plateSource: row.plate_source });

const COUNTER = 'ticket_counter';
const FILE_ID = 'queue_file_id';
/** Six base-36 characters: 2.2 billion ids. */
const FILE_IDS = 36 ** 6;

export class Ledger {
  /** The queue file's random id, made with its first ledger and kept in it: part of every ticket id. */
  readonly fileId: string;

  constructor(
    private readonly db: Database.Database,
    private readonly queue: TicketQueue,
    private readonly site: SiteOptions,
    private readonly rules: PairingRules = PAIRING_DEFAULTS,
    private readonly now: () => number = Date.now,
  ) {
    db.prepare('INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)').run(FILE_ID, randomInt(FILE_IDS));
    const { value } = db.prepare<[string], { value: number }>('SELECT value FROM meta WHERE key = ?').get(FILE_ID)!;
    this.fileId = value.toString(36).toUpperCase().padStart(6, '0');
  }

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

  /** Takes an open weighing out (the operator found it wrong); returns it, or null when there is no such open weighing. */
  voidWeighing(weighingId: number): Weighing | null {
    return this.db.transaction(() => {
      const row = this.db.prepare<[number], Row>('SELECT * FROM weighings WHERE id = ?').get(weighingId);
      if (row) this.db.prepare('DELETE FROM weighings WHERE id = ?').run(weighingId);
      return row ? toWeighing(row) : null;
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

  /** Inside a transaction: pairs the weighing with the latest other possible weighing of its plate, if any. */
  private settle(id: number): Outcome {
    const weighing = toWeighing(this.db.prepare<[number], Row>('SELECT * FROM weighings WHERE id = ?').get(id)!);
    const { capacityKg, minNetKg, minPairIntervalS } = this.rules;
    if (!(weighing.kg > 0 && weighing.kg <= capacityKg)) {
      return { kind: 'open', weighing, problem: `weighing ${weighing.id} of ${weighing.kg} kg is outside 0-${capacityKg} kg: it pairs with nothing; void it` };
    }
    if (weighing.plate === null) return { kind: 'open', weighing };
    const partnerRow = this.db
      .prepare<[string, number, number], Row>('SELECT * FROM weighings WHERE plate = ? AND id != ? AND kg > 0 AND kg <= ? ORDER BY ts DESC, id DESC LIMIT 1')
      .get(weighing.plate, id, capacityKg);
    if (!partnerRow) return { kind: 'open', weighing };
    const partner = toWeighing(partnerRow);
    const [first, second] = partner.ts <= weighing.ts ? [partner, weighing] : [weighing, partner];
    const net = Math.abs(second.kg - first.kg);
    if (net <= 0 || net < minNetKg || second.ts - first.ts < minPairIntervalS * 1000) {
      this.db.prepare('DELETE FROM weighings WHERE id = ?').run(first.id);
      return { kind: 'open', weighing: second, replaced: first };
    }
    const counter = (this.db.prepare<[string], { value: number }>('SELECT value FROM meta WHERE key = ?').get(COUNTER)?.value ?? 0) + 1;
    let ticket: Ticket;
    try {
      ticket = makeTicket(this.site, { plate: weighing.plate, first, second }, { fileId: this.fileId, counter });
    } catch (error) {
      return { kind: 'open', weighing, problem: (error as Error).message };
    }
    this.db.prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value').run(COUNTER, counter);
    this.db.prepare('DELETE FROM weighings WHERE id IN (?, ?)').run(first.id, second.id);
    this.queue.insert(ticket.ticket_id, JSON.stringify(ticket), this.now());
    return { kind: 'ticket', ticket, first, second };
  }
}

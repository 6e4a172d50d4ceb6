// The tickets waiting for the broker's PUBACK, oldest first. A ticket's payload is stored as the
// exact text published, so every attempt sends the same bytes.
import type Database from 'better-sqlite3';

export interface QueuedTicket {
  seq: number;
  ticketId: string;
  payload: string;
  createdAt: number;
}

interface Row {
  seq: number;
  ticket_id: string;
  payload: string;
  created_at: number;
}

const toTicket = (row: Row): QueuedTicket => ({ seq: row.seq, ticketId: row.ticket_id, payload: row.payload, createdAt: row.created_at });

export class TicketQueue {
  private readonly afterStmt;
  private readonly deleteStmt;
  private readonly countStmt;

  constructor(private readonly db: Database.Database) {
    this.afterStmt = db.prepare<[number, number], Row>('SELECT seq, ticket_id, payload, created_at FROM queue WHERE seq > ? ORDER BY seq LIMIT ?');
    this.deleteStmt = db.prepare<[string]>('DELETE FROM queue WHERE ticket_id = ?');
    this.countStmt = db.prepare<[], { n: number; oldest: number | null }>('SELECT count(*) AS n, min(created_at) AS oldest FROM queue');
  }

  /** The queue file's path, for messages. */
  get file(): string {
    return this.db.name;
  }

  /** Up to `limit` tickets queued after `seq`, in order. */
  after(seq: number, limit: number): QueuedTicket[] {
    return this.afterStmt.all(seq, limit).map(toTicket);
  }

  /** Called on the PUBACK; a second PUBACK for the same ticket deletes nothing. */
  delete(ticketId: string): void {
    this.deleteStmt.run(ticketId);
  }

  summary(): { waiting: number; oldestAt: number | null } {
    const { n, oldest } = this.countStmt.get()!;
    return { waiting: n, oldestAt: oldest };
  }

  /** What the page and `--status` list: the first `limit` waiting tickets. */
  list(limit: number): QueuedTicket[] {
    return this.after(0, limit);
  }

  /** Inserts inside the caller's transaction (ledger.ts makes a ticket and closes its weighings at once). */
  insert(ticketId: string, payload: string, now: number): void {
    this.db.prepare('INSERT INTO queue (ticket_id, payload, created_at) VALUES (?, ?, ?)').run(ticketId, payload, now);
  }
}

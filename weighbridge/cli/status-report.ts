// `--status`: what the queue file holds, read without the agent (WAL lets it read while the agent
// writes): the tickets waiting for the broker, the oldest first, and the open weighings.
import fs from 'node:fs';
import { openDb } from '../store/db.ts';
import { TicketQueue } from '../store/queue.ts';

const LISTED = 20;

/** A queued ticket's time, plate and net weight; a payload that is not a ticket's JSON is shown as stored. */
function ticketLine(payload: string): string {
  try {
    const { ts, plate, net_kg } = JSON.parse(payload) as { ts: string; plate: string; net_kg: number };
    return `${ts}  ${plate}  net ${net_kg} kg`;
  } catch {
    return `(not a ticket's JSON: ${JSON.stringify(payload.slice(0, 80))})`;
  }
}

export function statusReport(queueFile: string, now = Date.now()): string {
  if (!fs.existsSync(queueFile)) return `队列文件不存在 no queue file at ${queueFile} (the agent has not run with this --queue-file)\n`;
  const db = openDb(queueFile, { readonly: true });
  try {
    const queue = new TicketQueue(db);
    const { waiting, oldestAt } = queue.summary();
    const lines = [`queue file ${queueFile}`];
    const age = (ms: number) => `${Math.round((now - ms) / 60_000)} min ago`;
    lines.push(waiting === 0 ? '待发送磅单 tickets waiting: 0' : `待发送磅单 tickets waiting: ${waiting}, oldest queued ${new Date(oldestAt!).toISOString()} (${age(oldestAt!)})`);
    for (const t of queue.list(LISTED)) lines.push(`  ${t.ticketId}  ${ticketLine(t.payload)}`);
    if (waiting > LISTED) lines.push(`  … and ${waiting - LISTED} more`);
    const open = db.prepare<[], { id: number; ts: number; kg: number; plate: string | null }>('SELECT id, ts, kg, plate FROM weighings ORDER BY ts, id').all();
    lines.push(`待配对称重 open weighings: ${open.length}`);
    for (const w of open) lines.push(`  #${w.id}  ${new Date(w.ts).toISOString()} (${age(w.ts)})  ${w.kg} kg  ${w.plate ?? '需车牌 needs a plate'}`);
    return `${lines.join('\n')}\n`;
  } finally {
    db.close();
  }
}

// Pairing in the queue file: two weighings of a plate make one ticket; weighings and the ticket
// counter survive a restart; unpaired weighings expire; impossible weighings pair with nothing; the
// same truck weighed twice is no ticket; ticket ids differ between queue files.
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { weighTicketSchema } from '../../services/contract/payloads.ts';
import { openDb } from '../../weighbridge/store/db.ts';
import { TicketQueue } from '../../weighbridge/store/queue.ts';
import { Ledger, PAIRING_DEFAULTS, type PairingRules } from '../../weighbridge/weighing/ledger.ts';
import type { SiteOptions } from '../../weighbridge/weighing/ticket.ts';
import { tempDir } from '../helpers/service.ts';

const site: SiteOptions = { ticketPrefix: 'WB-SZ-01', direction: 'in', category: 'construction', utcOffsetMinutes: 480 };
const open: { close(): void }[] = [];
afterEach(() => open.splice(0).forEach((db) => db.close()));

function ledgerAt(file: string, rules: Partial<PairingRules> = {}, siteOptions: SiteOptions = site) {
  const db = openDb(file);
  open.push(db);
  const queue = new TicketQueue(db);
  return { db, queue, ledger: new Ledger(db, queue, siteOptions, { ...PAIRING_DEFAULTS, ...rules }, () => 1_000) };
}

const newFile = async () => path.join(await tempDir('wb-ledger-'), 'q.db');

// 2026-11-22 21:00 and 21:14:05.120 China Standard Time.
const T1 = Date.parse('2026-11-22T21:00:00+08:00');
const T2 = Date.parse('2026-11-22T21:14:05.120+08:00');
const plate = (p: string) => ({ plate: p, source: 'operator' });

describe('Ledger', () => {
  it('pairs the two weighings of a plate into gross, tare and net, timed at the second', async () => {
    const { ledger, queue } = ledgerAt(path.join(await tempDir('wb-ledger-'), 'q.db'));
    expect(ledger.record(31_200, T1, plate('苏E12345')).kind).toBe('open');
    const outcome = ledger.record(12_700, T2, plate('苏E12345'));
    expect(outcome.kind).toBe('ticket');
    const ticket = outcome.kind === 'ticket' ? outcome.ticket : null;
    expect(ledger.fileId).toMatch(/^[0-9A-Z]{6}$/);
    expect(ticket).toEqual({
      ticket_id: `WB-SZ-01-20261122-${ledger.fileId}-000001`,
      ts: '2026-11-22T21:14:05.120+08:00',
      plate: '苏E12345',
      gross_kg: 31_200,
      tare_kg: 12_700,
      net_kg: 18_500,
      category: 'construction',
      direction: 'in',
    });
    expect(weighTicketSchema.safeParse(ticket).success).toBe(true);
    expect(Date.parse(ticket!.ts)).toBe(T2);
    expect(ledger.open()).toEqual([]);
    expect(queue.list(10).map((t) => JSON.parse(t.payload))).toEqual([ticket]);
  });

  it('pairs an empty truck weighed first the same way (gross is the larger)', async () => {
    const { ledger } = ledgerAt(path.join(await tempDir('wb-ledger-'), 'q.db'));
    ledger.record(12_700.4, T1, plate('苏E12345'));
    const outcome = ledger.record(31_200.2, T2, plate('苏E12345'));
    expect(outcome.kind === 'ticket' && [outcome.ticket.gross_kg, outcome.ticket.tare_kg, outcome.ticket.net_kg]).toEqual([31_200.2, 12_700.4, 18_499.8]);
  });

  it('keeps a weighing without plate open until a plate is set, then pairs it', async () => {
    const { ledger } = ledgerAt(path.join(await tempDir('wb-ledger-'), 'q.db'));
    const first = ledger.record(30_000, T1, null);
    expect(first).toMatchObject({ kind: 'open', weighing: { plate: null } });
    ledger.record(12_000, T2, plate('苏E12345'));
    const outcome = ledger.setPlate(first.kind === 'open' ? first.weighing.id : -1, '苏E12345', 'page');
    expect(outcome).toMatchObject({ kind: 'ticket', ticket: { ts: '2026-11-22T21:14:05.120+08:00', net_kg: 18_000 } });
    expect(ledger.setPlate(999, '苏E12345', 'page')).toBeNull();
  });

  it('keeps open weighings and the ticket counter across a restart: numbers are never reused', async () => {
    const file = path.join(await tempDir('wb-ledger-'), 'q.db');
    const before = ledgerAt(file);
    before.ledger.record(30_000, T1, plate('苏E11111'));
    before.ledger.record(12_000, T1 + 300_000, plate('苏E11111'));
    before.ledger.record(28_000, T1 + 360_000, plate('苏E22222'));
    const fileId = before.ledger.fileId;
    before.queue.delete(`WB-SZ-01-20261122-${fileId}-000001`);
    before.db.close();
    open.pop();

    const after = ledgerAt(file);
    expect(after.ledger.fileId).toBe(fileId);
    expect(after.ledger.open().map((w) => w.plate)).toEqual(['苏E22222']);
    const outcome = after.ledger.record(11_000, T2, plate('苏E22222'));
    expect(outcome.kind === 'ticket' && outcome.ticket.ticket_id).toBe(`WB-SZ-01-20261122-${fileId}-000002`);
  });

  it('makes ticket ids that no other queue file makes: a deleted file, another agent with the prefix', async () => {
    const first = ledgerAt(await newFile());
    const second = ledgerAt(await newFile());
    const ids = [first, second].map(({ ledger }) => {
      ledger.record(30_000, T1, plate('苏E11111'));
      const outcome = ledger.record(12_000, T2, plate('苏E11111'));
      return outcome.kind === 'ticket' ? outcome.ticket.ticket_id : '';
    });
    expect(ids[0]).toMatch(/^WB-SZ-01-20261122-[0-9A-Z]{6}-000001$/);
    expect(ids[1]).toMatch(/^WB-SZ-01-20261122-[0-9A-Z]{6}-000001$/);
    expect(ids[0]).not.toBe(ids[1]);
    // The longest prefix still fits the contract's 64 characters.
    const long = ledgerAt(await newFile(), {}, { ...site, ticketPrefix: 'P'.repeat(40) });
    long.ledger.record(30_000, T1, plate('苏E11111'));
    const outcome = long.ledger.record(12_000, T2, plate('苏E11111'));
    expect(outcome.kind === 'ticket' && outcome.ticket.ticket_id.length).toBe(63);
  });

  it('expires weighings older than the given time and says which', async () => {
    const { ledger } = ledgerAt(path.join(await tempDir('wb-ledger-'), 'q.db'));
    ledger.record(30_000, T1, plate('苏E11111'));
    ledger.record(29_000, T2, plate('苏E22222'));
    expect(ledger.expire(T2).map((w) => w.plate)).toEqual(['苏E11111']);
    expect(ledger.record(12_000, T2 + 1, plate('苏E11111')).kind).toBe('open');
  });

  it('leaves a pair over the contract\'s range open, with the reason', async () => {
    const { ledger, queue } = ledgerAt(await newFile(), { capacityKg: 200_000 });
    ledger.record(150_000, T1, plate('苏E12345'));
    const outcome = ledger.record(12_000, T2, plate('苏E12345'));
    expect(outcome).toMatchObject({ kind: 'open', problem: expect.stringContaining('gross_kg') });
    expect(ledger.open()).toHaveLength(2);
    expect(queue.summary().waiting).toBe(0);
  });

  it('never pairs a weighing above the capacity: it does not hold up its plate', async () => {
    const { ledger } = ledgerAt(await newFile());
    expect(ledger.record(999_999, T1, plate('苏E12345'))).toMatchObject({ kind: 'open', problem: expect.stringContaining('outside') });
    expect(ledger.record(31_200, T1 + 600_000, plate('苏E12345'))).toMatchObject({ kind: 'open', weighing: { kg: 31_200 } });
    expect(ledger.record(12_700, T2, plate('苏E12345'))).toMatchObject({ kind: 'ticket', ticket: { gross_kg: 31_200, tare_kg: 12_700 } });
    expect(ledger.open().map((w) => w.kg)).toEqual([999_999]);
  });

  it('pairs a weighing with the latest open weighing of its plate, not an older one', async () => {
    const { ledger } = ledgerAt(await newFile(), { capacityKg: 200_000 });
    ledger.record(150_000, T1, plate('苏E12345'));
    ledger.record(31_200, T1 + 300_000, plate('苏E12345'));
    expect(ledger.record(12_700, T2, plate('苏E12345'))).toMatchObject({ kind: 'ticket', ticket: { gross_kg: 31_200, tare_kg: 12_700 } });
  });

  it('takes the same truck weighed again (a restart, a split weighing) as one weighing: the later replaces the earlier', async () => {
    const { ledger, queue } = ledgerAt(await newFile());
    const first = ledger.record(30_000, T1, plate('苏E12345'));
    // The agent restarted with the truck on the bridge: weighed again 40 s later, 10 kg apart.
    const again = ledger.record(30_010, T1 + 40_000, plate('苏E12345'));
    expect(again).toMatchObject({ kind: 'open', weighing: { kg: 30_010 }, replaced: { kg: 30_000 } });
    expect(first.kind === 'open' && again.kind === 'open' && again.replaced!.id).toBe(first.kind === 'open' && first.weighing.id);
    expect(ledger.open().map((w) => w.kg)).toEqual([30_010]);
    // Apart by more than minNetKg but sooner than minPairIntervalS: the same truck, no ticket either.
    expect(ledger.record(29_000, T1 + 100_000, plate('苏E12345'))).toMatchObject({ kind: 'open', replaced: { kg: 30_010 } });
    // Long apart, but closer in weight than minNetKg: no ticket of 50 kg.
    expect(ledger.record(28_950, T1 + 600_000, plate('苏E12345'))).toMatchObject({ kind: 'open', replaced: { kg: 29_000 } });
    expect(queue.summary().waiting).toBe(0);
    expect(ledger.record(12_700, T2, plate('苏E12345'))).toMatchObject({ kind: 'ticket', ticket: { gross_kg: 28_950, net_kg: 16_250 } });
    // With the rules at 0, any two weighings of a plate with a net pair.
    const loose = ledgerAt(await newFile(), { minPairIntervalS: 0, minNetKg: 0 });
    loose.ledger.record(30_000, T1, plate('苏E12345'));
    expect(loose.ledger.record(30_000, T1, plate('苏E12345'))).toMatchObject({ kind: 'open', replaced: { kg: 30_000 } });
    expect(loose.ledger.record(29_999, T1, plate('苏E12345')).kind).toBe('ticket');
  });

  it('voids an open weighing', async () => {
    const { ledger } = ledgerAt(await newFile());
    const wrong = ledger.record(25_000, T1, plate('苏E12345'));
    const id = wrong.kind === 'open' ? wrong.weighing.id : -1;
    expect(ledger.voidWeighing(id)).toMatchObject({ id, kg: 25_000, plate: '苏E12345' });
    expect(ledger.voidWeighing(id)).toBeNull();
    expect(ledger.open()).toEqual([]);
    expect(ledger.record(31_200, T2, plate('苏E12345')).kind).toBe('open');
  });
});

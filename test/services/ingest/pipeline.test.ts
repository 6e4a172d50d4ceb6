// The ingest pipeline on a real spool: what one message may cost the rest of the service.
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ingestSchema } from '../../../services/config/schema.ts';
import type { Reading } from '../../../services/contract/payloads.ts';
import { topics } from '../../../services/contract/topics.ts';
import { IngestPipeline } from '../../../services/ingest/pipeline.ts';
import { createLogger } from '../../../services/log.ts';
import { Spool } from '../../../services/spool/spool.ts';
import { tempDir } from '../../helpers/service.ts';

let spool: Spool;
beforeEach(async () => {
  spool = new Spool({ dir: path.join(await tempDir('waste-pipeline-'), 'spool'), quotaBytes: 1 << 30, segmentBytes: 1 << 20, fsync: false });
  await spool.open();
});
afterEach(() => spool.close());

const fix = (ts: number) => ({ ts, lat: 31.3, lon: 120.6, speed_kmh: 30, heading: 90 });

describe('IngestPipeline', () => {
  it('counts every refused reading of a batch, reports the first ten one by one and the rest summed up per reason', async () => {
    const reports: { reason: string; index?: number; count?: number }[] = [];
    const bus = { publish: async (_topic: string, payload: string | Buffer) => void reports.push(JSON.parse(payload.toString())) };
    const pipeline = new IngestPipeline(spool, ingestSchema.parse({}), createLogger('silent'), { reports: bus });
    const now = Date.now();
    const batch = [...Array.from({ length: 599 }, () => ({ ...fix(now), lat: 91 })), ...Array.from({ length: 400 }, () => ({ ...fix(now), lat: 'x' })), fix(now)];
    const outcome = await pipeline.ingest({ topic: topics.data('trucks', 'T-1'), payload: Buffer.from(JSON.stringify(batch)), receivedAt: now });
    expect(outcome).toMatchObject({ accepted: 1, rejected: 999 });
    expect(pipeline.rejections.totals()).toEqual({ out_of_range: 599, invalid_payload: 400 });
    expect(reports.slice(0, 10).map((r) => r.index)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(reports.slice(10)).toMatchObject([
      { reason: 'out_of_range', count: 589, index: 10 },
      { reason: 'invalid_payload', count: 400, index: 599 },
    ]);
  });

  it('lets the event loop turn between messages once a slice of 10 ms is spent, and keeps their order', async () => {
    const order: string[] = [];
    // A listener that takes 12 ms a message, as the rules do for a device's largest batches.
    const listener = (readings: Reading[]) => {
      order.push(`m${readings[0]!.ts % 1000}`);
      const until = performance.now() + 12;
      while (performance.now() < until);
    };
    const pipeline = new IngestPipeline(spool, ingestSchema.parse({}), createLogger('silent'), { listeners: [listener] });
    let turns = 0;
    let ticking = true;
    const tick = (): void => {
      order.push('turn');
      turns++;
      if (ticking) setImmediate(tick);
    };
    setImmediate(tick);
    await new Promise((resolve) => setImmediate(resolve));
    const now = Date.now() - (Date.now() % 1000);
    const done = Array.from({ length: 20 }, (_, i) => pipeline.ingest({ topic: topics.data('trucks', 'T-1'), payload: Buffer.from(JSON.stringify(fix(now + i))), receivedAt: now + 100 }));
    await Promise.all(done);
    ticking = false;
    const messages = order.filter((o) => o !== 'turn');
    expect(messages).toEqual(Array.from({ length: 20 }, (_, i) => `m${i}`));
    // Never two such messages in one turn of the loop.
    for (let i = 1; i < order.length; i++) expect(order[i] !== 'turn' && order[i - 1] !== 'turn').toBe(false);
    expect(turns).toBeGreaterThanOrEqual(20);
  });

  it('takes waiting messages one device at a time, so another device does not wait behind all of one device\'s', async () => {
    const order: string[] = [];
    const listener = (readings: Reading[]) => {
      order.push(readings[0]!.deviceId);
      const until = performance.now() + 12;
      while (performance.now() < until);
    };
    const pipeline = new IngestPipeline(spool, ingestSchema.parse({}), createLogger('silent'), { listeners: [listener] });
    const now = Date.now();
    const send = (device: string, i: number) => pipeline.ingest({ topic: topics.data('trucks', device), payload: Buffer.from(JSON.stringify(fix(now - 1000 + i))), receivedAt: now });
    const done = Array.from({ length: 20 }, (_, i) => send('HOSTILE', i));
    done.push(send('PROBE', 0));
    // The first hostile message may run at once (when a slice is under way); the rest wait.
    expect(pipeline.waitingMessages()).toBeGreaterThanOrEqual(20);
    await Promise.all(done);
    // Of the waiting ones, the probe's is second in line, not twenty-first.
    expect(order.indexOf('PROBE')).toBeLessThanOrEqual(2);
    expect(order.filter((d) => d === 'HOSTILE')).toHaveLength(20);
  });

  describe('on partitioned workers (weighing tickets judged with their truck)', () => {
    const ticket = (ts: number) => ({ ticket_id: 'TK-1', ts, plate: '苏E12345', gross_kg: 30_000, tare_kg: 12_000, net_kg: 18_000, category: 'construction', direction: 'out' });

    it('stores a ticket, forwards it instead of judging it, and finishes the message only once the forward is done too', async () => {
      const judged: Reading[] = [];
      let release!: () => void;
      const forwarded: Reading[] = [];
      const pipeline = new IngestPipeline(spool, ingestSchema.parse({}), createLogger('silent'), {
        listeners: [(readings) => judged.push(...readings.filter((r) => r.kind !== 'ticket'))],
        forwardTickets: (tickets) => {
          forwarded.push(...tickets);
          return new Promise((resolve) => (release = resolve));
        },
      });
      const now = Date.now();
      let done = false;
      const ingest = pipeline.ingest({ topic: topics.data('scales', 'WB-1'), payload: Buffer.from(JSON.stringify(ticket(now))), receivedAt: now }).then(() => (done = true));
      await new Promise((resolve) => setTimeout(resolve, 50));
      // The spool has it; the message is not finished (the device not acknowledged) before the forward is.
      expect(spool.appendedBytes()).toBeGreaterThan(0);
      expect(done).toBe(false);
      expect(forwarded).toMatchObject([{ kind: 'ticket', deviceId: 'WB-1', ticket_id: 'TK-1' }]);
      release();
      await ingest;
      expect(judged).toEqual([]);
    });

    it('fails the message when the forward fails, so the device keeps it', async () => {
      const pipeline = new IngestPipeline(spool, ingestSchema.parse({}), createLogger('silent'), { forwardTickets: () => Promise.reject(new Error('no RabbitMQ connection')) });
      const now = Date.now();
      await expect(pipeline.ingest({ topic: topics.data('scales', 'WB-1'), payload: Buffer.from(JSON.stringify(ticket(now))), receivedAt: now })).rejects.toThrow(/no RabbitMQ connection/);
    });

    it('judges a forwarded ticket without storing it again, and refuses anything forwarded that is not a weighbridge\'s ticket', async () => {
      const judged: Reading[] = [];
      const reports: { reason: string }[] = [];
      const pipeline = new IngestPipeline(spool, ingestSchema.parse({}), createLogger('silent'), {
        reports: { publish: async (_topic, payload) => void reports.push(JSON.parse(payload.toString())) },
        handover: { takeOver: () => undefined, release: () => undefined, judge: (readings) => judged.push(...readings) },
      });
      const now = Date.now();
      pipeline.judge({ topic: topics.data('scales', 'WB-1'), payload: Buffer.from(JSON.stringify(ticket(now))), receivedAt: now });
      expect(judged).toMatchObject([{ kind: 'ticket', deviceId: 'WB-1', ticket_id: 'TK-1', ts: now }]);
      expect(spool.appendedBytes()).toBe(0);
      // A truck's fix would be judged without ever being stored: refused, as is a ticket that is not one.
      pipeline.judge({ topic: topics.data('trucks', 'T-1'), payload: Buffer.from(JSON.stringify(fix(now))), receivedAt: now });
      pipeline.judge({ topic: topics.data('scales', 'WB-1'), payload: Buffer.from(JSON.stringify({ ...ticket(now), net_kg: 1 })), receivedAt: now });
      // A header naming no topic at all: huge, with control characters; quoted short in the report.
      pipeline.judge({ topic: `waste/scales/\u0000${'x'.repeat(100_000)}/tickets`, payload: Buffer.from(JSON.stringify(ticket(now))), receivedAt: now });
      expect(judged).toHaveLength(1);
      expect(reports.map((r) => r.reason)).toEqual(['unknown_topic', 'weights_inconsistent', 'unknown_topic']);
      expect(JSON.stringify(reports[2]).length).toBeLessThan(1000);
      expect(spool.appendedBytes()).toBe(0);
    });
  });
});

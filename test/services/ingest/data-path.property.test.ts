// Property tests of the data path, on the real spool and a real InfluxDB: for arbitrary valid
// readings (any Unicode in the strings, numbers at their bounds, any batch sizes, any spool batch
// cut), what InfluxDB holds afterwards is exactly what was accepted, with no other point, series or
// measurement; for arbitrary invalid input through the real broker, nothing is stored and every
// message is acknowledged and counted.
import fs from 'node:fs/promises';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { influxSchema, ingestSchema } from '../../../services/config/schema.ts';
import { DEVICE_ID_PATTERN, topics, type DeviceClass } from '../../../services/contract/topics.ts';
import { UNSTORABLE, WASTE_CATEGORIES } from '../../../services/contract/payloads.ts';
import { InfluxStore, quoteIdentifier } from '../../../services/influx/client.ts';
import { IngestPipeline } from '../../../services/ingest/pipeline.ts';
import { createLogger } from '../../../services/log.ts';
import { Shipper } from '../../../services/spool/shipper.ts';
import { Spool } from '../../../services/spool/spool.ts';
import { startTestInfluxd, type TestInfluxd } from '../../helpers/influxd.ts';
import { connectDevice, eventually, provision, startTestService, tempDir, testConfig, type TestService } from '../../helpers/service.ts';

const NOW = Date.now();
const limits = ingestSchema.parse({});
const log = createLogger('silent');

/** Characters that line protocol treats specially, and some that are merely unusual. */
const special = fc.constantFrom('"', '\\', ' ', ',', '=', '\u2028', '\u00a0', '苏', '·', '😀', '\ufeff');
const storable = (maxLength: number) =>
  fc
    .string({ unit: fc.oneof(special, fc.string({ unit: 'binary', minLength: 1, maxLength: 1 })), minLength: 1, maxLength })
    .map((s) => s.replace(new RegExp(UNSTORABLE.source, 'g'), 'x'))
    .filter((s) => s.length >= 1 && s.length <= maxLength);
const deviceId = fc.stringMatching(DEVICE_ID_PATTERN);
const within = (min: number, max: number) => fc.double({ min, max, noNaN: true });

interface Generated {
  deviceClass: DeviceClass;
  deviceId: string;
  /** Offsets (ms before now) of each reading: unique per device, so no point overwrites another. */
  readings: Record<string, unknown>[];
  /** How the readings are cut into messages: sizes; a size of 0 sends one bare object. */
  cuts: number[];
}

const binReading = fc.record(
  {
    fill_pct: within(0, 100),
    distance_mm: within(0, 10_000),
    temp_c: within(-50, 150),
    tilt_deg: within(0, 180),
    battery_v: within(0, 60),
    rssi: fc.integer({ min: -200, max: 0 }),
    lid_opens: fc.integer({ min: 0, max: 100_000 }),
  },
  { requiredKeys: ['fill_pct'] },
);
const truckFix = fc.record(
  {
    lat: within(-90, 90),
    lon: within(-180, 180),
    speed_kmh: within(0, 250),
    heading: fc.double({ min: 0, max: 360, maxExcluded: true, noNaN: true }),
    ignition: fc.boolean(),
    tipper_up: fc.boolean(),
    cover_closed: fc.boolean(),
    load_kg: within(0, 100_000),
  },
  { requiredKeys: ['lat', 'lon', 'speed_kmh', 'heading'] },
);
const ticket = fc
  .record(
    {
      ticket_id: storable(64),
      plate: storable(16),
      gross_kg: within(0, 100_000),
      tare_share: fc.double({ min: 0, max: 1, noNaN: true }),
      category: fc.constantFrom(...WASTE_CATEGORIES),
      direction: fc.constantFrom('in', 'out'),
      origin: storable(64),
    },
    { requiredKeys: ['ticket_id', 'plate', 'gross_kg', 'tare_share', 'category', 'direction'] },
  )
  .map(({ tare_share, ...t }) => {
    const tare_kg = t.gross_kg * tare_share;
    return { ...t, tare_kg, net_kg: t.gross_kg - tare_kg };
  });

/** ts as epoch ms or as ISO-8601 at some offset, within the accepted window (6 days back, 4 min ahead). */
const timestamp = (offsetMs: number) =>
  fc.tuple(fc.boolean(), fc.integer({ min: -48, max: 56 })).map(([asNumber, quarters]) => {
    const ms = NOW - offsetMs;
    if (asNumber) return { ts: ms, ms };
    const zone = quarters * 15;
    const local = new Date(ms + zone * 60_000).toISOString().slice(0, 23);
    const sign = zone < 0 ? '-' : '+';
    const hh = String(Math.floor(Math.abs(zone) / 60)).padStart(2, '0');
    const mm = String(Math.abs(zone) % 60).padStart(2, '0');
    return { ts: `${local}${sign}${hh}:${mm}`, ms };
  });

const device: fc.Arbitrary<Generated> = fc
  .tuple(fc.constantFrom<DeviceClass>('bins', 'trucks', 'scales'), deviceId, fc.uniqueArray(fc.integer({ min: -240_000, max: 6 * 86_400_000 }), { minLength: 1, maxLength: 60 }))
  .chain(([deviceClass, id, offsets]) =>
    fc.record({
      deviceClass: fc.constant(deviceClass),
      deviceId: fc.constant(id),
      readings: fc.tuple(
        ...offsets.map((offset) =>
          fc.tuple(timestamp(offset), deviceClass === 'bins' ? binReading : deviceClass === 'trucks' ? truckFix : ticket).map(([ts, body]) => ({ ...body, ts: ts.ts, _ms: ts.ms })),
        ),
      ),
      cuts: fc.array(fc.integer({ min: 0, max: 25 }), { minLength: 1, maxLength: 10 }),
    }),
  );

const MEASUREMENT = { bins: 'bin_level', trucks: 'truck_position', scales: 'weigh_ticket' } as const;

/** Messages of a device: its readings cut as the generator said, the last cut repeated. */
function messages(d: Generated): string[] {
  const out: string[] = [];
  let i = 0;
  for (let c = 0; i < d.readings.length; c++) {
    const size = d.cuts[Math.min(c, d.cuts.length - 1)]!;
    const strip = ({ _ms, ...r }: Record<string, unknown>) => r;
    if (size === 0) out.push(JSON.stringify(strip(d.readings[i++]!)));
    else {
      out.push(JSON.stringify(d.readings.slice(i, i + size).map(strip)));
      i += size;
    }
  }
  return out;
}

/** The row InfluxDB should hold for a reading: its tags, fields and time. */
function expectedRow(d: Generated, reading: Record<string, unknown>): Record<string, unknown> {
  const { _ms, ts: _ts, ...fields } = reading;
  const row: Record<string, unknown> = { time: _ms, device_id: d.deviceId };
  for (const [key, value] of Object.entries(fields)) {
    if (d.deviceClass === 'scales' && (key === 'category' || key === 'direction')) row[key] = value;
    else row[key] = typeof value === 'number' && value === 0 ? 0 : value;
  }
  return row;
}

async function stored(store: InfluxStore, measurement: string): Promise<Record<string, unknown>[]> {
  const series = await store.query(`SELECT * FROM ${quoteIdentifier(measurement)}`);
  const rows: Record<string, unknown>[] = [];
  for (const s of series) {
    for (const values of s.values) {
      const row: Record<string, unknown> = {};
      s.columns.forEach((column, i) => {
        if (values[i] !== null) row[column] = values[i];
      });
      rows.push(row);
    }
  }
  return rows;
}

const byKey = (row: Record<string, unknown>) => `${String(row.device_id)}|${String(row.time)}`;
const sortRows = (rows: Record<string, unknown>[]) => [...rows].sort((a, b) => byKey(a).localeCompare(byKey(b)));

describe('the data path, for arbitrary valid readings', () => {
  let influx: TestInfluxd;
  beforeAll(async () => {
    influx = await startTestInfluxd();
  }, 30_000);
  afterAll(() => influx?.cleanup());

  it('stores exactly what was accepted, whatever the strings, numbers, batch sizes and spool cuts', async () => {
    let run = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.uniqueArray(device, { minLength: 1, maxLength: 4, selector: (d) => d.deviceId }),
        fc.integer({ min: 1, max: 40 }),
        fc.integer({ min: 200, max: 20_000 }),
        async (devices, batchLines, segmentBytes) => {
          const dir = await tempDir('waste-property-');
          const database = `property_${run++}`;
          const store = new InfluxStore(influxSchema.parse({ url: influx.url, database }));
          await store.ensureDatabase();
          const spool = new Spool({ dir: path.join(dir, 'spool'), quotaBytes: 1 << 30, segmentBytes, fsync: false });
          await spool.open();
          const deadLetterDir = path.join(dir, 'dead-letter');
          const shipper = new Shipper(spool, store, { batchLines, lingerMs: 0, retryMinMs: 50, retryMaxMs: 200, deadLetterDir }, log);
          const pipeline = new IngestPipeline(spool, limits, log);
          shipper.start();
          let accepted = 0;
          for (const d of devices) {
            const topic = topics.data(d.deviceClass, d.deviceId);
            for (const payload of messages(d)) accepted += (await pipeline.ingest({ topic, payload: Buffer.from(payload), receivedAt: NOW })).accepted;
          }
          expect(pipeline.rejections.totals()).toEqual({});
          expect(accepted).toBe(devices.reduce((n, d) => n + d.readings.length, 0));
          expect(await shipper.drained(20_000)).toBe(true);
          await shipper.stop();
          await spool.close();
          expect(shipper.stats.deadLetteredLines).toBe(0);
          await expect(fs.readdir(deadLetterDir)).rejects.toThrow();

          const measurements = (await store.query('SHOW MEASUREMENTS'))[0]?.values.map((v) => v[0]) ?? [];
          expect(measurements.sort()).toEqual([...new Set(devices.map((d) => MEASUREMENT[d.deviceClass]))].sort());
          for (const deviceClass of ['bins', 'trucks', 'scales'] as const) {
            const mine = devices.filter((d) => d.deviceClass === deviceClass);
            if (mine.length === 0) continue;
            const expected = mine.flatMap((d) => d.readings.map((r) => expectedRow(d, r)));
            expect(sortRows(await stored(store, MEASUREMENT[deviceClass]))).toEqual(sortRows(expected));
          }
          await store.query(`DROP DATABASE ${quoteIdentifier(database)}`);
        },
      ),
      { numRuns: 40 },
    );
  }, 120_000);
});

/** Payloads that break the contract by construction, one reason each. */
const invalidPayload = (deviceClass: DeviceClass): fc.Arbitrary<{ payload: Buffer; items: number }> => {
  const valid = deviceClass === 'bins' ? binReading : deviceClass === 'trucks' ? truckFix : ticket;
  const reading = fc.tuple(valid, fc.integer({ min: 0, max: 86_400_000 })).map(([body, offset]) => ({ ...body, ts: NOW - offset }) as Record<string, unknown>);
  const broken: fc.Arbitrary<Record<string, unknown>> = fc.oneof(
    reading.chain((r) => fc.constantFrom<unknown>(1e20, -1e20, '2026-11-01 12:00:00', 'tomorrow', null, [], NOW + 3_600_000, NOW - 30 * 86_400_000, 1_700_000_000).map((ts) => ({ ...r, ts }))),
    reading.chain((r) => {
      const keys = Object.keys(r).filter((k) => k !== 'ts' && k !== 'category' && k !== 'direction');
      return fc.tuple(fc.constantFrom(...keys), fc.constantFrom<unknown>(-1e300, 1e300, 'x', true, null, {}, [[[[1]]]])).map(([key, value]) => {
        // A boolean field given a boolean is still valid; give it a number instead.
        const bad = typeof r[key] === 'boolean' && typeof value === 'boolean' ? 7 : value;
        return { ...r, [key]: typeof r[key] === 'string' && typeof bad === 'string' ? `${bad}\n` : bad };
      });
    }),
    fc.constant({ nothing: 'here' }),
  );
  return fc.oneof(
    broken.map((r) => ({ payload: Buffer.from(JSON.stringify(r)), items: 1 })),
    fc.array(broken, { minLength: 1, maxLength: 30 }).map((rs) => ({ payload: Buffer.from(JSON.stringify(rs)), items: rs.length })),
    fc.uint8Array({ maxLength: 300 }).map((bytes) => ({ payload: Buffer.concat([Buffer.from('{"'), Buffer.from(bytes)]), items: 1 })),
    fc.constantFrom('[]', '42', '"x"', 'null', '[[]]', '['.repeat(50_000) + ']'.repeat(50_000)).map((text) => ({ payload: Buffer.from(text), items: 1 })),
  );
};

describe('the data path, for arbitrary invalid input through the real broker', () => {
  let influx: TestInfluxd;
  let svc: TestService;
  let secrets: Record<string, string>;
  beforeAll(async () => {
    influx = await startTestInfluxd();
    const config = await testConfig(influx.url, { 'rules.enabled': false });
    secrets = await provision(config, [['BIN-P', 'bins'], ['TRUCK-P', 'trucks'], ['SCALE-P', 'scales']]);
    svc = await startTestService(config);
  }, 30_000);
  afterAll(async () => {
    await svc?.stop();
    await influx?.cleanup();
  });

  it('acknowledges and counts every message, and stores nothing of it', async () => {
    const ids = { bins: 'BIN-P', trucks: 'TRUCK-P', scales: 'SCALE-P' } as const;
    const clients = Object.fromEntries(
      await Promise.all((Object.keys(ids) as DeviceClass[]).map(async (c) => [c, await connectDevice(svc.url, ids[c], secrets[ids[c]]!)] as const)),
    );
    const rejectedBefore = () => Object.values(svc.service.pipeline.rejections.totals()).reduce((a, b) => a + b, 0);
    let expectedRejections = rejectedBefore();
    // Each connection records the device online: those three are all that may be accepted.
    const accepted = await eventually(async () => svc.service.pipeline.accepted, (n) => n === 3);
    expect(accepted).toBe(3);
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom<DeviceClass>('bins', 'trucks', 'scales').chain((c) => fc.tuple(fc.constant(c), fc.array(invalidPayload(c), { minLength: 1, maxLength: 5 }))),
        async ([deviceClass, payloads]) => {
          for (const { payload, items } of payloads) {
            // Resolves on the PUBACK: the message is acknowledged, so the device does not resend it.
            await clients[deviceClass]!.publishAsync(topics.data(deviceClass, ids[deviceClass]), payload, { qos: 1 });
            expectedRejections += items;
          }
          expect(rejectedBefore()).toBe(expectedRejections);
          expect(svc.service.pipeline.accepted).toBe(accepted);
        },
      ),
      { numRuns: 60 },
    );
    expect(await svc.service.shipper.drained(10_000)).toBe(true);
    for (const measurement of ['bin_level', 'truck_position', 'weigh_ticket']) {
      expect(await influx.store().query(`SELECT * FROM ${quoteIdentifier(measurement)}`)).toEqual([]);
    }
    await Promise.all(Object.values(clients).map((client) => client.endAsync()));
  }, 120_000);
});

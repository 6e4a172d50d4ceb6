// Tickets for past days sent to the running service over MQTT (a weighbridge's backlog): each day
// gets its separation rate counted without anyone calling the recompute API, once per burst,
// whether or not it was counted before, and across a restart before the count ran; with the
// registry (days owed a count, tonnage) on SQLite and on PostgreSQL.
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TelemetryService } from '../../../services/app.ts';
import { HOUR, MINUTE, addDays, localDate, localDayStart } from '../../../services/contract/local-time.ts';
import { topics } from '../../../services/contract/topics.ts';
import { freePort } from '../../helpers/ports.ts';
import { startTestInfluxd, type TestInfluxd } from '../../helpers/influxd.ts';
import { BACKENDS, registryLocations, type Backend } from '../../helpers/registry-backends.ts';
import { connectDevice, eventually, provision, sleep, tempDir, testConfig } from '../../helpers/service.ts';

/** The InfluxDB of the backend's suite: each has its own, as they count the same days. */
let influxd: TestInfluxd;

interface LogLine {
  msg: string;
  day?: string;
  [key: string]: unknown;
}

/** Where the registry is: a SQLite file (registry.file) or a PostgreSQL database (database.url). */
const registryAt = (backend: Backend, location: string): Record<string, string> => (backend === 'postgres' ? { 'database.url': location } : { 'registry.file': location });

/** The service on `dataDir` and `registry` with its log kept, the cron job out of the way (it would count yesterday too). */
async function startService(dataDir: string, registry: Record<string, string>, settleS: number) {
  const lines: LogLine[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const text of chunk.toString('utf8').split('\n').filter(Boolean)) lines.push(JSON.parse(text));
      done();
    },
  });
  const config = await testConfig(
    influxd.url,
    { 'api.port': await freePort(), 'api.host': '127.0.0.1', 'sorting.lateTicketSettleS': settleS, 'sorting.schedule': '0 0 1 1 *', ...registry },
    dataDir,
  );
  const service = new TelemetryService(config, pino({ level: 'info' }, stream));
  const ports = await service.start();
  const token = service.tokens.create({ name: 'ops', role: 'operator' }).token;
  return {
    service,
    config,
    lines,
    mqttUrl: `mqtt://127.0.0.1:${ports.mqttPort}`,
    /** How many times `day` was counted so far. */
    counts: (day: string) => lines.filter((l) => l.msg === 'separation rate counted' && l.day === day).length,
    rates: async (day: string, window = 'day') => {
      const response = await fetch(`http://127.0.0.1:${ports.apiPort}/api/v1/sorting/rates?day=${day}&scope=city&window=${window}`, { headers: { authorization: `Bearer ${token}` } });
      return ((await response.json()) as { items: { kitchen_kg: number; other_kg: number; rate: number | null; days_counted: number }[] }).items;
    },
  };
}

let ticketNo = 0;
/** A household ticket delivered on `day` (local), `minute` minutes after 08:00. */
function ticket(day: string, minute: number, category: 'kitchen' | 'other', netKg: number) {
  return { ticket_id: `BL-${++ticketNo}`, ts: localDayStart(day) + 8 * HOUR + minute * MINUTE, plate: '苏E·H0001', gross_kg: 8000 + netKg, tare_kg: 8000, net_kg: netKg, category, direction: 'in' };
}

/** The city's separation_rate point of `day` in InfluxDB, or undefined. */
async function storedRate(day: string, window = 'day') {
  const series = await influxd
    .store()
    .query(`SELECT kitchen_kg, other_kg, rate FROM separation_rate WHERE scope_id = 'city' AND "window" = $window AND time = $t`, { window, t: new Date(localDayStart(day)).toISOString() })
    .catch(() => []);
  const row = series[0]?.values[0];
  return row ? { kitchen_kg: row[1], other_kg: row[2], rate: row[3] } : undefined;
}

describe.each(BACKENDS)('tickets for past days, the registry on %s', (backend) => {
  const location = registryLocations(backend);
  beforeAll(async () => {
    influxd = await startTestInfluxd();
  });
  afterAll(async () => {
    await influxd?.cleanup();
  });

  it('gets a day never counted and a day counted at start counted, once per backlog, into InfluxDB and the API', async () => {
    const today = localDate(Date.now());
    const yesterday = addDays(today, -1);
    const older = addDays(today, -3);
    const dataDir = await tempDir('waste-backlog-');
    const svc = await startService(dataDir, registryAt(backend, await location()), 2);
    expect(svc.service.registry.dialect).toBe(backend);
    const secrets = await provision(svc.config, [['SCALE-BL1', 'scales']]);
    const device = await connectDevice(svc.mqttUrl, 'SCALE-BL1', secrets['SCALE-BL1']!);
    try {
      // The start counted yesterday and today, and nothing older.
      expect(await eventually(async () => svc.counts(yesterday), (n) => n === 1)).toBe(1);
      expect(svc.counts(older)).toBe(0);

      // The backlog: 20 messages of 3 tickets each, for three days ago and yesterday.
      for (let i = 0; i < 20; i++) {
        const batch = [ticket(older, i * 3, 'kitchen', 100), ticket(older, i * 3 + 1, 'other', 300), ticket(yesterday, i * 3, 'kitchen', 200)];
        await device.publishAsync(topics.data('scales', 'SCALE-BL1'), JSON.stringify(batch), { qos: 1 });
      }

      const olderRate = await eventually(() => storedRate(older), (r) => r !== undefined, 20_000);
      expect(olderRate).toEqual({ kitchen_kg: 2000, other_kg: 6000, rate: 0.25 });
      expect(await eventually(() => storedRate(yesterday), (r) => r?.kitchen_kg === 4000, 20_000)).toEqual({ kitchen_kg: 4000, other_kg: 0, rate: 1 });
      // The rolling 7 days ending yesterday take in the day counted for the first time.
      expect(await eventually(() => storedRate(yesterday, '7d'), (r) => r?.kitchen_kg === 6000)).toEqual({ kitchen_kg: 6000, other_kg: 6000, rate: 0.5 });
      expect(await svc.rates(older)).toMatchObject([{ kitchen_kg: 2000, other_kg: 6000, rate: 0.25, days_counted: 1 }]);
      expect(await svc.rates(yesterday, '7d')).toMatchObject([{ kitchen_kg: 6000, other_kg: 6000, rate: 0.5, days_counted: 2 }]);

      // 60 tickets, one count per day (yesterday's at start aside), and none more once they settled.
      await sleep(7000);
      expect(svc.counts(older)).toBe(1);
      expect(svc.counts(yesterday)).toBe(2);
      expect(svc.service.sorting.store.owedDays()).toEqual([]);
    } finally {
      await device.endAsync();
      await svc.service.stop();
    }
  }, 60_000);

  it('still counts a day whose ticket was acknowledged when the service stopped before counting it', async () => {
    const day = addDays(localDate(Date.now()), -4);
    const dataDir = await tempDir('waste-backlog-restart-');
    const registry = registryAt(backend, await location());
    // An hour to settle: this service stops long before it would count the day.
    const first = await startService(dataDir, registry, 3600);
    const secrets = await provision(first.config, [['SCALE-BL2', 'scales']]);
    const device = await connectDevice(first.mqttUrl, 'SCALE-BL2', secrets['SCALE-BL2']!);
    await device.publishAsync(topics.data('scales', 'SCALE-BL2'), JSON.stringify([ticket(day, 0, 'kitchen', 300), ticket(day, 1, 'other', 700)]), { qos: 1 });
    await device.endAsync();
    await first.service.stop();
    expect(first.counts(day)).toBe(0);
    expect(await storedRate(day)).toBeUndefined();

    const second = await startService(dataDir, registry, 1);
    try {
      expect(await eventually(() => storedRate(day), (r) => r !== undefined, 20_000)).toEqual({ kitchen_kg: 300, other_kg: 700, rate: 0.3 });
      expect(await second.rates(day)).toMatchObject([{ kitchen_kg: 300, other_kg: 700, rate: 0.3 }]);
      expect(second.counts(day)).toBe(1);
      expect(second.service.sorting.store.owedDays()).toEqual([]);
    } finally {
      await second.service.stop();
    }
  }, 60_000);
});

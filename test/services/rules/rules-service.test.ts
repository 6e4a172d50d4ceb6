// The rules as a service, on a real registry and a real InfluxDB: which devices a worker judges when
// workers share a RabbitMQ cluster's partitions (RulesDeps.judges), and a bin taken over.
import { afterEach, describe, expect, it } from 'vitest';
import { rulesSchema } from '../../../services/config/schema.ts';
import type { Finding } from '../../../services/contract/findings.ts';
import { createLogger } from '../../../services/log.ts';
import { TelemetryReader } from '../../../services/influx/reader.ts';
import { readingToLine } from '../../../services/ingest/points.ts';
import { CityIndex } from '../../../services/registry/city-index.ts';
import { RulesService } from '../../../services/rules/rules-service.ts';
import type { BinReading } from '../../../services/rules/types.ts';
import { startTestInfluxd } from '../../helpers/influxd.ts';
import { DEVICES, worldRegistry } from '../../helpers/rules-world.ts';
import { eventually } from '../../helpers/service.ts';

const running: { rules: RulesService; city: CityIndex }[] = [];
afterEach(() => {
  for (const { rules, city } of running.splice(0)) {
    rules.stop();
    city.stop();
  }
});

async function rulesOf(judges?: (deviceId: string) => boolean, history: TelemetryReader | null = null): Promise<{ rules: RulesService; findings: Finding[] }> {
  const { db, entities } = await worldRegistry();
  const city = new CityIndex(db, entities);
  city.start();
  const findings: Finding[] = [];
  const rules = new RulesService({
    db,
    city,
    config: rulesSchema.parse({ binReportIntervalS: 60 }),
    onFinding: (finding) => void findings.push(finding),
    writeLines: async () => undefined,
    log: createLogger('silent'),
    ...(judges ? { judges } : {}),
  });
  await rules.start(history);
  running.push({ rules, city });
  return { rules, findings };
}

const reading = (deviceId: string, ts: number): BinReading => ({ kind: 'bin', deviceId, ts, fill_pct: 30 });
const offline = (findings: Finding[]) => findings.filter((f) => f.type === 'device_offline').map((f) => f.subject.id);

describe('RulesService', () => {
  it('judges the silence only of the devices this worker receives: one known from the replay at start that reports through another worker is not offline here', async () => {
    const t0 = Date.now() - 3_600_000;
    // BIN-S1 was heard (as in the replay at start) and then goes on through another worker;
    // BIN-S2 reports here for ten more minutes of event time, three report intervals and more.
    const heard = [0, 60, 120].map((s) => reading(DEVICES.bin1, t0 + s * 1000));
    const here = Array.from({ length: 11 }, (_, i) => reading(DEVICES.bin2, t0 + i * 60_000));
    const all = await rulesOf();
    const partitioned = await rulesOf((deviceId) => deviceId !== DEVICES.bin1);
    for (const { rules } of [all, partitioned]) {
      rules.consume(heard);
      for (const r of here) rules.consume([r]);
    }
    // The silence is looked at every second.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect(offline(all.findings)).toEqual(['BIN-1']);
    expect(offline(partitioned.findings)).toEqual([]);
  });

  it('rebuilds a bin taken over from another worker at once, so that its silence is judged here though it never reports again', async () => {
    const influxd = await startTestInfluxd();
    try {
      const store = influxd.store();
      await store.ensureDatabase();
      const { rules, findings } = await rulesOf(() => true, new TelemetryReader(store));
      // What the worker that judged BIN-S1 until it died stored of it, after this one started.
      const t0 = Date.now() - 3_600_000;
      await store.write([0, 60, 120].map((s) => readingToLine(reading(DEVICES.bin1, t0 + s * 1000))).join('\n'));
      rules.takeOver([DEVICES.bin1]);
      await eventually(async () => rules.latestBinSample(DEVICES.bin1), (sample) => sample !== null, 10_000);
      for (let i = 0; i < 11; i++) rules.consume([reading(DEVICES.bin2, t0 + i * 60_000)]);
      await new Promise((resolve) => setTimeout(resolve, 1500));
      expect(offline(findings)).toEqual(['BIN-1']);
      expect(rules.takeovers).toMatchObject({ rebuilt: 1, replayedReadings: 3, failed: 0 });
    } finally {
      await influxd.cleanup();
    }
  });
});

// The rules engine on the hand-built world, with the real alert service behind it, so tests look
// at the alerts an officer would get.
import { AlertService } from '../../../services/alerts/alert-service.ts';
import type { AlertView } from '../../../services/alerts/alert-store.ts';
import { alertsSchema, rulesSchema, type RulesConfig } from '../../../services/config/schema.ts';
import type { Reading } from '../../../services/contract/payloads.ts';
import { createLogger } from '../../../services/log.ts';
import { CityIndex } from '../../../services/registry/city-index.ts';
import { RulesEngine } from '../../../services/rules/engine.ts';
import { SpillageStore } from '../../../services/rules/spillage.ts';
import type { FixRule } from '../../../services/rules/types.ts';
import { worldRegistry, type WorldOptions } from '../../helpers/rules-world.ts';

export async function rulesHarness(options: { world?: WorldOptions; config?: Partial<RulesConfig>; fixRules?: FixRule[] } = {}) {
  const { db, entities } = await worldRegistry(options.world);
  const config = rulesSchema.parse(options.config ?? {});
  const city = new CityIndex(db, entities);
  const lines: string[] = [];
  const writeLines = async (text: string) => {
    lines.push(text);
  };
  const alerts = new AlertService({ db, config: alertsSchema.parse({}), evidenceMax: config.evidenceMax, outputs: [], writeLines, log: createLogger('silent') });
  const spillage = new SpillageStore(db, config.spillageCellM, () => city.current, writeLines);
  const engine = new RulesEngine({
    config,
    registry: () => city.current,
    speedLimitAt: () => config.speedLimitKmh,
    onFinding: (f) => alerts.onFinding(f),
    onSpill: (s) => void spillage.record(s),
    log: createLogger('silent'),
    ...(options.fixRules ? { fixRules: options.fixRules } : {}),
  });
  return {
    db,
    city,
    engine,
    alerts,
    spillage,
    lines,
    /** Feeds readings one by one, then lets every ticket waiting to settle be judged. */
    feed(readings: Reading[]) {
      for (const r of readings) engine.consume([r]);
      engine.tick(Number.POSITIVE_INFINITY);
    },
    list(type?: string): AlertView[] {
      return alerts.store.list({ limit: 500, offset: 0, ...(type ? { types: [type] } : {}) }).items.sort((a, b) => a.started_at.localeCompare(b.started_at));
    },
    close() {
      db.close();
    },
  };
}

/** What must not differ between a clean and a noisy delivery of the same track. */
export function essence(alerts: AlertView[]) {
  return alerts.map((a) => ({ type: a.type, started_at: a.started_at, ended_at: a.ended_at, jurisdictions: a.jurisdictions, subject: a.subject.id }));
}

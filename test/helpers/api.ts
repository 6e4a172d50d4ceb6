// The alert and sorting dependencies of the HTTP API for tests that build the app on their own
// registry (no rules engine: bin forecasts are empty, sorting figures come from what a test counts).
import { AlertService } from '../../services/alerts/alert-service.ts';
import { alertsSchema, sortingSchema } from '../../services/config/schema.ts';
import { createLogger } from '../../services/log.ts';
import type { RegistryDb } from '../../services/registry/db.ts';
import { CityIndex } from '../../services/registry/city-index.ts';
import { EntityStore } from '../../services/registry/entity-store.ts';
import { SpillageStore } from '../../services/rules/spillage.ts';
import { SortingService } from '../../services/sorting/sorting-service.ts';
import { SortingStore } from '../../services/sorting/sorting-store.ts';

export function alertDeps(db: RegistryDb, writeLines: (lines: string) => Promise<void> = async () => {}) {
  const entities = new EntityStore(db);
  const city = new CityIndex(db, entities);
  const alerts = new AlertService({ db, config: alertsSchema.parse({}), evidenceMax: 40, outputs: [], writeLines, log: createLogger('silent') });
  const config = sortingSchema.parse({});
  return {
    alerts,
    spillage: new SpillageStore(db, 200, () => city.current, writeLines),
    sorting: new SortingService({ config, store: new SortingStore(db, config), entities, reader: null, city, writeLines, onFinding: (f) => alerts.onFinding(f), log: createLogger('silent') }),
    forecastOf: () => null,
  };
}

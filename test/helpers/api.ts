// The alert-side dependencies of the HTTP API for tests that build the app on their own registry.
import { AlertService } from '../../services/alerts/alert-service.ts';
import { alertsSchema } from '../../services/config/schema.ts';
import { createLogger } from '../../services/log.ts';
import type { RegistryDb } from '../../services/registry/db.ts';
import { EntityStore } from '../../services/registry/entity-store.ts';
import { RegistryIndex } from '../../services/rules/registry-index.ts';
import { SpillageStore } from '../../services/rules/spillage.ts';

export function alertDeps(db: RegistryDb, writeLines: (lines: string) => Promise<void> = async () => {}): { alerts: AlertService; spillage: SpillageStore } {
  const index = new RegistryIndex(db, new EntityStore(db));
  return {
    alerts: new AlertService(db, alertsSchema.parse({}), writeLines, createLogger('silent'), 40),
    spillage: new SpillageStore(db, 200, () => index.current, writeLines),
  };
}

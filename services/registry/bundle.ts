// Bulk import of a registry bundle (docs/registry-bundle.md): what a city hands over when it adopts
// the system. All or nothing: every item is checked, every problem is listed with its path, and
// nothing is written unless there is none. Idempotent: importing the same bundle again changes
// nothing. New devices get secrets, returned once in the report.
import { z } from 'zod';
import { hashSecret, generateSecret } from '../broker/secrets.ts';
import { DEVICE_CLASSES, DEVICE_ID_PATTERN } from '../contract/topics.ts';
import type { RegistryDb } from './db.ts';
import { RegistryError, type DeviceStore } from './devices.ts';
import { ENTITIES, entityId, type EntityName } from './entities.ts';
import type { EntityStore } from './entity-store.ts';
import { GeometryError, SOURCE_CRS } from './geometry.ts';

/** Collections in the order they are written, so that every reference points backwards. */
export const BUNDLE_ORDER: readonly EntityName[] = ['companies', 'districts', 'jurisdictions', 'communities', 'sites', 'weighbridges', 'trucks', 'bins', 'permits'];

const bundleSchema = z.object({
  format: z.literal('waste-registry-bundle'),
  version: z.literal(1),
  crs: z.enum(SOURCE_CRS).default('WGS-84'),
  devices: z.array(z.unknown()).default([]),
  ...Object.fromEntries(BUNDLE_ORDER.map((name) => [name, z.array(z.unknown()).default([])])),
});

const deviceItem = z.object({
  id: z.string().regex(DEVICE_ID_PATTERN),
  class: z.enum(DEVICE_CLASSES),
  /** A hash the provisioning system computed itself (secrets.ts format); no secret is made then. */
  secret_hash: z.string().regex(/^scrypt\$\d+\$\d+\$\d+\$[\w-]+\$[\w-]+$/, { error: 'must be scrypt$N$r$p$salt$hash' }).optional(),
});

export interface BundleProblem {
  path: (string | number)[];
  message: string;
}

export class BundleError extends Error {
  constructor(readonly problems: BundleProblem[]) {
    super(`the bundle was not imported: ${problems.length} problem${problems.length === 1 ? '' : 's'}; nothing was written`);
  }
}

type Outcome = 'created' | 'updated' | 'unchanged';

export interface ImportReport {
  dryRun: boolean;
  counts: Record<string, Record<Outcome, number>>;
  /** Secrets of the devices this import created; shown once. */
  deviceSecrets: { id: string; secret: string }[];
}

interface Deps {
  db: RegistryDb;
  devices: DeviceStore;
  entities: EntityStore;
}

/** Rolls a dry run back after it has checked everything. */
class DryRunDone extends Error {}

export async function importBundle(deps: Deps, input: unknown, options: { dryRun?: boolean } = {}): Promise<ImportReport> {
  const problems: BundleProblem[] = [];
  const top = bundleSchema.safeParse(input);
  if (!top.success) {
    throw new BundleError(top.error.issues.map((issue) => ({ path: issue.path as (string | number)[], message: issue.message })));
  }
  const bundle = top.data as z.infer<typeof bundleSchema> & Record<EntityName, unknown[]>;

  // Devices first, outside the transaction: hashing is slow and asynchronous.
  const newDevices: { id: string; class: (typeof DEVICE_CLASSES)[number]; secret: string | null; hash: string }[] = [];
  const counts: ImportReport['counts'] = { devices: { created: 0, updated: 0, unchanged: 0 } };
  for (const [index, item] of bundle.devices.entries()) {
    const parsed = deviceItem.safeParse(item);
    if (!parsed.success) {
      for (const issue of parsed.error.issues) problems.push({ path: ['devices', index, ...(issue.path as (string | number)[])], message: issue.message });
      continue;
    }
    const existing = deps.devices.device(parsed.data.id);
    if (existing && existing.class !== parsed.data.class) {
      problems.push({ path: ['devices', index, 'class'], message: `device ${parsed.data.id} exists as ${existing.class}, not ${parsed.data.class}` });
    } else if (existing) counts.devices!.unchanged++;
    else if (!newDevices.some((d) => d.id === parsed.data.id)) {
      const { id, class: deviceClass, secret_hash } = parsed.data;
      const secret = secret_hash ? null : generateSecret();
      newDevices.push({ id, class: deviceClass, secret, hash: secret_hash ?? (await hashSecret(secret!)) });
    }
  }

  const parsedItems = new Map<EntityName, { id: string; index: number; fields: Record<string, unknown> }[]>();
  for (const name of BUNDLE_ORDER) {
    const schema = ENTITIES[name].fields.extend({ id: entityId });
    const items: { id: string; index: number; fields: Record<string, unknown> }[] = [];
    const seen = new Set<string>();
    for (const [index, item] of bundle[name].entries()) {
      const parsed = schema.safeParse(item);
      if (!parsed.success) {
        for (const issue of parsed.error.issues) problems.push({ path: [name, index, ...(issue.path as (string | number)[])], message: issue.message });
        continue;
      }
      const { id, ...fields } = parsed.data as { id: string } & Record<string, unknown>;
      if (seen.has(id)) problems.push({ path: [name, index, 'id'], message: `${id} appears twice in ${name}` });
      seen.add(id);
      items.push({ id, index, fields });
    }
    parsedItems.set(name, items);
  }

  const report: ImportReport = { dryRun: options.dryRun === true, counts, deviceSecrets: [] };
  try {
    deps.db.transaction(() => {
      // Rows may name rows of their own collection that come later (mutual neighbours): foreign
      // keys are checked at commit, and those references once the collection is written.
      deps.db.connection.pragma('defer_foreign_keys = ON');
      for (const device of newDevices) {
        deps.devices.insertHashed(device.id, device.class, device.hash);
        counts.devices!.created++;
      }
      for (const name of BUNDLE_ORDER) {
        const tally: Record<Outcome, number> = { created: 0, updated: 0, unchanged: 0 };
        for (const item of parsedItems.get(name)!) {
          try {
            tally[deps.entities.upsert(ENTITIES[name], item.id, item.fields, bundle.crs, { deferSelfReferences: true })]++;
          } catch (error) {
            if (!(error instanceof RegistryError || error instanceof GeometryError)) throw error;
            problems.push({ path: [name, item.index, ...(error instanceof GeometryError ? error.path : [])], message: error.message });
          }
        }
        for (const [field, link] of Object.entries(ENTITIES[name].relations)) {
          if (link.references !== ENTITIES[name].table) continue;
          for (const item of parsedItems.get(name)!) {
            for (const other of (item.fields[field] as string[] | undefined) ?? []) {
              if (!deps.entities.get(ENTITIES[name], other)) problems.push({ path: [name, item.index, field], message: `${field}: no ${ENTITIES[name].singular} ${other}` });
            }
          }
        }
        counts[name] = tally;
      }
      // Throwing inside the transaction rolls all of it back.
      if (problems.length > 0) throw new BundleError(problems);
      if (options.dryRun) throw new DryRunDone();
    });
  } catch (error) {
    if (!(error instanceof DryRunDone)) throw error;
    return report;
  }
  report.deviceSecrets = newDevices.filter((d) => d.secret !== null).map(({ id, secret }) => ({ id, secret: secret! }));
  if (newDevices.length > 0) deps.devices.announceChange();
  return report;
}

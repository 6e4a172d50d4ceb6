// Bulk import of a registry bundle (docs/registry-bundle.md): what a city hands over when it adopts
// the system. All or nothing: every item is checked, problems are listed with their paths, and
// nothing is written unless there is none. Idempotent: importing the same bundle again changes
// nothing. New devices get secrets, returned once in the report.
//
// Bounded: a bundle of more than limits.importMaxItems items is refused before any is checked, the
// problems kept are the first limits.importMaxProblems (the rest are counted), and each geometry
// is capped in positions (geometry.ts). The work comes in two steps. Every item is checked first
// against the database and the bundle's own checked items, without writing and without a
// transaction; only then are the rows written, in one transaction (all or nothing, and nobody
// sees a half-imported registry), which holds the write lock for the writes alone. The service
// runs the whole of it on a worker thread (bundle-thread.ts): parsing and checking 150,000 items
// take seconds, and their write about 1.5 s of synchronous SQLite, which would otherwise stop the
// event loop (MQTT acknowledgements, the API) for as long.
import { z } from 'zod';
import { hashSecret, generateSecret } from '../broker/secrets.ts';
import { DEVICE_CLASSES, DEVICE_ID_PATTERN, type DeviceClass } from '../contract/topics.ts';
import { isViolation, type RegistryDb } from './db.ts';
import { devEuiProblem, normaliseDevEui } from '../lorawan/dev-eui.ts';
import { RegistryError, importedSecretHash, normaliseTerminalPhone, sensorModelProblem, terminalModelProblem, terminalPhoneProblem, type DeviceStore, type LorawanColumns, type TerminalColumns } from './devices.ts';
import { ENTITIES, entityId, type EntityDefinition, type EntityName } from './entities.ts';
import type { EntityStore, RowLookup } from './entity-store.ts';
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

const refusedBy = (problem: (value: string) => string | null) => (value: string, ctx: z.RefinementCtx) => {
  const message = problem(value);
  if (message) ctx.addIssue({ code: 'custom', message });
};

const deviceItem = z
  .object({
    id: z.string().regex(DEVICE_ID_PATTERN),
    class: z.enum(DEVICE_CLASSES),
    /** A hash the provisioning system computed itself (secrets.ts format); no secret is made then. */
    secret_hash: importedSecretHash.optional(),
    /** JT/T 808 terminal phone number (registry/devices.ts), stored without leading zeros. */
    jt808_phone: z.string().superRefine(refusedBy(terminalPhoneProblem)).transform(normaliseTerminalPhone).optional(),
    jt808_model: z.string().superRefine(refusedBy(terminalModelProblem)).optional(),
    /** The hash of the terminal's authentication code, made as secret hashes are; none: it registers for one. */
    jt808_auth_code_hash: importedSecretHash.optional(),
    /** DevEUI of a LoRaWAN bin sensor (lorawan/dev-eui.ts), stored as 16 upper-case hex digits. */
    lorawan_dev_eui: z.string().superRefine(refusedBy(devEuiProblem)).transform(normaliseDevEui).optional(),
    lorawan_sensor: z.string().superRefine(refusedBy(sensorModelProblem)).optional(),
  })
  .superRefine((item, ctx) => {
    const terminal = item.jt808_phone !== undefined || item.jt808_model !== undefined || item.jt808_auth_code_hash !== undefined;
    if (terminal && item.class !== 'trucks') {
      ctx.addIssue({ code: 'custom', path: ['class'], message: `device ${item.id} is of class ${item.class}; only trucks devices can be JT/T 808 terminals` });
    } else if (item.jt808_phone === undefined && terminal) {
      ctx.addIssue({ code: 'custom', path: ['jt808_phone'], message: 'jt808_model and jt808_auth_code_hash need jt808_phone' });
    }
    const sensor = item.lorawan_dev_eui !== undefined || item.lorawan_sensor !== undefined;
    if (sensor && item.class !== 'bins') {
      ctx.addIssue({ code: 'custom', path: ['class'], message: `device ${item.id} is of class ${item.class}; only bins devices can be LoRaWAN sensors` });
    } else if (item.lorawan_dev_eui === undefined && sensor) {
      ctx.addIssue({ code: 'custom', path: ['lorawan_dev_eui'], message: 'lorawan_sensor needs lorawan_dev_eui' });
    }
  });
type DeviceItem = z.infer<typeof deviceItem>;

/** A device item's terminal and LoRaWAN fields, to tell two items of one device apart. */
const identifiersOf = (item: DeviceItem) => JSON.stringify([item.jt808_phone, item.jt808_model, item.jt808_auth_code_hash, item.lorawan_dev_eui, item.lorawan_sensor]);

/** How to import a registry too large for one bundle; said whenever a limit refuses one. */
export const SPLIT_ADVICE =
  'split it into bundles imported one after another: items are matched by id, so a later bundle may refer to what an earlier one imported ' +
  '(e.g. devices, companies, districts and jurisdictions first, then communities and sites, then bins, trucks and permits, a district at a time)';

export interface BundleProblem {
  path: (string | number)[];
  message: string;
}

export class BundleError extends Error {
  constructor(
    /** The first problems found (at most registry.importMaxProblems). */
    readonly problems: BundleProblem[],
    /** All problems found, listed or not. */
    readonly problemCount: number = problems.length,
  ) {
    const listed = problemCount > problems.length ? ` (the first ${problems.length} are listed)` : '';
    super(`the bundle was not imported: ${problemCount} problem${problemCount === 1 ? '' : 's'}${listed}; nothing was written`);
  }
}

/** A bundle over one of the size limits (HTTP 413); `code` and `statusCode` are the API's. */
export class BundleTooLargeError extends Error {
  readonly statusCode = 413;
  readonly code = 'BUNDLE_TOO_LARGE';
}

type Outcome = 'created' | 'updated' | 'unchanged';

export interface ImportReport {
  dryRun: boolean;
  counts: Record<string, Record<Outcome, number>>;
  /** Secrets of the devices this import created; shown once. */
  deviceSecrets: { id: string; secret: string }[];
}

export interface ImportDeps {
  db: RegistryDb;
  devices: DeviceStore;
  entities: EntityStore;
}

/** Keeps the first problems and counts the others: a million bad items must not become a million objects. */
class Problems {
  readonly listed: BundleProblem[] = [];
  count = 0;

  constructor(private readonly max: number) {}

  add(path: (string | number)[], message: string): void {
    this.count++;
    if (this.listed.length < this.max) this.listed.push({ path, message });
  }

  error(): BundleError {
    return new BundleError(this.listed, this.count);
  }
}

/** Items of the collections a bundle may hold, counted from the array lengths before anything is parsed. */
export function countItems(input: unknown): number {
  if (typeof input !== 'object' || input === null) return 0;
  let items = 0;
  for (const name of ['devices', ...BUNDLE_ORDER]) {
    const collection = (input as Record<string, unknown>)[name];
    if (Array.isArray(collection)) items += collection.length;
  }
  return items;
}

interface NewDevice {
  id: string;
  class: DeviceClass;
  hash: string | undefined;
  terminal: TerminalColumns | undefined;
  lorawan: LorawanColumns | undefined;
}

/** A stored device whose terminal (or LoRaWAN) fields the bundle changes: a device has one or the other, by its class. */
interface ChangedDevice {
  index: number;
  id: string;
  terminal?: TerminalColumns;
  lorawan?: LorawanColumns;
  /** updated_at of the stored device when it was compared; the write requires it unchanged. */
  stamp: string;
}

/** An item checked and ready to be written. */
interface Planned {
  index: number;
  id: string;
  values: Record<string, unknown>;
  relations: Record<string, string[]>;
  outcome: Outcome;
  /** updated_at of the stored row when it was compared; the write requires it unchanged. */
  stamp: string | null;
}

const issuePath = (issue: z.core.$ZodIssue): (string | number)[] => issue.path.filter((key): key is string | number => typeof key !== 'symbol');

/**
 * Checks every item without writing: fields, geometry, references (to the database or to items of
 * the bundle checked before), uniqueness, each definition's own checks. Returns what to write.
 */
function plan(deps: ImportDeps, bundle: z.infer<typeof bundleSchema> & Record<EntityName, unknown[]>, problems: Problems) {
  const { db, devices, entities } = deps;
  const counts: ImportReport['counts'] = { devices: { created: 0, updated: 0, unchanged: 0 } };
  const bundleDevices = new Map<string, DeviceItem>();
  const newDevices: NewDevice[] = [];
  const changedDevices: ChangedDevice[] = [];
  /** Terminal phone numbers the bundle's checked devices are given, and which device each. */
  const phones = new Map<string, { id: string; index: number }>();
  /** Phone numbers of stored devices as the bundle leaves them, for the devices it changes. */
  const phoneAfter = new Map<string, string | null>();
  /** DevEUIs the bundle's checked devices are given, and DevEUIs of stored devices it changes, as for phone numbers. */
  const devEuis = new Map<string, { id: string; index: number }>();
  const devEuiAfter = new Map<string, string | null>();
  for (const [index, item] of bundle.devices.entries()) {
    const parsed = deviceItem.safeParse(item);
    if (!parsed.success) {
      for (const issue of parsed.error.issues) problems.add(['devices', index, ...issuePath(issue)], issue.message);
      continue;
    }
    const { id, class: deviceClass, secret_hash, jt808_phone, jt808_model, jt808_auth_code_hash, lorawan_dev_eui, lorawan_sensor } = parsed.data;
    const earlier = bundleDevices.get(id);
    if (earlier !== undefined) {
      if (earlier.class !== deviceClass) problems.add(['devices', index, 'class'], `device ${id} appears twice in devices, as ${earlier.class} and as ${deviceClass}`);
      // The path names the field a device of its class may have: a bins device has no jt808_phone.
      else if (identifiersOf(earlier) !== identifiersOf(parsed.data)) problems.add(['devices', index, deviceClass === 'bins' ? 'lorawan_dev_eui' : 'jt808_phone'], `device ${id} appears twice in devices, with different JT/T 808 or LoRaWAN fields`);
      continue;
    }
    const existing = devices.device(id);
    if (existing && existing.class !== deviceClass) {
      problems.add(['devices', index, 'class'], `device ${id} exists as ${existing.class}, not ${deviceClass}`);
      continue;
    }
    // A stored device keeps its terminal fields unless the bundle names them; a stored
    // authentication code is kept, as stored secrets are (an operator resets it): the bundle's
    // hash is taken only by a terminal without one.
    const phone = jt808_phone ?? existing?.jt808_phone ?? null;
    const model = jt808_model ?? existing?.jt808_model ?? null;
    const authHash = existing?.jt808_registered ? undefined : (jt808_auth_code_hash ?? null);
    if (phone !== null) {
      const claimed = phones.get(phone);
      if (claimed !== undefined) {
        problems.add(['devices', index, 'jt808_phone'], `terminal phone number ${phone} is given to devices ${claimed.id} (devices.${claimed.index}) and ${id}`);
        continue;
      }
      // Held by a stored device that the bundle does not move off it before this item: the
      // writes, in bundle order, would fail.
      const holder = devices.terminalHolder(phone);
      if (holder !== undefined && holder !== id && (phoneAfter.get(holder) ?? phone) === phone) {
        problems.add(['devices', index, 'jt808_phone'], `terminal phone number ${phone} belongs to device ${holder} already`);
        continue;
      }
    }
    // The same for a LoRaWAN sensor's DevEUI and model.
    const devEui = lorawan_dev_eui ?? existing?.lorawan_dev_eui ?? null;
    const sensor = lorawan_sensor ?? existing?.lorawan_sensor ?? null;
    if (devEui !== null) {
      const claimed = devEuis.get(devEui);
      if (claimed !== undefined) {
        problems.add(['devices', index, 'lorawan_dev_eui'], `DevEUI ${devEui} is given to devices ${claimed.id} (devices.${claimed.index}) and ${id}`);
        continue;
      }
      const holder = devices.devEuiHolder(devEui);
      if (holder !== undefined && holder !== id && (devEuiAfter.get(holder) ?? devEui) === devEui) {
        problems.add(['devices', index, 'lorawan_dev_eui'], `DevEUI ${devEui} belongs to device ${holder} already`);
        continue;
      }
    }
    bundleDevices.set(id, parsed.data);
    if (jt808_phone !== undefined) phones.set(jt808_phone, { id, index });
    if (lorawan_dev_eui !== undefined) devEuis.set(lorawan_dev_eui, { id, index });
    const terminal = phone === null ? undefined : { phone, model, authHash };
    const lorawan = devEui === null ? undefined : { devEui, sensor };
    if (!existing) {
      newDevices.push({ id, class: deviceClass, hash: secret_hash, terminal, lorawan });
    } else if (terminal && (phone !== existing.jt808_phone || model !== existing.jt808_model || (authHash ?? null) !== null)) {
      changedDevices.push({ index, id, terminal, stamp: existing.updated_at });
      phoneAfter.set(id, phone);
      counts.devices!.updated++;
    } else if (lorawan && (devEui !== existing.lorawan_dev_eui || sensor !== existing.lorawan_sensor)) {
      changedDevices.push({ index, id, lorawan, stamp: existing.updated_at });
      devEuiAfter.set(id, devEui);
      counts.devices!.updated++;
    } else {
      counts.devices!.unchanged++;
    }
  }

  // What the bundle's checked items look like to the checks of later ones, over the database.
  const planned = new Map<string, Map<string, Planned>>(BUNDLE_ORDER.map((name) => [ENTITIES[name].table, new Map()]));
  const lookup: RowLookup = {
    exists: (table, id) => (table === 'devices' ? bundleDevices.has(id as string) : planned.get(table)?.has(id as string)) || entities.stored.exists(table, id),
    get: (table, id) => {
      const row = planned.get(table)?.get(id);
      return row ? { id, ...row.values } : entities.stored.get(table, id);
    },
  };

  for (const name of BUNDLE_ORDER) {
    const def = ENTITIES[name] as EntityDefinition;
    const schema = def.fields.extend({ id: entityId });
    const rows = planned.get(def.table)!;
    const seen = new Set<string>();
    const unique = db.uniqueColumns(def.table).map((column) => ({ column, claimed: new Map<unknown, string>() }));
    for (const [index, item] of bundle[name].entries()) {
      const parsed = schema.safeParse(item);
      if (!parsed.success) {
        for (const issue of parsed.error.issues) problems.add([name, index, ...issuePath(issue)], issue.message);
        continue;
      }
      const { id, ...fields } = parsed.data as { id: string } & Record<string, unknown>;
      if (seen.has(id)) {
        problems.add([name, index, 'id'], `${id} appears twice in ${name}`);
        continue;
      }
      seen.add(id);
      const relations = Object.fromEntries(Object.keys(def.relations).map((field) => [field, [...new Set((fields[field] as string[] | undefined) ?? [])].sort()]));
      let values: Record<string, unknown>;
      try {
        values = entities.columns(def, fields, bundle.crs);
        entities.checkRow(def, { id, ...values, ...relations }, { deferSelfReferences: true }, lookup);
        for (const { column, claimed } of unique) {
          const value = values[column];
          if (value === null || value === undefined) continue;
          // Held by another item of the bundle, or by a stored row that the bundle does not move
          // off it before this item: the writes, in this same order, would fail.
          const holder = claimed.get(value) ?? (db.statement(`SELECT id FROM ${def.table} WHERE ${column} = ?`).get(value) as { id: string } | undefined)?.id;
          const moved = holder !== undefined && rows.has(holder) && rows.get(holder)!.values[column] !== value;
          if (holder !== undefined && holder !== id && !moved) throw new RegistryError('conflict', `${column} is already used by another ${def.singular}`);
        }
      } catch (error) {
        if (!(error instanceof RegistryError || error instanceof GeometryError)) throw error;
        problems.add([name, index, ...(error instanceof GeometryError ? error.path : [])], error.message);
        continue;
      }
      for (const { column, claimed } of unique) if (values[column] !== null && values[column] !== undefined) claimed.set(values[column], id);
      const current = entities.stored.get(def.table, id);
      let outcome: Outcome = 'created';
      if (current) {
        const stored = entities.storedRelations(def, id);
        const differs =
          Object.keys(values).some((column) => (values[column] ?? null) !== (current[column] ?? null)) ||
          Object.keys(relations).some((field) => JSON.stringify(relations[field]) !== JSON.stringify(stored[field]));
        outcome = differs ? 'updated' : 'unchanged';
      }
      rows.set(id, { index, id, values, relations, outcome, stamp: (current?.updated_at as string | undefined) ?? null });
    }
    // Rows may name rows of their own collection that come later (mutual neighbours).
    for (const [field, link] of Object.entries(def.relations)) {
      if (link.references !== def.table) continue;
      for (const row of rows.values()) {
        for (const other of row.relations[field]!) if (!lookup.exists(def.table, other)) problems.add([name, row.index, field], `${field}: no ${def.singular} ${other}`);
      }
    }
    counts[name] = { created: 0, updated: 0, unchanged: 0 };
    for (const row of rows.values()) counts[name]![row.outcome]++;
  }
  counts.devices!.created = newDevices.length;
  return { counts, newDevices, changedDevices, planned };
}

export interface ImportOptions {
  dryRun?: boolean;
}

export async function importBundle(deps: ImportDeps, input: unknown, options: ImportOptions = {}): Promise<ImportReport> {
  const { limits } = deps.entities;
  const items = countItems(input);
  if (items > limits.importMaxItems) {
    throw new BundleTooLargeError(`the bundle holds ${items} items, more than the ${limits.importMaxItems} one import takes (registry.importMaxItems); nothing was checked or written; ${SPLIT_ADVICE}`);
  }
  const problems = new Problems(limits.importMaxProblems);
  const top = bundleSchema.safeParse(input);
  if (!top.success) {
    for (const issue of top.error.issues) problems.add(issuePath(issue), issue.message);
    throw problems.error();
  }
  const bundle = top.data as z.infer<typeof bundleSchema> & Record<EntityName, unknown[]>;
  const { counts, newDevices, changedDevices, planned } = plan(deps, bundle, problems);
  if (problems.count > 0) throw problems.error();
  const report: ImportReport = { dryRun: options.dryRun === true, counts, deviceSecrets: [] };
  if (options.dryRun) return report;

  // Hashing is slow (about 40 ms a device) and asynchronous: done only for a bundle that will be
  // written, and before the transaction, which cannot wait.
  const secrets: { id: string; secret: string }[] = [];
  const hashes = new Map<string, string>();
  for (const device of newDevices) {
    if (device.hash !== undefined) continue;
    const secret = generateSecret();
    secrets.push({ id: device.id, secret });
    hashes.set(device.id, await hashSecret(secret));
  }

  const { db, devices, entities } = deps;
  const now = entities.now();
  try {
    db.transaction(() => {
      // Rows may name rows of their own collection that come later (mutual neighbours): foreign
      // keys are checked at commit.
      db.deferForeignKeys();
      // A statement PostgreSQL refuses ends the transaction for every later one (SQLite goes on):
      // there, the import stops at the first problem found while writing, and reports that one.
      const stopOnPostgres = () => {
        if (db.dialect === 'postgres' && problems.count > 0) throw problems.error();
      };
      // Changed devices first, in bundle order (one moved off a phone number frees it for a later
      // one, as the checks assumed), then new ones in id order.
      for (const device of changedDevices) {
        try {
          const written = device.terminal ? devices.updateTerminalChecked(device.id, device.terminal, device.stamp) : devices.updateLorawanChecked(device.id, device.lorawan!, device.stamp);
          if (!written) problems.add(['devices', device.index], `device ${device.id} was changed or removed while the bundle was checked; send the bundle again`);
        } catch (error) {
          if (!isViolation(error, 'unique')) throw error;
          const taken = device.terminal ? `terminal phone number ${device.terminal.phone}` : `DevEUI ${device.lorawan!.devEui}`;
          problems.add(['devices', device.index, device.terminal ? 'jt808_phone' : 'lorawan_dev_eui'], `${taken} was given to another device while the bundle was checked`);
          stopOnPostgres();
        }
      }
      for (const device of [...newDevices].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))) {
        try {
          devices.insertHashed(device.id, device.class, device.hash ?? hashes.get(device.id)!, device.terminal, device.lorawan);
        } catch (error) {
          if (isViolation(error, 'primary_key')) problems.add(['devices'], `device ${device.id} was added by someone else while the bundle was checked`);
          else if (isViolation(error, 'unique')) {
            const taken = device.terminal ? `terminal phone number ${device.terminal.phone}` : `DevEUI ${device.lorawan?.devEui}`;
            problems.add(['devices'], `${taken} of device ${device.id} was given to another device while the bundle was checked`);
          }
          else throw error;
          stopOnPostgres();
        }
      }
      for (const name of BUNDLE_ORDER) {
        const def = ENTITIES[name] as EntityDefinition;
        // Changed rows first, in bundle order (a row moved off a unique value frees it for a
        // later one, as the checks assumed), then new rows in id order: appended to the table's
        // b-tree instead of inserted all over it, which halves the time the lock is held.
        const rows = [...planned.get(def.table)!.values()];
        const created = rows.filter((row) => row.outcome === 'created').sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
        for (const row of [...rows.filter((row) => row.outcome !== 'created'), ...created]) {
          // The registry may have changed since the checks (the API, the CLI, another import):
          // rows compared then must be as they were, and checks across rows are made again.
          try {
            let current: boolean;
            if (row.outcome === 'created') {
              entities.insertChecked(def, row.id, row.values, row.relations, now);
              current = true;
            } else if (row.outcome === 'updated') {
              current = entities.updateChecked(def, row.id, row.values, row.relations, now, row.stamp!);
            } else {
              current = entities.stamp(def, row.id) === row.stamp;
            }
            if (!current) throw new RegistryError('conflict', `${def.singular} ${row.id} was changed or removed while the bundle was checked; send the bundle again`);
            if (row.outcome !== 'unchanged') def.check?.({ id: row.id, ...row.values }, (table, id) => entities.stored.get(table, id));
          } catch (error) {
            if (!(error instanceof RegistryError)) throw error;
            problems.add([name, row.index], error.message);
            stopOnPostgres();
          }
        }
      }
      // Throwing inside the transaction rolls all of it back.
      if (problems.count > 0) throw problems.error();
    });
  } catch (error) {
    if (isViolation(error, 'foreign_key')) {
      throw new RegistryError('conflict', 'a row the bundle refers to was removed while the bundle was checked; nothing was written; send the bundle again');
    }
    throw error;
  }
  report.deviceSecrets = secrets;
  if (newDevices.length > 0 || changedDevices.length > 0) devices.announceChange();
  return report;
}

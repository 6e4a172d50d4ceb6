// `npm run cli -- <command>`: provisioning and access control in the registry database. A running
// service notices changes within a second; secrets and tokens are printed once and never stored.
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import { ConfigError, loadConfig } from './config/load.ts';
import type { Config } from './config/schema.ts';
import { SENSOR_MODELS } from './lorawan/decoders/index.ts';
import { DEVICE_CLASSES, isDeviceClass, topics } from './contract/topics.ts';
import { BundleError, BundleTooLargeError, SPLIT_ADVICE, importBundle } from './registry/bundle.ts';
import { CopyRefused, compareRegistries, copyRegistry, tableCounts, type Comparison } from './registry/copy.ts';
import { DatabaseUnreachableError, MigrationError, RegistryDb, type RegistryDbOptions } from './registry/db.ts';
import { MIGRATIONS } from './registry/migrations.ts';
import { DeviceStore, RegistryError, type StoredDevice } from './registry/devices.ts';
import { EntityStore } from './registry/entity-store.ts';
import { ROLES, TokenStore, type Role } from './registry/tokens.ts';

const HELP = `Usage: npm run cli -- <command> [options]

Devices (MQTT credentials):
  device add --class <bins|trucks|scales> --id <deviceId>   provision a device; prints its secret once
  device rotate --id <deviceId>                             new secret; the old one stops working
  device disable --id <deviceId>                            refuse its connects (and drop live ones)
  device enable --id <deviceId>
  device remove --id <deviceId>
  device list                                               devices, classes, states and terminal phone
                                                            numbers or DevEUIs (no secrets)
  service add --name <waste-name>                           MQTT account for tools (reads waste/#)

JT/T 808 terminals (trucks devices that report to the JT/T 808 gateway over TCP):
  device add --class trucks --id <deviceId> --jt808-phone <digits> [--jt808-model <model>]
             [--jt808-auth-code <code>]                     a truck terminal: its SIM number (1-20 digits,
                                                            leading zeros dropped); without a code it is
                                                            given one when it registers
  device jt808 --id <deviceId> [--phone <digits>] [--model <model>] [--auth-code <code>]
                                                            set a device's terminal number, model or code
                                                            (its live connection is closed)
  device jt808 --id <deviceId> --clear                      the device is a terminal no more
  device jt808-reset --id <deviceId>                        forget the terminal's code, so that it may
                                                            register again (after a factory reset)
  A code on the command line is seen by ps and kept in the shell's history.

LoRaWAN bin sensors (bins devices whose uplinks reach a network server, docs/lorawan.md):
  device add --class bins --id <deviceId> --lorawan-dev-eui <16 hex digits> [--lorawan-sensor <model>]
                                                            a sensor by its DevEUI; the model picks the
                                                            payload decoder (${SENSOR_MODELS.join(', ')});
                                                            none: the network server's codec sends the
                                                            contract's fields
  device lorawan --id <deviceId> [--dev-eui <16 hex digits>] [--sensor <model>]
  device lorawan --id <deviceId> --clear                    the device is a LoRaWAN sensor no more

Registry:
  import --file <bundle.json> [--dry-run]                   import a registry bundle (docs/registry-bundle.md),
                                                            all or nothing; prints new device secrets once;
                                                            at most registry.importMaxBytes and
                                                            registry.importMaxItems per bundle

Database (the registry: a SQLite file, or PostgreSQL; see "db --help"):
  db status [--database LOCATION]                           backend, schema version, rows per table
  db migrate [--database LOCATION]                          apply the migrations this program has
  db copy --from LOCATION --to LOCATION [--force]           copy the whole registry, e.g. from SQLite to
                                                            PostgreSQL, and check that both hold the same

API tokens:
  token create --role <${ROLES.join('|')}> --name <text> [--jurisdiction <id> ...]
                                                            prints the token once; enforcement tokens
                                                            need at least one jurisdiction
  token list
  token revoke --id <tokenId>

Options:
  --config FILE   configuration file (also WASTE_CONFIG); the database is database.url
                  (WASTE_DATABASE_URL) if set, else the SQLite file registry.file
  --json          machine-readable output
  -h, --help      show this help

Examples:
  npm run cli -- device add --class trucks --id TRUCK-001
  npm run cli -- device add --class trucks --id TRUCK-002 --jt808-phone 13800138000 --jt808-model ZT-80
  npm run cli -- device add --class bins --id BIN-0001 --lorawan-dev-eui 24E124136B502217 --lorawan-sensor milesight-em310-udl
  npm run cli -- token create --role admin --name "command centre"
`;

/** A device's terminal fields as shown: never the code or its hash. */
const jt808Fields = (device: StoredDevice) => ({ jt808_phone: device.jt808_phone, jt808_model: device.jt808_model, jt808_registered: device.jt808_registered });

/** A device's LoRaWAN fields as shown. */
const lorawanFields = (device: StoredDevice) => ({ lorawan_dev_eui: device.lorawan_dev_eui, lorawan_sensor: device.lorawan_sensor });
const lorawanLine = (device: StoredDevice) => `LoRaWAN sensor ${device.lorawan_dev_eui}, ${device.lorawan_sensor ? `model ${device.lorawan_sensor}` : 'no sensor model (the network server decodes)'}`;

const terminalState = (device: StoredDevice) => (device.jt808_registered ? 'has an authentication code' : 'not registered yet (it is given a code when it registers)');

function fail(message: string): never {
  process.stderr.write(`error: ${message}\n`);
  process.exit(2);
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      class: { type: 'string' },
      id: { type: 'string' },
      name: { type: 'string' },
      role: { type: 'string' },
      jurisdiction: { type: 'string', multiple: true },
      file: { type: 'string' },
      'dry-run': { type: 'boolean' },
      'jt808-phone': { type: 'string' },
      'jt808-model': { type: 'string' },
      'jt808-auth-code': { type: 'string' },
      'lorawan-dev-eui': { type: 'string' },
      'lorawan-sensor': { type: 'string' },
      'dev-eui': { type: 'string' },
      sensor: { type: 'string' },
      phone: { type: 'string' },
      model: { type: 'string' },
      'auth-code': { type: 'string' },
      clear: { type: 'boolean' },
      database: { type: 'string' },
      from: { type: 'string' },
      to: { type: 'string' },
      force: { type: 'boolean' },
      config: { type: 'string' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const [group, action] = positionals;
  if (group === 'db') return dbCommand(action, values);
  if (values.help || !group) {
    process.stdout.write(HELP);
    return;
  }
  const config = loadConfig({ file: values.config });
  const { location, options } = configuredDatabase(config);
  const db = new RegistryDb(location, { applicationName: `waste-telemetry cli ${group}`, ...options });
  db.open();
  const devices = new DeviceStore(db);
  const tokens = new TokenStore(db);
  const out = (human: string, json: object): void => {
    process.stdout.write(values.json ? JSON.stringify(json) + '\n' : human + '\n');
  };
  const id = (): string => values.id ?? fail('--id is required');

  try {
    if (group === 'device' && action === 'add') {
      const deviceClass = values.class ?? fail(`--class is required (${DEVICE_CLASSES.join(', ')})`);
      if (!isDeviceClass(deviceClass)) fail(`--class must be one of ${DEVICE_CLASSES.join(', ')}`);
      const phone = values['jt808-phone'];
      const model = values['jt808-model'];
      const authCode = values['jt808-auth-code'];
      if (phone === undefined && (model !== undefined || authCode !== undefined)) fail('--jt808-model and --jt808-auth-code need --jt808-phone');
      const devEui = values['lorawan-dev-eui'];
      const sensor = values['lorawan-sensor'];
      if (devEui === undefined && sensor !== undefined) fail('--lorawan-sensor needs --lorawan-dev-eui');
      const terminalProvisioning = phone === undefined ? undefined : { phone, model, ...(authCode === undefined ? {} : { authCode }) };
      const secret = await devices.add(id(), deviceClass, terminalProvisioning, devEui === undefined ? undefined : { devEui, sensor });
      const terminal = devices.device(id())!;
      out(
        `device ${id()} (${deviceClass}) added to ${db.where}\n` +
          `  username: ${id()}\n  secret:   ${secret}   (shown once; it is stored only as a hash)\n` +
          `  publish:  ${topics.data(deviceClass, id())}\n  status:   ${topics.status(deviceClass, id())} (retained, set as the will)` +
          (terminal.jt808_phone === null ? '' : `\n  JT/T 808: terminal ${terminal.jt808_phone}${terminal.jt808_model ? `, model ${terminal.jt808_model}` : ''}, ${terminalState(terminal)}`) +
          (terminal.lorawan_dev_eui === null ? '' : `\n  LoRaWAN:  ${lorawanLine(terminal)}`),
        { id: id(), class: deviceClass, secret, topic: topics.data(deviceClass, id()), ...jt808Fields(terminal), ...lorawanFields(terminal) },
      );
    } else if (group === 'device' && action === 'jt808') {
      const { phone, model, 'auth-code': authCode, clear } = values;
      if (clear && (phone !== undefined || model !== undefined || authCode !== undefined)) fail('--clear takes no --phone, --model or --auth-code');
      if (!clear && phone === undefined && model === undefined && authCode === undefined) fail('give --phone, --model or --auth-code, or --clear');
      await devices.update(id(), clear ? { jt808Phone: null } : { jt808Phone: phone, jt808Model: model, jt808AuthCode: authCode });
      const changed = devices.device(id())!;
      out(
        changed.jt808_phone === null
          ? `device ${id()} is no JT/T 808 terminal`
          : `device ${id()}: JT/T 808 terminal ${changed.jt808_phone}${changed.jt808_model ? `, model ${changed.jt808_model}` : ''}, ${terminalState(changed)}`,
        { id: id(), ...jt808Fields(changed) },
      );
    } else if (group === 'device' && action === 'lorawan') {
      const { 'dev-eui': devEui, sensor, clear } = values;
      if (clear && (devEui !== undefined || sensor !== undefined)) fail('--clear takes no --dev-eui or --sensor');
      if (!clear && devEui === undefined && sensor === undefined) fail('give --dev-eui or --sensor, or --clear');
      await devices.update(id(), clear ? { lorawanDevEui: null } : { lorawanDevEui: devEui, lorawanSensor: sensor });
      const changed = devices.device(id())!;
      out(changed.lorawan_dev_eui === null ? `device ${id()} is no LoRaWAN sensor` : `device ${id()}: ${lorawanLine(changed)}`, { id: id(), ...lorawanFields(changed) });
    } else if (group === 'device' && action === 'jt808-reset') {
      devices.resetTerminal(id());
      out(`device ${id()}: authentication code removed; the terminal may register again`, { id: id(), ...jt808Fields(devices.device(id())!) });
    } else if (group === 'device' && action === 'rotate') {
      const secret = await devices.rotate(id());
      out(`device ${id()}: new secret ${secret} (shown once)`, { id: id(), secret });
    } else if (group === 'device' && (action === 'disable' || action === 'enable')) {
      devices.setEnabled(id(), action === 'enable');
      out(`device ${id()} ${action}d`, { id: id(), enabled: action === 'enable' });
    } else if (group === 'device' && action === 'remove') {
      devices.remove(id());
      out(`device ${id()} removed`, { id: id(), removed: true });
    } else if (group === 'device' && action === 'list') {
      const list = devices.list({ limit: 1_000_000 }).items.map((d) => ({ id: d.id, class: d.class, enabled: d.enabled, created_at: d.created_at, ...jt808Fields(d), ...lorawanFields(d) }));
      // The terminal's phone number (or the sensor's DevEUI) last, '-' for none: scripts that read the first four columns read them still.
      out(list.map((d) => `${d.id}\t${d.class}\t${d.enabled ? 'enabled' : 'disabled'}\t${d.created_at}\t${d.jt808_phone ?? d.lorawan_dev_eui ?? '-'}`).join('\n') || '(no devices)', list);
    } else if (group === 'service' && action === 'add') {
      const name = values.name ?? fail('--name is required (it must start with "waste-")');
      const secret = await devices.addService(name);
      out(`service account ${name} added\n  username: ${name}\n  secret:   ${secret}   (shown once)`, { name, secret });
    } else if (group === 'import') {
      const file = values.file ?? fail('--file is required');
      const { importMaxBytes } = config.registry;
      let bundle: unknown;
      try {
        // The same limits as the API's: the import's write holds the registry's write lock, which
        // a running service waits for.
        const size = fs.statSync(file).size;
        if (size > importMaxBytes) fail(`${file} is ${size} bytes, more than the ${importMaxBytes} one import takes (registry.importMaxBytes); nothing was written; ${SPLIT_ADVICE}`);
        bundle = JSON.parse(fs.readFileSync(file, 'utf8'));
      } catch (error) {
        fail(`cannot read ${file}: ${(error as Error).message}`);
      }
      const report = await importBundle({ db, devices, entities: new EntityStore(db, undefined, config.registry) }, bundle, { dryRun: values['dry-run'] === true });
      const lines = Object.entries(report.counts).map(([name, c]) => `  ${name.padEnd(14)} created ${c.created}, updated ${c.updated}, unchanged ${c.unchanged}`);
      const secrets = report.deviceSecrets.map((d) => `  ${d.id}\t${d.secret}`);
      out(
        `${report.dryRun ? 'dry run: nothing written; the bundle would import as' : `imported ${file}`}:\n${lines.join('\n')}` +
          (secrets.length ? `\nsecrets of the new devices (shown once):\n${secrets.join('\n')}` : ''),
        report,
      );
    } else if (group === 'token' && action === 'create') {
      const role = values.role ?? fail(`--role is required (${ROLES.join(', ')})`);
      const name = values.name ?? fail('--name is required (who or what the token is for)');
      const created = tokens.create({ name, role: role as Role, jurisdictions: values.jurisdiction ?? [] });
      out(`token ${created.id} (${role}) for ${name}\n  token: ${created.token}   (shown once; send it as "Authorization: Bearer <token>")`, created);
    } else if (group === 'token' && action === 'list') {
      const list = tokens.list();
      out(list.map((t) => `${t.id}\t${t.role}\t${t.name}\t${t.jurisdictions.join(',') || '-'}\t${t.revoked_at ? `revoked ${t.revoked_at}` : 'active'}`).join('\n') || '(no tokens)', list);
    } else if (group === 'token' && action === 'revoke') {
      tokens.revoke(id());
      out(`token ${id()} revoked`, { id: id(), revoked: true });
    } else {
      fail(`unknown command "${positionals.join(' ')}"; see --help`);
    }
  } finally {
    db.close();
  }
}

const DB_HELP = `Usage: npm run cli -- db <status|migrate|copy> [options]

The registry's database: a SQLite file (registry.file, one process) or PostgreSQL (database.url,
any number of processes; docs/deployment.md).

  db status [--database LOCATION]                           backend, where, schema version and rows per table
  db migrate [--database LOCATION]                          bring the database to this program's schema
                                                            version; prints the version before and after and
                                                            the migrations applied (every command applies
                                                            them when it opens the database; this one says so)
  db copy --from LOCATION --to LOCATION [--force]           copy every table of the registry from one database
                                                            to another, then compare them (see "db copy --help")

LOCATION is a SQLite file (sqlite:FILE, or just FILE) or a URL postgres://USER:PASSWORD@HOST:PORT/DATABASE.
Without --database: database.url if set, else registry.file. Passwords are never printed.

Options:
  --config FILE   configuration file (also WASTE_CONFIG)
  --json          machine-readable output
  -h, --help      show this help

Examples:
  npm run cli -- db status
  npm run cli -- db migrate --database postgres://waste:secret@db.internal:5432/waste
  npm run cli -- db copy --from sqlite:data/registry.db --to postgres://waste:secret@db.internal:5432/waste
`;

const DB_COPY_HELP = `Usage: npm run cli -- db copy --from LOCATION --to LOCATION [--force] [--json]

Copies every table of the registry (devices, fleet, permits, jurisdictions, tokens, alerts and their
history, webhooks and their outbox, sorting tonnage, job runs, rate limits, the registry revision), to
move an installation from SQLite to PostgreSQL (or back) without losing anything:
  - both databases are opened and brought to this program's schema version first (the source too);
    the copy refuses when their versions still differ;
  - it refuses a target that holds rows already, unless --force: then the target's tables are emptied
    first, in the same transaction as the copy;
  - the copy is one transaction on the target (foreign keys checked at its commit) from one read
    transaction on the source: it is all written, or nothing is; rows are read 2,000 at a time;
  - then both sides are compared table by table: row counts and a digest of every row's values.
    A table of counts with OK or MISMATCH is printed; the command exits 1 on any mismatch.
Progress (rows per table) goes to stderr. Stop the service while it copies: changes the service makes
after the copy's read began are not copied.

  --from LOCATION   the database to copy: sqlite:FILE (or FILE), or postgres://USER:PASSWORD@HOST:PORT/DATABASE
  --to LOCATION     the database to copy into (create an empty one first: createdb -O USER NAME)
  --force           delete the rows the target holds before copying
  --json            the copy's report and the comparison as JSON

Example:
  npm run cli -- db copy --from sqlite:data/registry.db --to postgres://waste:secret@db.internal:5432/waste
`;

const DB_STATUS_HELP = `Usage: npm run cli -- db status [--database LOCATION] [--json]

Prints the backend (sqlite or postgres), where the data is (no password), the schema version and the
rows of every registry table. Opening the database applies pending migrations, as every command does.
Without --database: database.url if set, else registry.file.
`;

const DB_MIGRATE_HELP = `Usage: npm run cli -- db migrate [--database LOCATION] [--json]

Brings the database to this program's schema version (services/registry/migrations.ts), each migration
in its own transaction (on PostgreSQL under a lock, so processes starting at once apply each once), and
prints the version before and after and the migrations it applied.
Without --database: database.url if set, else registry.file.
`;

/** The database the configuration names (database.url, else registry.file), and its PostgreSQL settings. */
function configuredDatabase(config: Config): { location: string; options: RegistryDbOptions } {
  const { url, statementTimeoutMs, connectTimeoutMs } = config.database;
  return { location: url || config.registry.file, options: { statementTimeoutMs, connectTimeoutMs } };
}

/** A copy's statements on PostgreSQL: the commit checks every foreign key of a city's registry at once. */
const COPY_STATEMENT_TIMEOUT_MS = 30 * 60_000;

type DbValues = { database?: string; from?: string; to?: string; force?: boolean; config?: string; json?: boolean; help?: boolean };

/** `db status`, `db migrate`, `db copy`: arguments in, the registry/copy.ts report out. */
async function dbCommand(action: string | undefined, values: DbValues): Promise<void> {
  if (values.help || !action) {
    const help: Record<string, string> = { copy: DB_COPY_HELP, status: DB_STATUS_HELP, migrate: DB_MIGRATE_HELP };
    process.stdout.write((action && help[action]) || DB_HELP);
    return;
  }
  const out = (human: string, json: object): void => {
    process.stdout.write(values.json ? JSON.stringify(json) + '\n' : human + '\n');
  };
  const opened: RegistryDb[] = [];
  const open = (location: string, options: RegistryDbOptions = {}): RegistryDb => {
    const db = new RegistryDb(location, { applicationName: `waste-telemetry cli db ${action}`, ...options });
    db.open();
    opened.push(db);
    return db;
  };
  const latest = Math.max(...MIGRATIONS.map((m) => m.version));
  try {
    if (action === 'status' || action === 'migrate') {
      const configured = values.database ? { location: values.database, options: {} } : configuredDatabase(loadConfig({ file: values.config }));
      const db = open(configured.location, configured.options);
      const version = db.schemaVersion();
      const applied = db.appliedAtOpen;
      const before = applied.length > 0 ? Number((db.statement('SELECT MAX(version) AS v FROM schema_migrations WHERE version < ?').get(applied[0]!.version) as { v: number | null }).v ?? 0) : version;
      const appliedLines = applied.map((m) => `  applied ${m.version}: ${m.name}`);
      if (action === 'migrate') {
        out(
          applied.length === 0
            ? `${db.dialect} ${db.where}: schema version ${version}, up to date; nothing to apply`
            : `${db.dialect} ${db.where}: schema version ${before} → ${version}\n${appliedLines.join('\n')}`,
          { dialect: db.dialect, where: db.where, before, after: version, latest, applied },
        );
      } else {
        const counts = tableCounts(db);
        out(
          `backend:        ${db.dialect}\nwhere:          ${db.where}\nschema version: ${version}${version === latest ? ' (the latest this program knows)' : ` (this program knows ${latest})`}` +
            (applied.length > 0 ? `\n  (opening it applied migrations ${applied.map((m) => m.version).join(', ')}, from version ${before})` : '') +
            `\nrows:\n${counts.map((c) => `  ${c.table.padEnd(26)}${String(c.rows).padStart(10)}`).join('\n')}`,
          { dialect: db.dialect, where: db.where, schemaVersion: version, latest, applied, tables: counts },
        );
      }
    } else if (action === 'copy') {
      const from = values.from ?? fail('--from is required: the database to copy (sqlite:FILE or postgres://…); see db copy --help');
      const to = values.to ?? fail('--to is required: the database to copy into (postgres://… or sqlite:FILE); see db copy --help');
      const source = open(from, { statementTimeoutMs: COPY_STATEMENT_TIMEOUT_MS });
      if (source.appliedAtOpen.length > 0) process.stderr.write(`source ${source.where}: applied migrations ${source.appliedAtOpen.map((m) => m.version).join(', ')}\n`);
      const target = open(to, { statementTimeoutMs: COPY_STATEMENT_TIMEOUT_MS });
      if (target.appliedAtOpen.length > 0) process.stderr.write(`target ${target.where}: applied migrations ${target.appliedAtOpen.map((m) => m.version).join(', ')}\n`);
      process.stderr.write(`copying ${source.dialect} ${source.where} → ${target.dialect} ${target.where}\n`);
      const progress = copyProgress();
      let report;
      try {
        report = copyRegistry(source, target, { force: values.force === true, progress: progress.update });
      } catch (error) {
        progress.end();
        if (error instanceof CopyRefused) throw error;
        fail(`the copy failed; nothing was written to ${target.where} (its transaction was rolled back): ${(error as Error).message}`);
      }
      progress.end();
      process.stderr.write(`comparing ${source.where} and ${target.where}\n`);
      const comparison = compareRegistries(source, target);
      const seconds = report.ms / 1000;
      out(
        `copied ${report.rows} rows in ${seconds.toFixed(1)} s (${Math.round(report.rows / Math.max(seconds, 0.001))} rows/s), schema version ${report.schemaVersion}` +
          (report.emptied ? `; the target's earlier rows were deleted (--force)` : '') +
          `\n${comparisonTable(comparison)}`,
        { copy: report, comparison },
      );
      if (!comparison.equal) process.exitCode = 1;
    } else {
      fail(`unknown command "db ${action}"; see db --help`);
    }
  } catch (error) {
    if (error instanceof CopyRefused || error instanceof DatabaseUnreachableError || error instanceof MigrationError || error instanceof ConfigError) fail(error.message);
    throw error;
  } finally {
    for (const db of opened) db.close();
  }
}

/** Rows per table on stderr as the copy goes: one line a table (a live counter on a terminal). */
function copyProgress(): { update: (table: string, rows: number) => void; end: () => void } {
  const live = process.stderr.isTTY === true;
  let table = '';
  let rows = 0;
  let told = 0;
  const finish = () => {
    if (table) process.stderr.write(`${live ? '\r\x1b[K' : ''}  ${table}: ${rows} rows\n`);
    table = '';
  };
  return {
    update: (name, count) => {
      if (name !== table) {
        finish();
        table = name;
        told = 0;
      }
      rows = count;
      if (live) process.stderr.write(`\r\x1b[K  ${table}: ${rows} rows…`);
      else if (rows - told >= 50_000) {
        process.stderr.write(`  ${table}: ${rows} rows so far\n`);
        told = rows;
      }
    },
    end: finish,
  };
}

/** The comparison as a table: rows on each side and OK or MISMATCH, then a verdict. */
function comparisonTable(comparison: Comparison): string {
  const lines = [`${'table'.padEnd(26)}${'source'.padStart(10)}${'target'.padStart(10)}  check`];
  for (const t of comparison.tables) {
    const check = t.equal ? 'OK' : t.a.rows === t.b.rows ? 'MISMATCH (same count, different rows)' : 'MISMATCH';
    lines.push(`${t.table.padEnd(26)}${String(t.a.rows).padStart(10)}${String(t.b.rows).padStart(10)}  ${check}`);
  }
  const { a, b } = comparison.schemaVersion;
  if (a !== b) lines.push(`schema version ${a} on the source, ${b} on the target: MISMATCH`);
  const differ = comparison.tables.filter((t) => !t.equal).map((t) => t.table);
  lines.push(comparison.equal ? `every table equal on both sides (${comparison.tables.length} tables)` : `MISMATCH: ${differ.length ? differ.join(', ') : 'schema version'} differ`);
  return lines.join('\n');
}

main().catch((error: unknown) => {
  if (error instanceof BundleError) fail(`${error.message}\n${error.problems.map((p) => `  ${p.path.join('.')}: ${p.message}`).join('\n')}`);
  if (error instanceof BundleTooLargeError) fail(error.message);
  if (error instanceof RegistryError || error instanceof ConfigError || error instanceof MigrationError) fail(error.message);
  throw error;
});

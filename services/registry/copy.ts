// Copies a whole registry from one database to another (`npm run cli -- db copy`): SQLite to
// PostgreSQL when an installation grows to several processes, or back. Both sides are RegistryDb,
// opened (so migrated) by the caller; the copy refuses unless both are at the same schema version
// and the target holds no rows (or `force` empties it first). All of it is one transaction on the
// target: a copy that fails half-way leaves the target as it was. Rows are read in pages ordered by
// primary key (keyset pagination) inside one read transaction on the source, so the copy is of one
// moment of the source and a city-scale registry never has to fit in memory; they are written with
// bound parameters, never pasted into the SQL.
// compareRegistries() then tells whether both hold the same rows: per table, the row count and a
// digest of every row's values. The digest is the sum (mod 2^256) of each row's sha256, so it does
// not depend on the order rows are read in: a PostgreSQL database in a locale other than C sorts
// text keys otherwise than SQLite, which compares bytes.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { RegistryDb } from './db.ts';

/**
 * Every table the migrations (migrations.ts) create, parents before the tables referring to them;
 * schema_migrations is not among them (each side has its own, written by its open()).
 * A migration that adds a table adds it here: the copy refuses a database with a table it does not know.
 */
export const REGISTRY_TABLES = [
  'companies',
  'districts',
  'communities',
  'jurisdictions',
  'jurisdiction_neighbours',
  'sites',
  'devices',
  'service_accounts',
  'trucks',
  'bins',
  'weighbridges',
  'permits',
  'permit_trucks',
  'tokens',
  'token_jurisdictions',
  'alerts',
  'alert_jurisdictions',
  'alert_history',
  'webhooks',
  'webhook_outbox',
  'spillage',
  'sorting_days',
  'sorting_tonnage',
  'sorting_owed',
  'job_runs',
  'api_rate_limits',
  'ingest_workers',
  'device_partitions',
  'registry_revision',
] as const;

export type RegistryTable = (typeof REGISTRY_TABLES)[number];

/** Rows read per SELECT, for the copy and for the comparison. */
export const PAGE_ROWS = 2_000;

/** Rows per INSERT: several rows a statement, within SQLite's 32,766 bound parameters (and PostgreSQL's 65,535). */
const MAX_INSERT_ROWS = 500;
const MAX_INSERT_PARAMS = 30_000;

/** The copy will not run: nothing was written. */
export class CopyRefused extends Error {}

export interface CopyOptions {
  /** Empty the target's tables first (in the copy's transaction) instead of refusing a target that holds rows. */
  force?: boolean;
  /** Told the rows copied so far of a table, after each page (and once for an empty table). */
  progress?: (table: string, rows: number) => void;
  /** Rows per SELECT on the source; PAGE_ROWS unless given. */
  pageRows?: number;
}

export interface CopyReport {
  from: { dialect: string; where: string };
  to: { dialect: string; where: string };
  schemaVersion: number;
  /** Whether the target held rows that `force` deleted. */
  emptied: boolean;
  tables: { table: string; rows: number }[];
  rows: number;
  ms: number;
}

export interface TableComparison {
  table: string;
  a: { rows: number; digest: string };
  b: { rows: number; digest: string };
  equal: boolean;
}

export interface Comparison {
  equal: boolean;
  schemaVersion: { a: number; b: number };
  tables: TableComparison[];
}

/** A column or table name in double quotes; names come from the database's catalogue, checked all the same. */
function quote(name: string): string {
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new Error(`unexpected name ${JSON.stringify(name)} in the registry schema`);
  return `"${name}"`;
}

/** The tables of the database but schema_migrations. */
function tablesOf(db: RegistryDb): string[] {
  const sql =
    db.dialect === 'postgres'
      ? "SELECT table_name AS name FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
      : "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'";
  return (db.statement(sql).all() as { name: string }[]).map((r) => r.name).filter((name) => name !== 'schema_migrations');
}

function columnsOf(db: RegistryDb, table: string): string[] {
  const sql =
    db.dialect === 'postgres'
      ? 'SELECT column_name AS name FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = ? ORDER BY ordinal_position'
      : 'SELECT name FROM pragma_table_info(?) ORDER BY cid';
  return (db.statement(sql).all(table) as { name: string }[]).map((r) => r.name);
}

/** The primary key's columns, in the key's order. */
function primaryKeyOf(db: RegistryDb, table: string): string[] {
  const sql =
    db.dialect === 'postgres'
      ? `SELECT a.attname AS name FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = ANY (i.indkey)
         WHERE c.relname = ? AND c.relnamespace = to_regnamespace(current_schema())::oid AND i.indisprimary ORDER BY array_position(i.indkey::smallint[], a.attnum)`
      : 'SELECT name FROM pragma_table_info(?) WHERE pk > 0 ORDER BY pk';
  const key = (db.statement(sql).all(table) as { name: string }[]).map((r) => r.name);
  if (key.length === 0) throw new CopyRefused(`table ${table} of ${db.where} has no primary key to read it in order by`);
  return key;
}

/** Refuses a database whose tables are not exactly REGISTRY_TABLES. */
function checkTables(db: RegistryDb): void {
  const present = new Set(tablesOf(db));
  const unknown = [...present].filter((t) => !(REGISTRY_TABLES as readonly string[]).includes(t)).sort();
  const missing = REGISTRY_TABLES.filter((t) => !present.has(t));
  if (unknown.length) throw new CopyRefused(`${db.where} has tables the copy does not know (${unknown.join(', ')}); add them to REGISTRY_TABLES in services/registry/copy.ts`);
  if (missing.length) throw new CopyRefused(`${db.where} lacks tables of the registry (${missing.join(', ')})`);
}

/** Every row of `table`, a page at a time, in primary-key order. */
function* pages(db: RegistryDb, table: string, key: string[], pageRows: number): Generator<Record<string, unknown>[]> {
  const order = key.map(quote).join(', ');
  if (!Number.isInteger(pageRows) || pageRows < 1) throw new Error(`pageRows must be a positive integer, not ${pageRows}`);
  const first = db.statement(`SELECT * FROM ${quote(table)} ORDER BY ${order} LIMIT ${pageRows}`);
  // Row values, (a, b) > (?, ?), on both (SQLite 3.15+): the next page starts after the last key read.
  const after = key.length === 1 ? `${quote(key[0]!)} > ?` : `(${order}) > (${key.map(() => '?').join(', ')})`;
  const next = db.statement(`SELECT * FROM ${quote(table)} WHERE ${after} ORDER BY ${order} LIMIT ${pageRows}`);
  let page = first.all() as Record<string, unknown>[];
  while (page.length > 0) {
    yield page;
    if (page.length < pageRows) return;
    const last = page[page.length - 1]!;
    page = next.all(...key.map((k) => last[k])) as Record<string, unknown>[];
  }
}

/** Runs `work` inside one read transaction on `db`: on PostgreSQL a snapshot (REPEATABLE READ), as SQLite's is anyway. */
function reading<T>(db: RegistryDb, work: () => T): T {
  return db.transaction(() => {
    if (db.dialect === 'postgres') db.exec('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY');
    return work();
  });
}

/**
 * Whether both name one database, however they are written (127.0.0.1 and localhost, a path
 * through a symbolic link): on PostgreSQL, one connection is given a name no other has, and the
 * other looks for it among the sessions of its own database.
 */
function sameDatabase(a: RegistryDb, b: RegistryDb): boolean {
  if (a === b) return true;
  if (a.dialect !== b.dialect) return false;
  if (a.dialect === 'sqlite') {
    const real = (file: string) => (fs.existsSync(file) ? fs.realpathSync(file) : path.resolve(file));
    return real(a.where) === real(b.where);
  }
  const marker = `waste-db-copy-${crypto.randomUUID()}`;
  a.exec(`SET application_name = '${marker}'`);
  const seen = b.statement('SELECT COUNT(*) AS n FROM pg_stat_activity WHERE application_name = ? AND datname = current_database()').get(marker) as { n: number };
  return Number(seen.n) > 0;
}

/** The highest seq the source's webhook_outbox ever handed out (rows since deleted included), 0 when none. */
function outboxHighWater(db: RegistryDb): number {
  const row =
    db.dialect === 'postgres'
      ? db.statement("SELECT pg_sequence_last_value(pg_get_serial_sequence('webhook_outbox', 'seq')::regclass) AS n").get()
      : db.statement("SELECT seq AS n FROM sqlite_sequence WHERE name = 'webhook_outbox'").get();
  return Number((row as { n: number | null } | undefined)?.n ?? 0);
}

/** After rows were written with their seq: the next seq the target hands out is past every one the source did. */
function advanceOutboxSequence(db: RegistryDb, highWater: number): void {
  const max = Number((db.statement('SELECT MAX(seq) AS n FROM webhook_outbox').get() as { n: number | null }).n ?? 0);
  const last = Math.max(max, highWater);
  if (db.dialect === 'postgres') {
    // An identity column's sequence is not moved by rows written with their own seq (PostgreSQL
    // docs, "CREATE TABLE", GENERATED BY DEFAULT): the next insert would take seq 1 again.
    if (last > 0) db.statement("SELECT setval(pg_get_serial_sequence('webhook_outbox', 'seq'), ?)").get(last);
    else db.statement("SELECT setval(pg_get_serial_sequence('webhook_outbox', 'seq'), 1, false)").get();
  } else if (last > 0) {
    // SQLite moves sqlite_sequence past any seq written (SQLite docs, "AUTOINCREMENT"); only a
    // source's rows deleted since are to be added.
    if (db.statement("UPDATE sqlite_sequence SET seq = ? WHERE name = 'webhook_outbox' AND seq < ?").run(last, last).changes === 0) {
      if (!db.statement("SELECT 1 FROM sqlite_sequence WHERE name = 'webhook_outbox'").get()) db.statement("INSERT INTO sqlite_sequence (name, seq) VALUES ('webhook_outbox', ?)").run(last);
    }
  }
}

/** Writes `rows` of `table` (columns as the rows' keys) in as few statements as the parameter limits allow. */
function insertRows(db: RegistryDb, table: string, rows: Record<string, unknown>[]): void {
  const columns = Object.keys(rows[0]!);
  const perStatement = Math.max(1, Math.min(MAX_INSERT_ROWS, Math.floor(MAX_INSERT_PARAMS / columns.length)));
  const head = `INSERT INTO ${quote(table)} (${columns.map(quote).join(', ')}) VALUES `;
  const tuple = `(${columns.map(() => '?').join(', ')})`;
  for (let i = 0; i < rows.length; i += perStatement) {
    const chunk = rows.slice(i, i + perStatement);
    const params: unknown[] = [];
    for (const row of chunk) for (const column of columns) params.push(row[column]);
    db.statement(head + Array.from(chunk, () => tuple).join(', ')).run(...params);
  }
}

/**
 * Copies every table of `from` into `to`, in one transaction on `to` with foreign keys checked at
 * its commit. Refuses (CopyRefused, nothing written) when the schema versions differ, when both are
 * the same database, or when `to` holds rows and `force` is not given.
 */
export function copyRegistry(from: RegistryDb, to: RegistryDb, options: CopyOptions = {}): CopyReport {
  const started = performance.now();
  const pageRows = options.pageRows ?? PAGE_ROWS;
  if (sameDatabase(from, to)) throw new CopyRefused(`the source and the target are the same database (${to.where})`);
  const schemaVersion = from.schemaVersion();
  const targetVersion = to.schemaVersion();
  if (schemaVersion !== targetVersion) throw new CopyRefused(`the source ${from.where} is at schema version ${schemaVersion}, the target ${to.where} at ${targetVersion}; both must be at the same version`);
  checkTables(from);
  checkTables(to);
  const keys = new Map<string, string[]>();
  for (const table of REGISTRY_TABLES) {
    const source = columnsOf(from, table);
    const target = columnsOf(to, table);
    if ([...source].sort().join() !== [...target].sort().join()) {
      throw new CopyRefused(`table ${table} has columns ${source.join(', ')} on ${from.where} but ${target.join(', ')} on ${to.where}`);
    }
    keys.set(table, primaryKeyOf(from, table));
  }

  const tables: { table: string; rows: number }[] = [];
  let emptied = false;
  reading(from, () =>
    to.transaction(() => {
      to.deferForeignKeys();
      // registry_revision always holds its one row (migration 5): it is set, never inserted.
      const holding = REGISTRY_TABLES.filter((t) => t !== 'registry_revision' && to.statement(`SELECT 1 AS one FROM ${quote(t)} LIMIT 1`).get() !== undefined);
      if (holding.length > 0) {
        const named = holding.length > 6 ? `${holding.slice(0, 5).join(', ')} and ${holding.length - 5} more tables` : holding.join(', ');
        if (!options.force) throw new CopyRefused(`the target ${to.where} holds rows already (in ${named}); copy into an empty database, or give --force to delete them first`);
        for (const table of [...REGISTRY_TABLES].reverse()) if (table !== 'registry_revision') to.exec(`DELETE FROM ${quote(table)}`);
        emptied = true;
      }
      for (const table of REGISTRY_TABLES) {
        let rows = 0;
        try {
          if (table === 'registry_revision') {
            const revision = from.statement('SELECT n FROM registry_revision WHERE id = 1').get() as { n: number } | undefined;
            if (revision) to.statement('UPDATE registry_revision SET n = ? WHERE id = 1').run(revision.n);
            rows = revision ? 1 : 0;
            options.progress?.(table, rows);
          } else {
            for (const page of pages(from, table, keys.get(table)!, pageRows)) {
              insertRows(to, table, page);
              rows += page.length;
              options.progress?.(table, rows);
            }
            if (rows === 0) options.progress?.(table, 0);
            if (table === 'webhook_outbox') advanceOutboxSequence(to, outboxHighWater(from));
          }
        } catch (error) {
          if (error instanceof CopyRefused) throw error;
          throw new Error(`copying table ${table} (after ${rows} rows): ${(error as Error).message}`, { cause: error });
        }
        tables.push({ table, rows });
      }
    }),
  );
  return {
    from: { dialect: from.dialect, where: from.where },
    to: { dialect: to.dialect, where: to.where },
    schemaVersion,
    emptied,
    tables,
    rows: tables.reduce((sum, t) => sum + t.rows, 0),
    ms: performance.now() - started,
  };
}

/**
 * One value as the digest reads it: the same whichever backend stored it. A number is a number
 * whatever its column's type (1 from a BIGINT and 1.0 from a REAL are both "n:1"); text stays text.
 */
function canonical(value: unknown): string | null {
  if (value === null || value === undefined) return null;
  if (typeof value === 'number') return `n:${Object.is(value, -0) ? 0 : value}`;
  if (typeof value === 'bigint') return `n:${value}`;
  if (typeof value === 'string') return `s:${value}`;
  if (typeof value === 'boolean') return `n:${value ? 1 : 0}`;
  if (Buffer.isBuffer(value) || value instanceof Uint8Array) return `b:${Buffer.from(value).toString('base64')}`;
  return `j:${JSON.stringify(value)}`;
}

const MODULUS = 1n << 256n;

/** Rows and digest of one table. */
function tableDigest(db: RegistryDb, table: string, pageRows: number): { rows: number; digest: string } {
  let rows = 0;
  let sum = 0n;
  for (const page of pages(db, table, primaryKeyOf(db, table), pageRows)) {
    for (const row of page) {
      const fields = Object.keys(row)
        .sort()
        .map((column) => [column, canonical(row[column])]);
      sum = (sum + BigInt(`0x${crypto.createHash('sha256').update(JSON.stringify(fields)).digest('hex')}`)) % MODULUS;
      rows++;
    }
  }
  return { rows, digest: sum.toString(16).padStart(64, '0') };
}

/** Whether `a` and `b` hold the same rows in every registry table: counts and digests, table by table. */
export function compareRegistries(a: RegistryDb, b: RegistryDb, options: { pageRows?: number } = {}): Comparison {
  const pageRows = options.pageRows ?? PAGE_ROWS;
  const digests = (db: RegistryDb) => reading(db, () => new Map(REGISTRY_TABLES.map((table) => [table, tableDigest(db, table, pageRows)])));
  const left = digests(a);
  const right = digests(b);
  const tables = REGISTRY_TABLES.map((table) => {
    const x = left.get(table)!;
    const y = right.get(table)!;
    return { table, a: x, b: y, equal: x.rows === y.rows && x.digest === y.digest };
  });
  const schemaVersion = { a: a.schemaVersion(), b: b.schemaVersion() };
  return { equal: schemaVersion.a === schemaVersion.b && tables.every((t) => t.equal), schemaVersion, tables };
}

/** Rows per registry table (`db status`). */
export function tableCounts(db: RegistryDb): { table: string; rows: number }[] {
  return REGISTRY_TABLES.map((table) => ({ table, rows: Number((db.statement(`SELECT COUNT(*) AS n FROM ${quote(table)}`).get() as { n: number }).n) }));
}

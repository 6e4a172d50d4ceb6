// Create, read, list, update and delete for every entity in entities.ts. Table and column names
// come from the definitions, never from a request; every value is a bound parameter. The bulk
// import (bundle.ts) checks rows here without writing them and writes them here once all are
// checked.
import { isViolation, type RegistryDb } from './db.ts';
import { RegistryError } from './devices.ts';
import type { EntityDefinition } from './entities.ts';
import { GeometryError, importGeometry, type SourceCrs } from './geometry.ts';
import { DEFAULT_LIMITS, type RegistryLimits } from './limits.ts';

export interface WriteOptions {
  /**
   * Skip the check that rows of the same table named in a relation exist (jurisdictions naming
   * each other as neighbours in one import); the caller checks them once all are written, inside
   * a transaction with foreign keys deferred.
   */
  deferSelfReferences?: boolean;
}

export type EntityRecord = Record<string, unknown> & { id: string; created_at: string; updated_at: string };

/** How checks find other rows: the database by default, or an import's rows over it. */
export interface RowLookup {
  exists(table: string, id: unknown): boolean;
  get(table: string, id: string): Record<string, unknown> | undefined;
}

/** "communities" -> "community", "sites" -> "site", for messages. */
function singularOf(table: string): string {
  return table.endsWith('ies') ? `${table.slice(0, -3)}y` : table.replace(/s$/, '');
}

/** Page size of all(). */
const ALL_PAGE = 1000;

export class EntityStore {
  /** Rows as stored (JSON still text), read straight from the database. */
  readonly stored: RowLookup = {
    exists: (table, id) => this.db.statement(`SELECT 1 FROM ${table} WHERE id = ?`).get(id) !== undefined,
    get: (table, id) => this.db.statement(`SELECT * FROM ${table} WHERE id = ?`).get(id) as Record<string, unknown> | undefined,
  };

  private readonly bulk = new Map<EntityDefinition, { columns: string[]; insert: string; update: string }>();

  constructor(
    private readonly db: RegistryDb,
    private readonly clock: () => Date = () => new Date(),
    readonly limits: RegistryLimits = DEFAULT_LIMITS,
  ) {}

  now(): string {
    return this.clock().toISOString();
  }

  get(def: EntityDefinition, id: string): EntityRecord | undefined {
    const row = this.db.statement(`SELECT * FROM ${def.table} WHERE id = ?`).get(id) as Record<string, unknown> | undefined;
    return row ? this.fromRow(def, row) : undefined;
  }

  list(def: EntityDefinition, filters: Record<string, string>, limit: number, offset: number): { items: EntityRecord[]; total: number } {
    const used = def.filters.filter((field) => filters[field] !== undefined);
    const where = used.length ? `WHERE ${used.map((f) => `${f} = @${f}`).join(' AND ')}` : '';
    const params = { ...Object.fromEntries(used.map((f) => [f, filters[f]])), limit, offset };
    const rows = this.db.statement(`SELECT * FROM ${def.table} ${where} ORDER BY id LIMIT @limit OFFSET @offset`).all(params) as Record<string, unknown>[];
    const { total } = this.db.statement(`SELECT COUNT(*) AS total FROM ${def.table} ${where}`).get(params) as { total: number };
    return { items: rows.map((row) => this.fromRow(def, row)), total };
  }

  /**
   * Up to `limit` entities of a kind with ids after `afterId`, in id order: pages that stay in
   * place when rows are added or removed between two reads (OFFSET pages would shift).
   */
  pageAfter(def: EntityDefinition, afterId: string, limit: number): EntityRecord[] {
    const rows = this.db.statement(`SELECT * FROM ${def.table} WHERE id > ? ORDER BY id LIMIT ?`).all(afterId, limit) as Record<string, unknown>[];
    return rows.map((row) => this.fromRow(def, row));
  }

  /** Every entity of a kind (matching the filters), read a page at a time. */
  all(def: EntityDefinition, filters: Record<string, string> = {}): EntityRecord[] {
    const out: EntityRecord[] = [];
    for (let offset = 0; ; offset += ALL_PAGE) {
      const page = this.list(def, filters, ALL_PAGE, offset);
      out.push(...page.items);
      if (page.items.length < ALL_PAGE) return out;
    }
  }

  /** Inserts a new entity; `input` has been validated against def.fields. Geometry in `crs`. */
  create(def: EntityDefinition, id: string, input: Record<string, unknown>, crs: SourceCrs = 'WGS-84', options: WriteOptions = {}): EntityRecord {
    const now = this.clock().toISOString();
    const values = this.toRow(def, input, crs, new Set(Object.keys(def.geometry)));
    this.checkRow(def, { id, ...values, ...this.relationValues(def, input) }, options);
    const columns = Object.keys(values);
    this.db.transaction(() => {
      try {
        this.db.statement(`INSERT INTO ${def.table} (id, ${columns.join(', ')}, created_at, updated_at) VALUES (@id, ${columns.map((c) => `@${c}`).join(', ')}, @now, @now)`)
          .run({ ...values, id, now });
      } catch (error) {
        throw this.translate(def, id, error);
      }
      this.writeRelations(def, id, input);
    });
    return this.get(def, id)!;
  }

  /** Changes the given fields; `patch` has been validated against def.fields.partial(). */
  update(def: EntityDefinition, id: string, patch: Record<string, unknown>, crs: SourceCrs = 'WGS-84', options: WriteOptions = {}): EntityRecord {
    const current = this.get(def, id);
    if (!current) throw new RegistryError('not_found', `no ${def.singular} ${id}`);
    const changed = Object.keys(patch).filter((key) => key in def.fields.shape && !(key in def.relations));
    const values = this.toRow(def, patch, crs, new Set(changed.filter((key) => key in def.geometry)));
    this.checkRow(def, { ...current, ...values, ...this.relationValues(def, patch) }, options);
    this.db.transaction(() => {
      try {
        this.db.statement(`UPDATE ${def.table} SET ${[...changed.map((c) => `${c} = @${c}`), 'updated_at = @now'].join(', ')} WHERE id = @id`)
          .run({ ...Object.fromEntries(changed.map((c) => [c, values[c]])), id, now: this.clock().toISOString() });
      } catch (error) {
        throw this.translate(def, id, error);
      }
      this.writeRelations(def, id, patch);
    });
    return this.get(def, id)!;
  }

  /**
   * Creates the entity, or brings it to `input` when it differs; re-applying the same input
   * changes nothing (not even updated_at). For bulk imports.
   */
  upsert(def: EntityDefinition, id: string, input: Record<string, unknown>, crs: SourceCrs = 'WGS-84', options: WriteOptions = {}): 'created' | 'updated' | 'unchanged' {
    const current = this.get(def, id);
    if (!current) {
      this.create(def, id, input, crs, options);
      return 'created';
    }
    const wanted = this.toRow(def, input, crs, new Set(Object.keys(def.geometry)));
    const stored = this.toRow(def, current, 'WGS-84', new Set());
    const relationsDiffer = Object.keys(def.relations).some(
      (field) => JSON.stringify([...new Set((input[field] as string[] | undefined) ?? [])].sort()) !== JSON.stringify(current[field]),
    );
    const fieldsDiffer = Object.keys(def.fields.shape).some((field) => !(field in def.relations) && JSON.stringify(wanted[field] ?? null) !== JSON.stringify(stored[field] ?? null));
    if (!relationsDiffer && !fieldsDiffer) return 'unchanged';
    const complete = Object.fromEntries(Object.keys(def.fields.shape).map((field) => [field, input[field] ?? null]));
    this.update(def, id, complete, crs, options);
    return 'updated';
  }

  remove(def: EntityDefinition, id: string): void {
    try {
      const result = this.db.statement(`DELETE FROM ${def.table} WHERE id = ?`).run(id);
      if (result.changes === 0) throw new RegistryError('not_found', `no ${def.singular} ${id}`);
    } catch (error) {
      if (isViolation(error, 'foreign_key')) {
        throw new RegistryError('conflict', `${def.singular} ${id} is still referenced (by trucks, bins, communities, sites or permits); remove those first`);
      }
      throw error;
    }
  }

  /**
   * Every column of `input` as it would be stored (absent fields null, as an update through
   * upsert() leaves them), geometry checked and converted; throws GeometryError.
   */
  columns(def: EntityDefinition, input: Record<string, unknown>, crs: SourceCrs): Record<string, unknown> {
    const complete = Object.fromEntries(Object.keys(def.fields.shape).filter((field) => !(field in def.relations)).map((field) => [field, input[field] ?? null]));
    return this.toRow(def, complete, crs, new Set(Object.keys(def.geometry)));
  }

  /** The bulk import's statements of a kind, built once: its rows are written by the thousand. */
  private bulkSql(def: EntityDefinition) {
    let sql = this.bulk.get(def);
    if (!sql) {
      const columns = Object.keys(def.fields.shape).filter((field) => !(field in def.relations));
      sql = {
        columns,
        insert: `INSERT INTO ${def.table} (id, ${columns.join(', ')}, created_at, updated_at) VALUES (?, ${columns.map(() => '?').join(', ')}, ?, ?)`,
        update: `UPDATE ${def.table} SET ${columns.map((c) => `${c} = ?`).join(', ')}, updated_at = ? WHERE id = ? AND updated_at = ?`,
      };
      this.bulk.set(def, sql);
    }
    return sql;
  }

  /** Inserts a row whose columns come from columns() and were checked (bulk import). */
  insertChecked(def: EntityDefinition, id: string, values: Record<string, unknown>, relations: Record<string, string[]>, now: string): void {
    const { columns, insert } = this.bulkSql(def);
    try {
      this.db.statement(insert).run(id, ...columns.map((c) => values[c]), now, now);
    } catch (error) {
      throw this.translate(def, id, error);
    }
    this.insertRelations(def, id, relations);
  }

  /**
   * Brings a row to checked values, provided it is still as it was when they were checked (its
   * updated_at is `stamp`); false when it was changed or removed since.
   */
  updateChecked(def: EntityDefinition, id: string, values: Record<string, unknown>, relations: Record<string, string[]>, now: string, stamp: string): boolean {
    const { columns, update } = this.bulkSql(def);
    let changes: number;
    try {
      changes = this.db.statement(update).run(...columns.map((c) => values[c]), now, id, stamp).changes;
    } catch (error) {
      throw this.translate(def, id, error);
    }
    if (changes === 0) return false;
    for (const link of Object.values(def.relations)) this.db.statement(`DELETE FROM ${link.table} WHERE ${link.owner} = ?`).run(id);
    this.insertRelations(def, id, relations);
    return true;
  }

  /** updated_at of a stored row, or undefined. */
  stamp(def: EntityDefinition, id: string): string | undefined {
    return (this.db.statement(`SELECT updated_at FROM ${def.table} WHERE id = ?`).get(id) as { updated_at: string } | undefined)?.updated_at;
  }

  private insertRelations(def: EntityDefinition, id: string, relations: Record<string, string[]>): void {
    for (const [field, link] of Object.entries(def.relations)) {
      const insert = this.db.statement(`INSERT INTO ${link.table} (${link.owner}, ${link.other}) VALUES (?, ?) ON CONFLICT DO NOTHING`);
      for (const other of relations[field] ?? []) insert.run(id, other);
    }
  }

  /** The ids in each relation of a stored row, sorted. */
  storedRelations(def: EntityDefinition, id: string): Record<string, string[]> {
    return Object.fromEntries(Object.entries(def.relations).map(([field, link]) => [field, this.related(link, id)]));
  }

  /**
   * The ids a row links to, in JavaScript's order (UTF-16 code units), which is what the imports
   * and upsert() compare with: the database's ORDER BY follows its collation, binary on SQLite but
   * often a language's on PostgreSQL (en-US puts "a" before "B", and "JS_01" before "JS-02"), and
   * a list merely ordered otherwise would count as changed.
   */
  private related(link: EntityDefinition['relations'][string], id: unknown): string[] {
    return (this.db.statement(`SELECT ${link.other} AS other FROM ${link.table} WHERE ${link.owner} = ?`).all(id) as { other: string }[]).map((r) => r.other).sort();
  }

  /** Column values for the given fields: geometry checked and converted, JSON serialised. */
  private toRow(def: EntityDefinition, input: Record<string, unknown>, crs: SourceCrs, convert: Set<string>): Record<string, unknown> {
    const row: Record<string, unknown> = {};
    for (const field of Object.keys(def.fields.shape)) {
      if (!(field in input) || field in def.relations) continue;
      const value = input[field];
      if (value === undefined || value === null) row[field] = null;
      else if (field in def.geometry) {
        try {
          row[field] = JSON.stringify(convert.has(field) ? importGeometry(value, def.geometry[field]!, crs, { maxVertices: this.limits.maxGeometryVertices }) : value);
        } catch (error) {
          if (error instanceof GeometryError) throw new GeometryError(`${field}: ${error.message}`, [field, ...error.path]);
          throw error;
        }
      } else if (def.json.includes(field)) row[field] = JSON.stringify(value);
      else row[field] = value;
    }
    return row;
  }

  private fromRow(def: EntityDefinition, row: Record<string, unknown>): EntityRecord {
    const record: Record<string, unknown> = { ...row };
    for (const field of [...Object.keys(def.geometry), ...def.json]) {
      if (typeof record[field] === 'string') record[field] = JSON.parse(record[field] as string);
    }
    for (const [field, link] of Object.entries(def.relations)) record[field] = this.related(link, row.id);
    return record as EntityRecord;
  }

  private relationValues(def: EntityDefinition, input: Record<string, unknown>): Record<string, unknown> {
    return Object.fromEntries(Object.keys(def.relations).filter((field) => input[field] !== undefined).map((field) => [field, input[field]]));
  }

  /** Replaces the link rows of every relation field present in `input`. */
  private writeRelations(def: EntityDefinition, id: string, input: Record<string, unknown>): void {
    for (const [field, link] of Object.entries(def.relations)) {
      const others = input[field];
      if (!Array.isArray(others)) continue;
      this.db.statement(`DELETE FROM ${link.table} WHERE ${link.owner} = ?`).run(id);
      const insert = this.db.statement(`INSERT INTO ${link.table} (${link.owner}, ${link.other}) VALUES (?, ?) ON CONFLICT DO NOTHING`);
      for (const other of others) insert.run(id, other);
    }
  }

  /**
   * References (and referenced ids in relations) exist; the definition's own checks pass. Other
   * rows are found through `lookup`: the database, or an import's checked rows over it.
   */
  checkRow(def: EntityDefinition, row: Record<string, unknown>, options: WriteOptions, lookup: RowLookup = this.stored): void {
    const exists = (table: string, id: unknown) => lookup.exists(table, id);
    for (const [field, table] of Object.entries(def.references)) {
      const value = row[field];
      if (value !== undefined && value !== null && !exists(table, value)) throw new RegistryError('invalid', `${field}: no ${singularOf(table)} ${String(value)}`);
    }
    for (const [field, link] of Object.entries(def.relations)) {
      for (const other of (row[field] as unknown[] | undefined) ?? []) {
        if (link.references === def.table && other === row.id) throw new RegistryError('invalid', `${field}: a ${def.singular} cannot list itself`);
        if (options.deferSelfReferences && link.references === def.table) continue;
        if (!exists(link.references, other)) throw new RegistryError('invalid', `${field}: no ${singularOf(link.references)} ${String(other)}`);
      }
    }
    def.check?.(row, (table, id) => lookup.get(table, id));
  }

  private translate(def: EntityDefinition, id: string, error: unknown): Error {
    if (isViolation(error, 'primary_key')) return new RegistryError('conflict', `${def.singular} ${id} exists already`);
    if (isViolation(error, 'unique')) {
      const column = error.columns.at(-1)?.replace(/^\w+\./, '') ?? 'a unique field';
      return new RegistryError('conflict', `${column} is already used by another ${def.singular}`);
    }
    return error as Error;
  }
}

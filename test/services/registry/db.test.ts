import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { MigrationError, RegistryDb } from '../../../services/registry/db.ts';
import { MIGRATIONS } from '../../../services/registry/migrations.ts';
import { tempDir } from '../../helpers/service.ts';

describe('RegistryDb', () => {
  it('creates the file, applies every migration once, and enforces foreign keys', async () => {
    const file = path.join(await tempDir('waste-registry-'), 'sub', 'registry.db');
    const db = new RegistryDb(file);
    db.open();
    expect(db.schemaVersion()).toBe(Math.max(...MIGRATIONS.map((m) => m.version)));
    expect(db.connection.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(() =>
      db.connection.prepare("INSERT INTO communities (id, name, district_id, geometry, created_at, updated_at) VALUES ('c', 'C', 'no-such-district', '{}', 'x', 'x')").run(),
    ).toThrow(/FOREIGN KEY/);
    db.close();
    const again = new RegistryDb(file);
    again.open();
    expect((again.connection.prepare('SELECT COUNT(*) AS n FROM schema_migrations').get() as { n: number }).n).toBe(MIGRATIONS.length);
    again.close();
  });

  it('brings devices of an older registry to the JT/T 808 columns, none of them a terminal', async () => {
    const file = path.join(await tempDir('waste-registry-'), 'registry.db');
    const old = new RegistryDb(file, MIGRATIONS.filter((m) => m.version <= 5));
    old.open();
    old.connection.prepare("INSERT INTO devices (id, class, secret_hash, created_at, updated_at) VALUES ('B1', 'bins', 'h', 'x', 'x'), ('T1', 'trucks', 'h', 'x', 'x')").run();
    old.close();
    const db = new RegistryDb(file);
    db.open();
    expect(db.connection.prepare('SELECT id, jt808_phone, jt808_auth_hash, jt808_model FROM devices ORDER BY id').all()).toEqual([
      { id: 'B1', jt808_phone: null, jt808_auth_hash: null, jt808_model: null },
      { id: 'T1', jt808_phone: null, jt808_auth_hash: null, jt808_model: null },
    ]);
    db.close();
  });

  it('compiles a statement once per connection and compiles it again after a reopen', async () => {
    const db = new RegistryDb(path.join(await tempDir('waste-registry-'), 'registry.db'));
    db.open();
    const sql = 'SELECT COUNT(*) AS n FROM schema_migrations';
    const first = db.statement(sql);
    expect(db.statement(sql)).toBe(first);
    expect((first.get() as { n: number }).n).toBe(MIGRATIONS.length);
    db.close();
    db.open();
    const reopened = db.statement(sql);
    expect(reopened).not.toBe(first);
    expect((reopened.get() as { n: number }).n).toBe(MIGRATIONS.length);
    db.close();
  });

  it('rolls a failing migration back whole and says which one failed', async () => {
    const file = path.join(await tempDir('waste-registry-'), 'registry.db');
    const broken = [...MIGRATIONS, { version: 999, name: 'broken', sql: 'CREATE TABLE half_done (x); INSERT INTO nowhere VALUES (1);' }];
    expect(() => new RegistryDb(file, broken).open()).toThrow(/migration 999 \(broken\) failed: no such table: nowhere/);
    const db = new RegistryDb(file);
    db.open();
    expect(db.schemaVersion()).toBe(Math.max(...MIGRATIONS.map((m) => m.version)));
    expect(db.connection.prepare("SELECT name FROM sqlite_master WHERE name = 'half_done'").get()).toBeUndefined();
    db.close();
  });

  it('refuses a file written by a newer version', async () => {
    const file = path.join(await tempDir('waste-registry-'), 'registry.db');
    new RegistryDb(file, [...MIGRATIONS, { version: 999, name: 'future', sql: 'SELECT 1' }]).open();
    expect(() => new RegistryDb(file).open()).toThrow(MigrationError);
  });

  it('writes all of a transaction or none of it', async () => {
    const db = new RegistryDb(path.join(await tempDir('waste-registry-'), 'registry.db'));
    db.open();
    const insert = db.connection.prepare("INSERT INTO companies (id, name, created_at, updated_at) VALUES (?, ?, 'x', 'x')");
    expect(() =>
      db.transaction(() => {
        insert.run('a', 'A');
        insert.run('a', 'duplicate');
      }),
    ).toThrow(/UNIQUE/);
    expect(db.connection.prepare('SELECT COUNT(*) AS n FROM companies').get()).toEqual({ n: 0 });
    db.close();
  });
});

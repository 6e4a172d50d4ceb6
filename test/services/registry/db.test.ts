import { spawn } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConstraintViolation, DatabaseUnreachableError, MigrationError, RegistryDb, isViolation } from '../../../services/registry/db.ts';
import { MIGRATIONS, type Migration } from '../../../services/registry/migrations.ts';
import { toPostgresPlaceholders } from '../../../services/registry/postgres-backend.ts';
import { freePort } from '../../helpers/ports.ts';
import { BACKENDS, registryLocations } from '../../helpers/registry-backends.ts';
import { tempDir } from '../../helpers/service.ts';

const LATEST = Math.max(...MIGRATIONS.map((m) => m.version));
const extra = (version: number, name: string, sql: string): Migration => ({ version, name, sqlite: sql, postgres: sql });

describe.each(BACKENDS)('RegistryDb on %s', (backend) => {
  const location = registryLocations(backend);

  it('applies every migration once, and enforces foreign keys', async () => {
    const where = await location();
    const db = new RegistryDb(where).open();
    expect(db.dialect).toBe(backend);
    expect(db.schemaVersion()).toBe(LATEST);
    const orphan = () => db.statement("INSERT INTO communities (id, name, district_id, geometry, created_at, updated_at) VALUES ('c', 'C', 'no-such-district', '{}', 'x', 'x')").run();
    expect(orphan).toThrow(ConstraintViolation);
    try {
      orphan();
    } catch (error) {
      expect(isViolation(error, 'foreign_key')).toBe(true);
    }
    db.close();
    const again = new RegistryDb(where).open();
    expect((again.statement('SELECT COUNT(*) AS n FROM schema_migrations').get() as { n: number }).n).toBe(MIGRATIONS.length);
    again.close();
  });

  it('brings devices of an older registry to the JT/T 808 and LoRaWAN columns, none of them a terminal or sensor', async () => {
    const where = await location();
    const old = new RegistryDb(where, { migrations: MIGRATIONS.filter((m) => m.version <= 5) }).open();
    old.statement("INSERT INTO devices (id, class, secret_hash, created_at, updated_at) VALUES ('B1', 'bins', 'h', 'x', 'x'), ('T1', 'trucks', 'h', 'x', 'x')").run();
    old.close();
    const db = new RegistryDb(where).open();
    expect(db.statement('SELECT id, jt808_phone, jt808_auth_hash, jt808_model, lorawan_dev_eui FROM devices ORDER BY id').all()).toEqual([
      { id: 'B1', jt808_phone: null, jt808_auth_hash: null, jt808_model: null, lorawan_dev_eui: null },
      { id: 'T1', jt808_phone: null, jt808_auth_hash: null, jt808_model: null, lorawan_dev_eui: null },
    ]);
    db.close();
  });

  it('rolls a failing migration back whole and says which one failed', async () => {
    const where = await location();
    const broken = [...MIGRATIONS, extra(999, 'broken', 'CREATE TABLE half_done (x INTEGER); INSERT INTO nowhere VALUES (1);')];
    expect(() => new RegistryDb(where, { migrations: broken }).open()).toThrow(/migration 999 \(broken\) failed on .*nowhere/);
    const db = new RegistryDb(where).open();
    expect(db.schemaVersion()).toBe(LATEST);
    expect(() => db.statement('SELECT * FROM half_done').all()).toThrow(/half_done/);
    db.close();
  });

  it('refuses a database written by a newer version', async () => {
    const where = await location();
    new RegistryDb(where, { migrations: [...MIGRATIONS, extra(999, 'future', 'SELECT 1')] }).open().close();
    expect(() => new RegistryDb(where).open()).toThrow(MigrationError);
  });

  it('writes all of a transaction or none of it, and a savepoint inside it keeps the rest', async () => {
    const db = new RegistryDb(await location()).open();
    const insert = db.statement("INSERT INTO companies (id, name, created_at, updated_at) VALUES (?, ?, 'x', 'x')");
    expect(() =>
      db.transaction(() => {
        insert.run('a', 'A');
        insert.run('a', 'duplicate');
      }),
    ).toThrow(/a/);
    expect(db.statement('SELECT COUNT(*) AS n FROM companies').get()).toEqual({ n: 0 });
    db.transaction(() => {
      insert.run('b', 'B');
      expect(() => db.transaction(() => insert.run('b', 'again'))).toThrow(ConstraintViolation);
      insert.run('c', 'C');
    });
    expect(db.statement('SELECT id FROM companies ORDER BY id').all()).toEqual([{ id: 'b' }, { id: 'c' }]);
    db.close();
  });

  it('binds named and positional values alike, quotes and question marks in text left alone', async () => {
    const db = new RegistryDb(await location()).open();
    db.statement("INSERT INTO companies (id, name, contact, created_at, updated_at) VALUES (@id, @name, 'who? @nobody', @now, @now)").run({ id: 'q', name: "O'Brien 苏州", now: 'x' });
    expect(db.statement('SELECT id, name, contact FROM companies WHERE id = ? AND name = ?').get('q', "O'Brien 苏州")).toEqual({ id: 'q', name: "O'Brien 苏州", contact: 'who? @nobody' });
    // Values are bound: text that looks like SQL stays text.
    db.statement('INSERT INTO companies (id, name, created_at, updated_at) VALUES (?, ?, ?, ?)').run("x'); DROP TABLE companies; --", 'n', 'x', 'x');
    expect((db.statement('SELECT COUNT(*) AS n FROM companies').get() as { n: number }).n).toBe(2);
    db.close();
  });

  it('keeps epoch milliseconds and counts as numbers', async () => {
    const db = new RegistryDb(await location()).open();
    db.statement("INSERT INTO sorting_days (day, computed_at, tickets) VALUES ('2026-12-01', ?, 3)").run(1_796_000_000_123);
    expect(db.statement('SELECT computed_at, tickets, (SELECT COUNT(*) FROM sorting_days) AS n FROM sorting_days').get()).toEqual({ computed_at: 1_796_000_000_123, tickets: 3, n: 1 });
    db.close();
  });

  it('keeps its transactions whole after a COMMIT that failed', async () => {
    const db = new RegistryDb(await location()).open();
    // A deferred foreign key fails at COMMIT.
    expect(() =>
      db.transaction(() => {
        db.deferForeignKeys();
        db.statement("INSERT INTO communities (id, name, district_id, geometry, created_at, updated_at) VALUES ('c', 'C', 'nowhere', '{}', 'x', 'x')").run();
      }),
    ).toThrow(ConstraintViolation);
    db.transaction(() => {
      expect(db.inTransaction).toBe(true);
      db.serialize('after a failed commit');
      db.transaction(() => db.statement("INSERT INTO companies (id, name, created_at, updated_at) VALUES ('k', 'K', 'x', 'x')").run());
    });
    expect(db.inTransaction).toBe(false);
    expect(db.statement('SELECT id FROM companies').all()).toEqual([{ id: 'k' }]);
    db.close();
  });

  it('knows the single-column unique constraints of a table', async () => {
    const db = new RegistryDb(await location()).open();
    expect(db.uniqueColumns('trucks')).toEqual(['device_id', 'plate']);
    expect(db.uniqueColumns('bins')).toEqual(['device_id']);
    db.close();
  });

  it('lets processes starting together apply the migrations once', async () => {
    const where = await location();
    // Opened one after another here (open() blocks its thread), each as a process would: the
    // second finds the schema current.
    const first = new RegistryDb(where).open();
    const second = new RegistryDb(where).open();
    expect(second.schemaVersion()).toBe(LATEST);
    expect((second.statement('SELECT COUNT(*) AS n FROM schema_migrations').get() as { n: number }).n).toBe(MIGRATIONS.length);
    first.close();
    second.close();
  });
});

describe('RegistryDb on SQLite', () => {
  it('creates the file and its directory, in WAL mode', async () => {
    const file = path.join(await tempDir('waste-registry-'), 'sub', 'registry.db');
    const db = new RegistryDb(`sqlite:${file}`).open();
    expect(db.where).toBe(file);
    expect(db.statement('PRAGMA journal_mode').get()).toEqual({ journal_mode: 'wal' });
    db.close();
  });
});

describe('RegistryDb on PostgreSQL', () => {
  const location = registryLocations('postgres');

  it('writes nothing of a transaction it gave up waiting for, even when the server answers later', async () => {
    const url = await location();
    const db = new RegistryDb(url, { statementTimeoutMs: 300, connectTimeoutMs: 300 }).open();
    const { pid } = db.statement('SELECT pg_backend_pid() AS pid').get() as { pid: number };
    const insert = db.statement("INSERT INTO companies (id, name, created_at, updated_at) VALUES (?, 'n', 'x', 'x')");
    expect(() =>
      db.transaction(() => {
        insert.run('before');
        // The server process of this connection stops answering: a cut network, as seen from here.
        process.kill(pid, 'SIGSTOP');
        // Sent together: a write whose outcome is not read, then a statement.
        db.writeInTransaction("INSERT INTO companies (id, name, created_at, updated_at) VALUES ('deferred', 'n', 'x', 'x')");
        insert.run('stalled');
      }),
    ).toThrow(DatabaseUnreachableError);
    process.kill(pid, 'SIGCONT');
    await new Promise((resolve) => setTimeout(resolve, 500));
    const other = new RegistryDb(url).open();
    expect(other.statement('SELECT id FROM companies').all()).toEqual([]);
    // The next transaction runs on a new connection, whole.
    db.transaction(() => insert.run('next'));
    expect(other.statement('SELECT id FROM companies').all()).toEqual([{ id: 'next' }]);
    other.close();
    db.close();
  });

  it('applies the migrations once when four processes open a new database at the same moment', async () => {
    const url = await location();
    const open = `import { RegistryDb } from './services/registry/db.ts'; const db = new RegistryDb(process.env.URL).open(); process.stdout.write(String(db.schemaVersion())); db.close();`;
    const outputs = await Promise.all(
      Array.from({ length: 4 }, () =>
        new Promise<string>((resolve, reject) => {
          const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', open], { env: { ...process.env, URL: url }, stdio: ['ignore', 'pipe', 'pipe'] });
          let out = '';
          child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
          child.stderr.on('data', (chunk: Buffer) => (out += chunk.toString()));
          child.once('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`exit ${code}: ${out}`))));
        }),
      ),
    );
    expect(outputs).toEqual(Array(4).fill(String(LATEST)));
    const db = new RegistryDb(url).open();
    expect(db.statement('SELECT version, COUNT(*) AS n FROM schema_migrations GROUP BY version ORDER BY version').all()).toEqual(MIGRATIONS.map((m) => ({ version: m.version, n: 1 })));
    db.close();
  });

  it('does not take a transaction whose failed statement was caught as committed', async () => {
    const db = new RegistryDb(await location()).open();
    const insert = db.statement("INSERT INTO companies (id, name, created_at, updated_at) VALUES (?, 'n', 'x', 'x')");
    insert.run('a');
    // PostgreSQL runs no statement after a failed one in its transaction, and answers COMMIT by
    // rolling it back; SQLite would have written 'b'.
    expect(() =>
      db.transaction(() => {
        insert.run('b');
        expect(() => insert.run('a')).toThrow(ConstraintViolation);
      }),
    ).toThrow(/rolled back, not committed/);
    expect(db.statement('SELECT id FROM companies ORDER BY id').all()).toEqual([{ id: 'a' }]);
    db.close();
  });

  it('says where and how to fix it when no server answers', async () => {
    const port = await freePort();
    const db = new RegistryDb(`postgres://waste:secret@127.0.0.1:${port}/registry`, { connectTimeoutMs: 2000 });
    expect(() => db.open()).toThrow(DatabaseUnreachableError);
    expect(() => db.open()).toThrow(new RegExp(`PostgreSQL at postgres://127\\.0\\.0\\.1:${port}/registry is unreachable.*WASTE_DATABASE_URL`));
    expect(() => db.open()).not.toThrow(/secret/);
  });

  it('numbers placeholders outside quoted text and comments', () => {
    expect(toPostgresPlaceholders("SELECT ? , '?' , \"a?\" , ? -- ?\n")).toEqual({ text: "SELECT $1 , '?' , \"a?\" , $2 -- ?\n", names: null });
    expect(toPostgresPlaceholders("UPDATE t SET a = @x, b = @y WHERE c = @x AND d = '@z'")).toEqual({ text: "UPDATE t SET a = $1, b = $2 WHERE c = $1 AND d = '@z'", names: ['x', 'y'] });
    expect(() => toPostgresPlaceholders('SELECT ?, @x')).toThrow(/mixes/);
  });
});

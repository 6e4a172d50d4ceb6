// `npm run cli -- db …` as an operator runs it: status and migrate, and a SQLite registry copied
// into PostgreSQL end to end by the CLI as a child process, never printing the URL's password.
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RegistryDb } from '../../services/registry/db.ts';
import { DeviceStore } from '../../services/registry/devices.ts';
import { TokenStore } from '../../services/registry/tokens.ts';
import { startTestPostgres, type TestPostgres } from '../helpers/postgres.ts';
import { tempDir } from '../helpers/service.ts';

const run = promisify(execFile);
interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}
const cli = (args: string[], env: Record<string, string> = {}): Promise<Ran> =>
  run(process.execPath, ['--import', 'tsx', 'services/cli.ts', ...args], { env: { ...process.env, ...env } }).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (error: { code: number; stdout: string; stderr: string }) => ({ code: error.code, stdout: error.stdout, stderr: error.stderr }),
  );

let cluster: TestPostgres;
beforeAll(async () => {
  cluster = await startTestPostgres();
}, 60_000);
afterAll(async () => {
  await cluster?.cleanup();
});

const PASSWORD = 's3cret-pw';
/** A fresh database's URL with a password in it (the test cluster trusts every connection, so any password does). */
const withPassword = async () => (await cluster.createDatabase()).replace('postgres://waste@', `postgres://waste:${PASSWORD}@`);

describe('npm run cli -- db', () => {
  it('copies a SQLite registry into PostgreSQL, checks both sides, and refuses to copy over rows unless --force', async () => {
    const dir = await tempDir('waste-cli-db-');
    const file = path.join(dir, 'registry.db');
    const db = new RegistryDb(file).open();
    const devices = new DeviceStore(db);
    await devices.add('TRUCK-808', 'trucks', { phone: '13800138000', model: 'ZT-80' });
    await devices.add('BIN-LORA', 'bins', undefined, { devEui: '24E124136B502217' });
    const token = new TokenStore(db).create({ name: '苏州指挥中心', role: 'admin' }).token;
    db.close();
    const url = await withPassword();
    const env = { WASTE_DATA_DIR: dir };

    const copied = await cli(['db', 'copy', '--from', `sqlite:${file}`, '--to', url], env);
    expect(copied.code, copied.stderr).toBe(0);
    expect(copied.stdout).toMatch(/^copied 4 rows in [\d.]+ s \(\d+ rows\/s\), schema version 10\n/);
    expect(copied.stdout).toMatch(/^devices\s+2\s+2 {2}OK$/m);
    expect(copied.stdout).toMatch(/^tokens\s+1\s+1 {2}OK$/m);
    expect(copied.stdout).toMatch(/^companies\s+0\s+0 {2}OK$/m);
    expect(copied.stdout).toContain('every table equal on both sides (29 tables)');
    expect(copied.stderr).toContain(`copying sqlite ${file} → postgres postgres://127.0.0.1:${cluster.port}/`);
    expect(copied.stderr).toMatch(/^ {2}devices: 2 rows$/m);
    expect(copied.stdout + copied.stderr).not.toContain(PASSWORD);

    const target = new RegistryDb(url).open();
    try {
      expect(new TokenStore(target).authenticate(token)).toMatchObject({ role: 'admin', name: '苏州指挥中心' });
      expect(new DeviceStore(target).terminal('13800138000')).toMatchObject({ deviceId: 'TRUCK-808', model: 'ZT-80' });
    } finally {
      target.close();
    }

    const again = await cli(['db', 'copy', '--from', `sqlite:${file}`, '--to', url], env);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/error: the target postgres:\/\/127\.0\.0\.1:\d+\/\w+ holds rows already \(in devices, tokens\); copy into an empty database, or give --force/);
    expect(again.stdout + again.stderr).not.toContain(PASSWORD);

    const forced = await cli(['db', 'copy', '--from', `sqlite:${file}`, '--to', url, '--force', '--json'], env);
    expect(forced.code, forced.stderr).toBe(0);
    const report = JSON.parse(forced.stdout) as { copy: { emptied: boolean; rows: number }; comparison: { equal: boolean; tables: { table: string; a: { rows: number }; equal: boolean }[] } };
    expect(report.copy).toMatchObject({ emptied: true, rows: 4 });
    expect(report.comparison.equal).toBe(true);
    expect(report.comparison.tables.find((t) => t.table === 'devices')).toMatchObject({ a: { rows: 2 }, equal: true });
    expect(forced.stdout).not.toContain(PASSWORD);

    const status = await cli(['db', 'status', '--database', url], env);
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toMatch(/^backend: +postgres\nwhere: +postgres:\/\/127\.0\.0\.1:\d+\/\w+\nschema version: 10 \(the latest this program knows\)\nrows:\n/);
    expect(status.stdout).toMatch(/^ {2}devices +2$/m);
    expect(status.stdout).not.toContain(PASSWORD);

    const migrate = await cli(['db', 'migrate', '--database', url, '--json'], env);
    expect(JSON.parse(migrate.stdout)).toMatchObject({ dialect: 'postgres', before: 10, after: 10, applied: [] });
  }, 120_000);

  it('migrates the configured database, saying what it applied', async () => {
    const dir = await tempDir('waste-cli-db-');
    const first = await cli(['db', 'migrate'], { WASTE_DATA_DIR: dir });
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toMatch(new RegExp(`^sqlite ${path.join(dir, 'registry.db').replace(/[.]/g, '\\.')}: schema version 0 → 10\n {2}applied 1: registry entities, devices and tokens\n`));
    expect(first.stdout).toContain('  applied 8: several processes');
    expect(first.stdout).toContain('  applied 9: ingest workers sharing the partitions of a RabbitMQ cluster');
    expect((await cli(['db', 'migrate'], { WASTE_DATA_DIR: dir })).stdout).toMatch(/schema version 10, up to date; nothing to apply\n$/);

    // database.url, when set, is the configured database.
    const url = await withPassword();
    const status = await cli(['db', 'status'], { WASTE_DATA_DIR: dir, WASTE_DATABASE_URL: url });
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toMatch(/^backend: +postgres\n/);
    expect(status.stdout).toContain('(opening it applied migrations 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, from version 0)');
    expect(status.stdout).not.toContain(PASSWORD);
  }, 60_000);

  it('explains itself, and refuses incomplete commands', async () => {
    const help = await cli(['db', '--help']);
    expect(help.stdout).toMatch(/^Usage: npm run cli -- db <status\|migrate\|copy>/);
    expect(help.stdout).toContain('db copy --from LOCATION --to LOCATION [--force]');
    expect((await cli(['db', 'copy', '--help'])).stdout).toMatch(/^Usage: npm run cli -- db copy --from LOCATION --to LOCATION \[--force\] \[--json\]\n[\s\S]*--force {11}delete the rows/);
    expect((await cli(['db', 'migrate', '-h'])).stdout).toMatch(/^Usage: npm run cli -- db migrate/);
    expect((await cli(['--help'])).stdout).toMatch(/Database \(the registry: a SQLite file, or PostgreSQL; see "db --help"\):\n {2}db status/);
    expect(await cli(['db', 'copy', '--to', 'postgres://x@127.0.0.1:1/x'])).toMatchObject({ code: 2, stderr: expect.stringMatching(/^error: --from is required/) });
    expect(await cli(['db', 'vacuum'])).toMatchObject({ code: 2, stderr: 'error: unknown command "db vacuum"; see db --help\n' });
  }, 60_000);
});

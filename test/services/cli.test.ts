// The provisioning CLI as an operator runs it.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { verifySecret } from '../../services/broker/secrets.ts';
import { tempDir, testConfig, withRegistry } from '../helpers/service.ts';

const run = promisify(execFile);
const cli = (args: string[], env: Record<string, string>) => run(process.execPath, ['--import', 'tsx', 'services/cli.ts', ...args], { env: { ...process.env, ...env } });

describe('npm run cli', () => {
  it('adds a device, prints its secret once, and stores only a hash of it', async () => {
    const dir = await tempDir('waste-cli-');
    const env = { WASTE_DATA_DIR: dir };
    const added = JSON.parse((await cli(['device', 'add', '--class', 'scales', '--id', 'WB-01', '--json'], env)).stdout) as { secret: string };
    expect(added.secret).toMatch(/^[\w-]{32}$/);
    const stored = await withRegistry(await testConfig('http://127.0.0.1:1', {}, dir), (store) => store.device('WB-01'));
    expect(stored!.secret_hash).not.toContain(added.secret);
    expect(await verifySecret(added.secret, stored!.secret_hash)).toBe(true);

    const list = (await cli(['device', 'list'], env)).stdout;
    expect(list).toMatch(/^WB-01\tscales\tenabled\t/);
    expect(list).not.toContain('scrypt');

    await cli(['device', 'disable', '--id', 'WB-01'], env);
    expect((await cli(['device', 'list'], env)).stdout).toContain('disabled');
    const rotated = (await cli(['device', 'rotate', '--id', 'WB-01', '--json'], env)).stdout;
    expect(JSON.parse(rotated).secret).not.toBe(added.secret);
    await cli(['device', 'remove', '--id', 'WB-01'], env);
    expect((await cli(['device', 'list'], env)).stdout.trim()).toBe('(no devices)');
  });

  it('provisions, renumbers, resets and clears a JT/T 808 terminal, never printing its code', async () => {
    const dir = await tempDir('waste-cli-');
    const env = { WASTE_DATA_DIR: dir };
    const config = await testConfig('http://127.0.0.1:1', {}, dir);
    const added = (await cli(['device', 'add', '--class', 'trucks', '--id', 'T1', '--jt808-phone', '013800138000', '--jt808-model', 'ZT-80', '--jt808-auth-code', 'Code-1'], env)).stdout;
    expect(added).toContain('JT/T 808: terminal 13800138000, model ZT-80, has an authentication code');
    expect(added).not.toContain('Code-1');
    const hash = await withRegistry(config, (store) => store.terminal('13800138000')!.authCodeHash!);
    expect(await verifySecret('Code-1', hash)).toBe(true);
    await cli(['device', 'add', '--class', 'trucks', '--id', 'T2'], env);
    const list = (await cli(['device', 'list'], env)).stdout;
    expect(list).toMatch(/^T1\ttrucks\tenabled\t\S+\t13800138000$/m);
    expect(list).toMatch(/^T2\ttrucks\tenabled\t\S+\t-$/m);
    expect(list).not.toContain('scrypt');
    expect(JSON.parse((await cli(['device', 'list', '--json'], env)).stdout)[0]).toMatchObject({ id: 'T1', jt808_phone: '13800138000', jt808_model: 'ZT-80', jt808_registered: true });

    const failure = (args: string[]) => cli(args, env).then(() => '', (error: { stderr: string; code: number }) => `${error.code} ${error.stderr}`);
    expect(await failure(['device', 'jt808', '--id', 'T2', '--phone', '13800138000'])).toBe('2 error: terminal phone number 13800138000 belongs to device T1 already\n');
    expect(await failure(['device', 'add', '--class', 'bins', '--id', 'B1', '--jt808-phone', '13900139000'])).toMatch(/^2 error: device B1 is of class bins; only trucks devices can be JT\/T 808 terminals/);
    expect(await failure(['device', 'jt808', '--id', 'T2'])).toMatch(/^2 error: give --phone, --model or --auth-code, or --clear/);
    expect(await failure(['device', 'jt808-reset', '--id', 'T2'])).toMatch(/^2 error: device T2 is no JT\/T 808 terminal/);
    expect(await failure(['device', 'jt808', '--id', 'T1', '--auth-code', 'two words'])).toMatch(/printable ASCII characters without spaces/);

    expect((await cli(['device', 'jt808', '--id', 'T1', '--phone', '13900139000', '--model', 'ZT-90'], env)).stdout).toBe('device T1: JT/T 808 terminal 13900139000, model ZT-90, has an authentication code\n');
    expect((await cli(['device', 'jt808-reset', '--id', 'T1'], env)).stdout).toMatch(/authentication code removed; the terminal may register again/);
    expect(await withRegistry(config, (store) => store.terminal('13900139000'))).toMatchObject({ deviceId: 'T1', authCodeHash: null, model: 'ZT-90' });
    expect((await cli(['device', 'jt808', '--id', 'T1', '--clear'], env)).stdout).toBe('device T1 is no JT/T 808 terminal\n');
    expect(await withRegistry(config, (store) => store.terminal('13900139000'))).toBeUndefined();
  });

  it('creates, lists and revokes API tokens', async () => {
    const env = { WASTE_DATA_DIR: await tempDir('waste-cli-') };
    const created = JSON.parse((await cli(['token', 'create', '--role', 'admin', '--name', 'command centre', '--json'], env)).stdout) as { id: string; token: string };
    expect(created.token).toMatch(/^wt_/);
    const list = (await cli(['token', 'list'], env)).stdout;
    expect(list).toContain(`${created.id}\tadmin\tcommand centre\t-\tactive`);
    expect(list).not.toContain(created.token);
    await cli(['token', 'revoke', '--id', created.id], env);
    expect((await cli(['token', 'list'], env)).stdout).toContain('revoked');
    const failure = await cli(['token', 'create', '--role', 'enforcement', '--name', 'x'], env).catch((e: { stderr: string }) => e.stderr);
    expect(failure).toMatch(/at least one jurisdiction/);
  });

  it('imports a registry bundle, and refuses a broken one listing every problem', async () => {
    const env = { WASTE_DATA_DIR: await tempDir('waste-cli-') };
    const first = (await cli(['import', '--file', 'docs/examples/registry-bundle.json'], env)).stdout;
    expect(first).toMatch(/trucks\s+created 1, updated 0, unchanged 0/);
    expect(first).toMatch(/secrets of the new devices \(shown once\):\n {2}\S+\t[\w-]{32}/);
    expect((await cli(['import', '--file', 'docs/examples/registry-bundle.json'], env)).stdout).toMatch(/trucks\s+created 0, updated 0, unchanged 1/);
    const failure = await cli(['import', '--file', 'package.json'], env).catch((e: { stderr: string }) => e.stderr);
    expect(failure).toMatch(/nothing was written\n {2}format: /);
  });

  it('explains what is wrong with a bad command', async () => {
    const env = { WASTE_DATA_DIR: await tempDir('waste-cli-') };
    const failure = (args: string[]) => cli(args, env).then(() => '', (error: { stderr: string; code: number }) => `${error.code} ${error.stderr}`);
    expect(await failure(['device', 'add', '--class', 'cars', '--id', 'X'])).toMatch(/^2 error: --class must be one of bins, trucks, scales/);
    expect(await failure(['device', 'add', '--class', 'bins', '--id', 'a/b'])).toMatch(/^2 error: device id "a\/b" must be/);
    expect(await failure(['device', 'rotate', '--id', 'NOPE'])).toMatch(/^2 error: no device NOPE/);
    await cli(['device', 'add', '--class', 'bins', '--id', 'B1'], env);
    expect(await failure(['device', 'add', '--class', 'bins', '--id', 'B1'])).toMatch(/exists already/);
    expect(await failure(['service', 'add', '--name', 'ops'])).toMatch(/must start with "waste-"/);
  });

  it('answers --help on every command-line tool', async () => {
    for (const script of ['services/cli.ts', 'services/main.ts', 'device-sim/publish.ts', 'device-sim/sim.ts', 'bench/ingest/run.ts', 'bench/ingest/publisher.ts', 'scripts/config-table.ts']) {
      const { stdout } = await run(process.execPath, ['--import', 'tsx', script, '--help']);
      expect(stdout, script).toMatch(/Usage:/);
    }
    expect((await run(process.execPath, ['scripts/bootstrap.mjs', '--help'])).stdout).toMatch(/Usage:/);
  });
});

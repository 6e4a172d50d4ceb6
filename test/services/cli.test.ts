// The provisioning CLI as an operator runs it.
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { verifySecret } from '../../services/broker/secrets.ts';
import { tempDir } from '../helpers/service.ts';

const run = promisify(execFile);
const cli = (args: string[], env: Record<string, string>) => run(process.execPath, ['--import', 'tsx', 'services/cli.ts', ...args], { env: { ...process.env, ...env } });

describe('npm run cli', () => {
  it('adds a device, prints its secret once, and stores only a hash of it', async () => {
    const dir = await tempDir('waste-cli-');
    const env = { WASTE_DATA_DIR: dir };
    const added = JSON.parse((await cli(['device', 'add', '--class', 'scales', '--id', 'WB-01', '--json'], env)).stdout) as { secret: string };
    expect(added.secret).toMatch(/^[\w-]{32}$/);
    const file = await fs.readFile(path.join(dir, 'devices.json'), 'utf8');
    expect(file).not.toContain(added.secret);
    const stored = (JSON.parse(file) as { devices: { secret_hash: string }[] }).devices[0]!;
    expect(await verifySecret(added.secret, stored.secret_hash)).toBe(true);
    expect((await fs.stat(path.join(dir, 'devices.json'))).mode & 0o777).toBe(0o600);

    const list = (await cli(['device', 'list'], env)).stdout;
    expect(list).toMatch(/^WB-01\tscales\tenabled\t/);
    expect(list).not.toContain('scrypt');

    await cli(['device', 'disable', '--id', 'WB-01'], env);
    expect((await cli(['device', 'list'], env)).stdout).toContain('disabled');
    const rotated = (await cli(['device', 'rotate', '--id', 'WB-01', '--json'], env)).stdout;
    expect(JSON.parse(rotated).secret).not.toBe(added.secret);
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
    for (const script of ['services/cli.ts', 'services/main.ts', 'device-sim/publish.ts', 'bench/ingest/run.ts', 'bench/ingest/publisher.ts', 'scripts/config-table.ts']) {
      const { stdout } = await run(process.execPath, ['--import', 'tsx', script, '--help']);
      expect(stdout, script).toMatch(/Usage:/);
    }
    expect((await run(process.execPath, ['scripts/bootstrap.mjs', '--help'])).stdout).toMatch(/Usage:/);
  });
});

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
    const scripts = ['services/cli.ts', 'services/main.ts', 'device-sim/publish.ts', 'device-sim/sim.ts', 'bench/ingest/run.ts', 'bench/ingest/publisher.ts', 'scripts/config-table.ts'];
    const answers = await Promise.all(scripts.map((script) => run(process.execPath, ['--import', 'tsx', script, '--help'])));
    answers.forEach(({ stdout }, i) => expect(stdout, scripts[i]).toMatch(/Usage:/));
    expect((await run(process.execPath, ['scripts/bootstrap.mjs', '--help'])).stdout).toMatch(/Usage:/);
  });
});

describe('npm run cli: LoRaWAN sensors', () => {
  it('provisions, lists, changes and clears a LoRaWAN sensor', async () => {
    const dir = await tempDir('waste-cli-');
    const env = { WASTE_DATA_DIR: dir };
    const config = await testConfig('http://127.0.0.1:1', {}, dir);
    const added = (await cli(['device', 'add', '--class', 'bins', '--id', 'B1', '--lorawan-dev-eui', '24-e1-24-13-6b-50-22-17', '--lorawan-sensor', 'milesight-em310-udl'], env)).stdout;
    expect(added).toContain('\n  LoRaWAN:  LoRaWAN sensor 24E124136B502217, model milesight-em310-udl\n');
    expect(added).not.toContain('JT/T 808:');
    const json = JSON.parse((await cli(['device', 'add', '--class', 'bins', '--id', 'B2', '--lorawan-dev-eui', 'a8:40:41:00:01:81:b3:7c', '--json'], env)).stdout) as Record<string, unknown>;
    expect(json).toMatchObject({ id: 'B2', class: 'bins', secret: expect.stringMatching(/^[\w-]{32}$/), lorawan_dev_eui: 'A84041000181B37C', lorawan_sensor: null, jt808_phone: null });
    expect(await withRegistry(config, (store) => store.lorawanDevice('24E124136B502217'))).toEqual({ deviceId: 'B1', devEui: '24E124136B502217', sensor: 'milesight-em310-udl', enabled: true });
    await cli(['device', 'add', '--class', 'bins', '--id', 'B3'], env);
    await cli(['device', 'add', '--class', 'trucks', '--id', 'T1', '--jt808-phone', '13800138000'], env);
    const list = (await cli(['device', 'list'], env)).stdout;
    expect(list).toMatch(/^B1\tbins\tenabled\t\S+\t24E124136B502217$/m);
    expect(list).toMatch(/^B2\tbins\tenabled\t\S+\tA84041000181B37C$/m);
    expect(list).toMatch(/^B3\tbins\tenabled\t\S+\t-$/m);
    expect(list).toMatch(/^T1\ttrucks\tenabled\t\S+\t13800138000$/m);
    expect(JSON.parse((await cli(['device', 'list', '--json'], env)).stdout)[0]).toMatchObject({ id: 'B1', lorawan_dev_eui: '24E124136B502217', lorawan_sensor: 'milesight-em310-udl' });

    const failure = (args: string[]) => cli(args, env).then(() => '', (error: { stderr: string; code: number }) => `${error.code} ${error.stderr}`);
    // Refusals change nothing, so they run side by side.
    const refusals = await Promise.all([
      ['device', 'lorawan', '--id', 'B3', '--dev-eui', '24:E1:24:13:6B:50:22:17'],
      ['device', 'add', '--class', 'trucks', '--id', 'T2', '--lorawan-dev-eui', '24E124136B502218'],
      ['device', 'add', '--class', 'bins', '--id', 'B4', '--lorawan-sensor', 'dragino-ldds75'],
      ['device', 'add', '--class', 'bins', '--id', 'B4', '--lorawan-dev-eui', '24E124136B50221'],
      ['device', 'add', '--class', 'bins', '--id', 'B4', '--lorawan-dev-eui', '24E124136B502218', '--lorawan-sensor', 'em310'],
      ['device', 'lorawan', '--id', 'B3', '--sensor', 'dragino-ldds75'],
      ['device', 'lorawan', '--id', 'B3'],
      ['device', 'lorawan', '--id', 'B1', '--clear', '--sensor', 'dragino-ldds75'],
    ].map(failure));
    expect(refusals[0]).toBe('2 error: DevEUI 24E124136B502217 belongs to device B1 already\n');
    expect(refusals[1]).toBe('2 error: device T2 is of class trucks; only bins devices can be LoRaWAN sensors\n');
    expect(refusals[2]).toBe('2 error: --lorawan-sensor needs --lorawan-dev-eui\n');
    expect(refusals[3]).toMatch(/^2 error: DevEUI "24E124136B50221" must be 16 hex digits/);
    expect(refusals[4]).toMatch(/^2 error: sensor model "em310" has no decoder; known models: milesight-em310-udl, milesight-em400-udl, dragino-ldds75/);
    expect(refusals[5]).toBe('2 error: device B3 has no DevEUI; give one with the sensor model\n');
    expect(refusals[6]).toBe('2 error: give --dev-eui or --sensor, or --clear\n');
    expect(refusals[7]).toBe('2 error: --clear takes no --dev-eui or --sensor\n');
    expect(await withRegistry(config, (store) => store.device('B4'))).toBeUndefined();

    expect((await cli(['device', 'lorawan', '--id', 'B3', '--dev-eui', '24e124136b502218', '--sensor', 'dragino-ldds75'], env)).stdout).toBe('device B3: LoRaWAN sensor 24E124136B502218, model dragino-ldds75\n');
    expect((await cli(['device', 'lorawan', '--id', 'B1', '--sensor', 'milesight-em400-udl', '--json'], env)).stdout).toBe('{"id":"B1","lorawan_dev_eui":"24E124136B502217","lorawan_sensor":"milesight-em400-udl"}\n');
    expect((await cli(['device', 'lorawan', '--id', 'B2', '--dev-eui', '24-E1-24-13-6B-50-22-19'], env)).stdout).toBe('device B2: LoRaWAN sensor 24E124136B502219, no sensor model (the network server decodes)\n');
    expect((await cli(['device', 'lorawan', '--id', 'B1', '--clear'], env)).stdout).toBe('device B1 is no LoRaWAN sensor\n');
    expect(await withRegistry(config, (store) => [store.lorawanDevice('24E124136B502217'), store.device('B1')])).toEqual([undefined, expect.objectContaining({ lorawan_dev_eui: null, lorawan_sensor: null })]);
    expect(await withRegistry(config, (store) => store.lorawanDevices().map((s) => [s.deviceId, s.devEui, s.sensor]).sort())).toEqual([
      ['B2', '24E124136B502219', null],
      ['B3', '24E124136B502218', 'dragino-ldds75'],
    ]);
    expect((await cli(['device', 'list'], env)).stdout).toMatch(/^B1\tbins\tenabled\t\S+\t-$/m);
  });
});

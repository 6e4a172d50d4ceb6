// The publishing CLI against the running service: valid samples land, every invalid one is
// rejected with the reason it is named after.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { invalidSamplesFor } from '../../device-sim/samples.ts';
import { startTestInfluxd, type TestInfluxd } from '../helpers/influxd.ts';
import { eventually, provision, provisionService, startTestService, testConfig, type TestService } from '../helpers/service.ts';

const run = promisify(execFile);
let influxd: TestInfluxd;
let svc: TestService;
let secrets: Record<string, string>;

beforeAll(async () => {
  influxd = await startTestInfluxd();
  const config = await testConfig(influxd.url);
  secrets = await provision(config, [['CLI-BIN', 'bins']]);
  secrets.ops = await provisionService(config, 'waste-ops');
  svc = await startTestService(config);
});
afterAll(async () => {
  await svc?.stop();
  await influxd?.cleanup();
});

const publish = (args: string[]) =>
  run(process.execPath, ['--import', 'tsx', 'device-sim/publish.ts', '--url', svc.url, '--device', 'CLI-BIN', `--secret=${secrets['CLI-BIN']!}`, '--class', 'bins', ...args]);

describe('npm run publish', () => {
  it('publishes valid readings, one by one and as a back-fill batch', async () => {
    const { stdout } = await publish(['--count', '3']);
    expect(stdout.match(/acknowledged/g)).toHaveLength(3);
    await publish(['--batch', '5']);
    expect(await eventually(() => influxd.count('bin_level', 'fill_pct', 'CLI-BIN'), (n) => n === 8)).toBe(8);
  });

  it('sends one invalid sample per reason and shows each rejection', async () => {
    const { stdout } = await publish(['--sample', 'all-invalid', '--watch-user', 'waste-ops', '--watch-secret', secrets.ops!]);
    const reasons = stdout.split('\n').filter((l) => l.startsWith('rejected ')).map((l) => JSON.parse(l.slice(9)).reason as string);
    expect(reasons.sort()).toEqual(invalidSamplesFor('bins').sort());
    expect(stdout).toContain('the service should reject it as out_of_range');
  });

  it('says why it cannot connect', async () => {
    const failure = await run(process.execPath, ['--import', 'tsx', 'device-sim/publish.ts', '--url', svc.url, '--device', 'CLI-BIN', '--secret', 'wrong', '--class', 'bins']).catch((e: { stderr: string }) => e.stderr);
    expect(failure).toMatch(/cannot connect to mqtt:\/\/127\.0\.0\.1:\d+ as CLI-BIN: .*(bad user name or password|Bad username or password)/i);
  });
});

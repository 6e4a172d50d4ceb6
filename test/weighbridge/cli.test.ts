// The command line: help, options over the config file, secrets from files and the environment
// only, one line per problem; and the entry itself for --help, a refused start and --status.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { parseCommand, UsageError } from '../../weighbridge/cli/options.ts';
import { openDb } from '../../weighbridge/store/db.ts';
import { TicketQueue } from '../../weighbridge/store/queue.ts';
import { Ledger } from '../../weighbridge/weighing/ledger.ts';
import { tempDir } from '../helpers/service.ts';

const run = promisify(execFile);
const BASE = ['--serial', '/dev/ttyUSB0', '--device-id', 'WB-SZ-01', '--direction', 'in', '--category', 'construction'];
const ENV = { WEIGHBRIDGE_SECRET: 'from-the-environment' };

function usageError(argv: string[], env: NodeJS.ProcessEnv = ENV): string {
  try {
    parseCommand(argv, env);
  } catch (error) {
    if (error instanceof UsageError) return error.message;
    throw error;
  }
  throw new Error('no error');
}

describe('parseCommand', () => {
  it('fills every default from the schema', () => {
    const command = parseCommand(BASE, ENV);
    expect(command.kind === 'run' && command.config).toMatchObject({
      input: { serial: { path: '/dev/ttyUSB0', baudRate: 9600, dataBits: 8, parity: 'none', stopBits: 1 }, idleTimeoutS: 10 },
      indicator: { format: 'xk3190-a9', unit: 'kg' },
      mqtt: { url: 'mqtt://127.0.0.1:1883', deviceId: 'WB-SZ-01', secret: 'from-the-environment', maxInFlight: 10 },
      site: { direction: 'in', category: 'construction', utcOffsetMinutes: 480 },
      stability: { count: 8, toleranceKg: 20, minKg: 500 },
      pairing: { expireAfterH: 12, plateWindowS: 120 },
      queueFile: 'data/weighbridge.db',
      page: { enabled: true, host: '127.0.0.1', port: 8090 },
    });
  });

  it('lets options override the config file, and reads the secret from its file', async () => {
    const dir = await tempDir('wb-cli-');
    const secretFile = path.join(dir, 'secret');
    fs.writeFileSync(secretFile, 's3cret-from-file\n');
    const configFile = path.join(dir, 'agent.json');
    fs.writeFileSync(
      configFile,
      JSON.stringify({
        input: { serial: { path: '/dev/ttyS0', baudRate: 4800, parity: 'even', dataBits: 7 } },
        indicator: { format: 'toledo' },
        mqtt: { url: 'mqtts://broker.example:8883', deviceId: 'WB-FILE', secretFile },
        site: { direction: 'out', category: 'construction', origin: 'site-7' },
        stability: { count: 12 },
      }),
    );
    const command = parseCommand(['--config', configFile, '--baud', '9600', '--device-id', 'WB-CLI', '--min-kg', '1000'], {});
    expect(command.kind === 'run' && command.config).toMatchObject({
      input: { serial: { path: '/dev/ttyS0', baudRate: 9600, parity: 'even', dataBits: 7 } },
      indicator: { format: 'toledo' },
      mqtt: { url: 'mqtts://broker.example:8883', deviceId: 'WB-CLI', secret: 's3cret-from-file' },
      site: { direction: 'out', origin: 'site-7' },
      stability: { count: 12, minKg: 1000, toleranceKg: 20 },
    });
    // --tcp in place of the file's serial port.
    const tcp = parseCommand(['--config', configFile, '--tcp', '192.168.1.7:8234'], {});
    expect(tcp.kind === 'run' && tcp.config.input).toMatchObject({ tcp: { host: '192.168.1.7', port: 8234 } });
    expect(tcp.kind === 'run' && tcp.config.input.serial).toBeUndefined();
  });

  it('never takes the secret from the command line or the config file', async () => {
    expect(usageError([...BASE, '--secret', 'x'])).toMatch(/Unknown option '--secret'/);
    const configFile = path.join(await tempDir('wb-cli-'), 'agent.json');
    fs.writeFileSync(configFile, JSON.stringify({ mqtt: { secret: 'inline' } }));
    expect(usageError(['--config', configFile, ...BASE])).toMatch(/mqtt.secret cannot be in the config file/);
    expect(usageError(BASE, {})).toMatch(/mqtt.secret: is required: put it in a file/);
    expect(usageError([...BASE, '--secret-file', '/nonexistent/secret'])).toMatch(/cannot read the secret file \/nonexistent\/secret/);
  });

  it('says every problem, one line each, with its option', () => {
    const message = usageError(['--serial', '/dev/ttyUSB0', '--tcp', 'box:23', '--direction', 'up', '--stable-count', 'many'], {});
    expect(message).toBe('--stable-count must be a number, not "many"');
    expect(usageError(['--tcp', 'box', ...BASE.slice(2)])).toMatch(/--tcp must be host:port/);
    expect(usageError(['--direction', 'up', '--category', 'gold', '--format', 'd2008'], {}).split('\n')).toEqual([
      'input: give exactly one of --serial or --tcp (input.serial, input.tcp)',
      expect.stringMatching(/^indicator.format \(--format\): /),
      'mqtt.deviceId (--device-id): is required',
      'mqtt.secret: is required: put it in a file (--secret-file, mqtt.secretFile) or WEIGHBRIDGE_SECRET',
      'site.direction (--direction): must be "in" or "out"',
      'site.category (--category): must be one of kitchen, recyclable, hazardous, other, construction',
    ]);
  });
});

describe('npm run weighbridge', () => {
  const entry = ['--import', 'tsx', 'weighbridge/main.ts'];

  it('prints usage with examples in Chinese and English', async () => {
    const { stdout } = await run('node', [...entry, '--help']);
    expect(stdout).toMatch(/用法 Usage: npm run weighbridge/);
    expect(stdout).toMatch(/--serial \/dev\/ttyUSB0 --baud 9600/);
    expect(stdout).toMatch(/--tcp 192\.168\.1\.7:8234 --format toledo/);
    expect(stdout).toMatch(/curl -X POST http:\/\/127\.0\.0\.1:8090\/api\/camera/);
  });

  it('refuses to start without what it needs, and exits 2', async () => {
    const failed = await run('node', [...entry, '--serial', '/dev/ttyUSB0'], { env: { ...process.env, WEIGHBRIDGE_SECRET: '' } }).catch((e: { code: number; stderr: string }) => e);
    expect(failed).toMatchObject({ code: 2, stderr: expect.stringContaining('mqtt.deviceId (--device-id): is required') });
  });

  it('--status lists what waits in the queue file', async () => {
    const file = path.join(await tempDir('wb-cli-'), 'queue.db');
    const db = openDb(file);
    const ledger = new Ledger(db, new TicketQueue(db), { ticketPrefix: 'WB-SZ-01', direction: 'in', category: 'other', utcOffsetMinutes: 480 });
    ledger.record(20_000, Date.parse('2026-11-22T08:00:00+08:00'), { plate: '苏E12345', source: 'test' });
    ledger.record(8_000, Date.parse('2026-11-22T08:20:00+08:00'), { plate: '苏E12345', source: 'test' });
    ledger.record(9_000, Date.parse('2026-11-22T09:00:00+08:00'), null);
    db.close();
    const { stdout } = await run('node', [...entry, '--status', '--queue-file', file]);
    expect(stdout).toMatch(/tickets waiting: 1, oldest queued/);
    expect(stdout).toMatch(/WB-SZ-01-20261122-[0-9A-Z]{6}-000001 {2}2026-11-22T08:20:00\.000\+08:00 {2}苏E12345 {2}net 12000 kg/);
    expect(stdout).toMatch(/open weighings: 1\n {2}#3 .* 9000 kg {2}需车牌 needs a plate/);
  });
});

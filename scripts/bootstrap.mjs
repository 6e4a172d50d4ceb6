#!/usr/bin/env node
// Runs before `npm start` and `npm test` so that each works on a fresh clone:
//  - installs the npm dependencies (npm ci) when node_modules is missing or older than the lock file;
//  - makes sure the Debian packages are installed: for the service, influxdb (unless an InfluxDB is
//    configured); with --test, influxdb, mosquitto, postgresql, rabbitmq-server and socat, the real servers and tools the
//    tests use, and docker-compose, which validates the compose file. As root it installs them with
//    apt-get; otherwise it prints the command.
// Plain JavaScript on purpose: it must run before any dependency is installed.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const forTests = process.argv.includes('--test');

if (process.argv.includes('--help')) {
  process.stdout.write('Usage: node scripts/bootstrap.mjs [--test]\nInstalls npm dependencies if needed, and influxdb from Debian for the service (with --test: influxdb, mosquitto, postgresql, rabbitmq-server, socat and docker-compose).\n');
  process.exit(0);
}

function say(message) {
  process.stderr.write(`[bootstrap] ${message}\n`);
}

function mtime(file) {
  try {
    return fs.statSync(file).mtimeMs;
  } catch {
    return 0;
  }
}

const installed = path.join(root, 'node_modules', '.package-lock.json');
if (mtime(installed) < mtime(path.join(root, 'package-lock.json'))) {
  say('installing npm dependencies (npm ci)...');
  execFileSync('npm', ['ci', '--no-audit', '--no-fund'], { cwd: root, stdio: 'inherit' });
}

function onPath(command, dirs = (process.env.PATH ?? '').split(path.delimiter).concat(['/usr/sbin', '/usr/bin'])) {
  return dirs.some((dir) => {
    try {
      fs.accessSync(path.join(dir, command), fs.constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

// Debian keeps initdb in /usr/lib/postgresql/VERSION/bin, off PATH.
function postgresInstalled() {
  if (onPath('initdb')) return true;
  try {
    return fs.readdirSync('/usr/lib/postgresql').some((version) => onPath('initdb', [path.join('/usr/lib/postgresql', version, 'bin')]));
  } catch {
    return false;
  }
}

// What each command needs from Debian: the tests run against real servers; the service needs an
// InfluxDB, and starts a private influxd when none is configured.
const wanted = forTests
  ? [
      ['influxd', 'influxdb'],
      ['mosquitto', 'mosquitto'],
      ['mosquitto_pub', 'mosquitto-clients'],
      ['initdb', 'postgresql', postgresInstalled],
      ['docker-compose', 'docker-compose'],
      ['socat', 'socat'],
      ['rabbitmq-server', 'rabbitmq-server', () => onPath('rabbitmq-server', ['/usr/lib/rabbitmq/bin'])],
    ]
  : process.env.WASTE_INFLUX_URL || process.env.WASTE_CONFIG
    ? []
    : [['influxd', 'influxdb']];
const missing = wanted.filter(([command, , installed]) => !(installed ? installed() : onPath(command)));
if (missing.length > 0) {
  const packages = [...new Set(missing.map(([, pkg]) => pkg))];
  const command = `apt-get update && apt-get install -y ${packages.join(' ')}`;
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  if (isRoot && onPath('apt-get')) {
    say(`installing ${packages.join(', ')} from Debian (${forTests ? 'the tests run against real servers' : 'the service keeps its data in InfluxDB'})...`);
    execFileSync('sh', ['-c', command], { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  } else if (forTests) {
    say(`the tests need real servers that are not installed: ${missing.map(([c]) => c).join(', ')}`);
    say(`install them with: sudo ${command}`);
    process.exit(1);
  } else {
    say(`influxd is not installed, so the service will spool data until an InfluxDB answers. Install it with: sudo ${command}`);
  }
}

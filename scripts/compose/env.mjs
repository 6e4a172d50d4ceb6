#!/usr/bin/env node
// Writes .env for the compose stack from .env.example, with a random value for every secret
// (INFLUX_ADMIN_PASSWORD, INFLUX_TOKEN, GRAFANA_ADMIN_PASSWORD, and the cluster profile's
// POSTGRES_PASSWORD, RABBITMQ_CLUSTER_COOKIE, RABBITMQ_ADMIN_PASSWORD). Leaves an existing .env alone.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';

const root = path.resolve(import.meta.dirname, '..', '..');
const { values } = parseArgs({ options: { out: { type: 'string', default: path.join(root, '.env') }, help: { type: 'boolean', short: 'h', default: false } } });
if (values.help) {
  process.stdout.write('Usage: node scripts/compose/env.mjs [--out FILE]\nWrites .env (or FILE) from .env.example with random secrets, unless it exists.\n');
  process.exit(0);
}
const target = path.resolve(values.out);
if (fs.existsSync(target)) {
  process.stdout.write(`${target} exists; nothing changed\n`);
  process.exit(0);
}
// Hex for the secrets that go into URLs (POSTGRES_PASSWORD, RABBITMQ_ADMIN_PASSWORD): nothing to escape.
const secret = (key) => (key === 'POSTGRES_PASSWORD' || key === 'RABBITMQ_ADMIN_PASSWORD' ? crypto.randomBytes(24).toString('hex') : crypto.randomBytes(32).toString('base64url'));
const text = fs
  .readFileSync(path.join(root, '.env.example'), 'utf8')
  .replace(/^(INFLUX_ADMIN_PASSWORD|INFLUX_TOKEN|GRAFANA_ADMIN_PASSWORD|POSTGRES_PASSWORD|RABBITMQ_CLUSTER_COOKIE|RABBITMQ_ADMIN_PASSWORD)=.*$/gm, (_line, key) => `${key}=${secret(key)}`);
fs.writeFileSync(target, text, { mode: 0o600 });
process.stdout.write(`wrote ${target} with random secrets; the Grafana login is admin / the GRAFANA_ADMIN_PASSWORD in it\n`);

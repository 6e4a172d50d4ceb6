// Writes the dashboards to dashboards/json/<uid>.json, where Grafana's file provider reads them
// (dashboards/provisioning/dashboards/waste.yaml). `--check` only says whether the files are up to date.
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { Dashboard } from '@grafana/schema';
import { bins } from './bins.ts';
import { commandCentre } from './command-centre.ts';
import { muckEnforcement } from './muck-enforcement.ts';
import { platform } from './platform.ts';
import { sorting } from './sorting.ts';

export const DASHBOARDS = [commandCentre, muckEnforcement, sorting, bins, platform];
export const JSON_DIR = path.join(import.meta.dirname, '..', 'json');

export const fileOf = (dashboard: Dashboard) => path.join(JSON_DIR, `${String(dashboard.uid)}.json`);
export const render = (dashboard: Dashboard) => JSON.stringify(dashboard, null, 2) + '\n';

function main(): void {
  const { values } = parseArgs({ options: { check: { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h', default: false } } });
  if (values.help) {
    console.log('usage: npm run dashboards [-- --check]\n\nWrites the Grafana dashboards (dashboards/src/*.ts) to dashboards/json/.\n  --check  write nothing; exit 1 if a file differs from its source');
    return;
  }
  const stale = [];
  fs.mkdirSync(JSON_DIR, { recursive: true });
  for (const dashboard of DASHBOARDS) {
    const file = fileOf(dashboard);
    const text = render(dashboard);
    const current = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : null;
    if (current === text) continue;
    stale.push(path.relative(process.cwd(), file));
    if (!values.check) fs.writeFileSync(file, text);
  }
  if (values.check && stale.length > 0) {
    console.error(`out of date (run npm run dashboards): ${stale.join(', ')}`);
    process.exitCode = 1;
  } else {
    console.log(stale.length ? `wrote ${stale.join(', ')}` : 'dashboards up to date');
  }
}

if (process.argv[1] === import.meta.filename) main();

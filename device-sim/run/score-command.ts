// `npm run sim -- score`: precision, recall and detection delay of the service's alerts against a
// run's labels.
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { alertSchema, type Alert } from '../../services/contract/alerts.ts';
import type { LabelRecord } from '../world/labels.ts';
import { UsageError, parseDuration } from './options.ts';
import { score, scoreTable, type RunInfo } from './score.ts';

export const SCORE_HELP = `Usage: npm run sim -- score [options]

Compares the alerts the service raised with a run's ground-truth labels and prints, per alert type,
precision, recall and detection delay (a table, or JSON with --json).

Options:
  --labels FILE        labels of the run (default data/sim/labels.jsonl); its run.json, next to it,
                       maps wall-clock alert times to simulated time for the delay
  --api URL            read the alerts from the service's API (GET /api/v1/alerts) ...
  --token T            ... with this token (any role that may read alerts)
  --alerts FILE        ... or from a file: JSON Lines or a JSON array of alerts as published on
                       waste/alerts/{jurisdiction}/{type} (duplicates by id are counted once)
  --tolerance D        how far apart an alert and a label may be and still match (default 120s)
  --json               print the figures as one JSON object
  -h, --help

Example:
  npm run sim -- score --api http://127.0.0.1:8080 --token wt_...
`;

function readJsonRecords(file: string): unknown[] {
  const text = fs.readFileSync(file, 'utf8').trim();
  if (text.startsWith('[')) return JSON.parse(text) as unknown[];
  return text
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line, i) => {
      try {
        return JSON.parse(line) as unknown;
      } catch {
        throw new UsageError(`${file} line ${i + 1} is not JSON`);
      }
    });
}

/** Every alert the API holds that overlaps the run, page by page. */
async function alertsFromApi(api: string, token: string, from: string, to: string): Promise<unknown[]> {
  const items: unknown[] = [];
  for (let offset = 0; ; ) {
    const url = new URL('/api/v1/alerts', api);
    url.search = new URLSearchParams({ from, to, limit: '500', offset: String(offset) }).toString();
    const response = await fetch(url, { headers: { authorization: `Bearer ${token}` } }).catch((error: Error) => {
      throw new UsageError(`cannot reach ${api}: ${error.message}`);
    });
    if (!response.ok) throw new UsageError(`GET ${url.pathname} answered ${response.status}: ${await response.text()}`);
    const page = (await response.json()) as { items: unknown[]; total: number };
    items.push(...page.items);
    offset += page.items.length;
    if (page.items.length === 0 || offset >= page.total) return items;
  }
}

export async function scoreCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      labels: { type: 'string', default: 'data/sim/labels.jsonl' },
      api: { type: 'string' },
      token: { type: 'string' },
      alerts: { type: 'string' },
      tolerance: { type: 'string', default: '120s' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(SCORE_HELP);
    return 0;
  }
  if (!values.api === !values.alerts) throw new UsageError('give either --api URL --token T or --alerts FILE');
  if (!fs.existsSync(values.labels)) throw new UsageError(`no labels at ${values.labels}; run the simulator first (npm run sim -- run)`);
  const labels = readJsonRecords(values.labels) as LabelRecord[];
  const runFile = path.join(path.dirname(values.labels), 'run.json');
  const run = fs.existsSync(runFile) ? (JSON.parse(fs.readFileSync(runFile, 'utf8')) as RunInfo & { end: string }) : null;
  let raw: unknown[];
  if (values.api) {
    if (!values.token) throw new UsageError('--api needs --token');
    const from = run?.start ?? labels.reduce((m, l) => (l.start < m ? l.start : m), labels[0]?.start ?? new Date(0).toISOString());
    raw = await alertsFromApi(values.api, values.token, from, new Date().toISOString());
  } else raw = readJsonRecords(values.alerts!);
  const byId = new Map<string, Alert>();
  let invalid = 0;
  for (const record of raw) {
    const parsed = alertSchema.safeParse(record);
    if (parsed.success) byId.set(parsed.data.id, parsed.data);
    else invalid++;
  }
  const result = score(labels, [...byId.values()], run, parseDuration(values.tolerance, 'tolerance') / 1000);
  if (values.json) process.stdout.write(`${JSON.stringify({ ...result, alertsRead: raw.length, alertsInvalid: invalid })}\n`);
  else {
    process.stdout.write(scoreTable(result));
    if (invalid > 0) process.stdout.write(`${invalid} records were not alerts in the contract's shape and were left out\n`);
  }
  return 0;
}

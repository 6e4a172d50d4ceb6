// `npm run sim -- <command>`: the city simulator. So far: `city`, which generates a city and
// imports it into a running service.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { hashSecret } from '../services/broker/secrets.ts';
import { DEFAULT_CITY, generateCity } from './city/generate.ts';

const HELP = `Usage: npm run sim -- city [options]

Generates a city, deterministic from its seed and sizes, as a registry bundle plus its road
network, and imports it into a running service when --api is given. Every simulated device uses
the city's secret (derived from the seed, or --secret), so the simulator can log in as any of them.

Options:
  --seed S                 (default ${DEFAULT_CITY.seed})
  --trucks N               muck trucks (default ${DEFAULT_CITY.trucks})
  --collection-trucks N    (default ${DEFAULT_CITY.collectionTrucks})
  --bins N                 (default ${DEFAULT_CITY.bins})
  --sites N                construction sites, one permit each (default ${DEFAULT_CITY.constructionSites})
  --start YYYY-MM-DD       first day of the permits (default ${DEFAULT_CITY.startDate})
  --secret S               the devices' secret (default: derived from the seed)
  --out DIR                where to write registry-bundle.json, roads.json, city.json (default data/sim)
  --api URL --token T      import into the service at URL (e.g. http://127.0.0.1:8080) with an
                           integrator or admin token
  -h, --help

Example:
  npm run sim -- city --seed 7 --trucks 100 --bins 2000 --api http://127.0.0.1:8080 --token wt_...
`;

function fail(message: string): never {
  process.stderr.write(`error: ${message}\n`);
  process.exit(2);
}

function count(value: string | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) fail(`--${name} must be a whole number`);
  return n;
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      seed: { type: 'string' },
      trucks: { type: 'string' },
      'collection-trucks': { type: 'string' },
      bins: { type: 'string' },
      sites: { type: 'string' },
      start: { type: 'string' },
      secret: { type: 'string' },
      out: { type: 'string', default: 'data/sim' },
      api: { type: 'string' },
      token: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help || positionals[0] !== 'city') {
    process.stdout.write(HELP);
    if (!values.help) process.exitCode = 2;
    return;
  }
  if (values.start !== undefined && !/^\d{4}-\d{2}-\d{2}$/.test(values.start)) fail('--start must be YYYY-MM-DD');
  if (values.api && !values.token) fail('--api needs --token (an integrator or admin token: npm run cli -- token create --role integrator --name sim)');
  const seed = values.seed ?? String(DEFAULT_CITY.seed);
  const city = generateCity({
    seed,
    trucks: count(values.trucks, DEFAULT_CITY.trucks, 'trucks'),
    collectionTrucks: count(values['collection-trucks'], DEFAULT_CITY.collectionTrucks, 'collection-trucks'),
    bins: count(values.bins, DEFAULT_CITY.bins, 'bins'),
    constructionSites: Math.max(1, count(values.sites, DEFAULT_CITY.constructionSites, 'sites')),
    startDate: values.start ?? DEFAULT_CITY.startDate,
  });
  const secret = values.secret ?? crypto.createHash('sha256').update(`waste-sim-city:${seed}`).digest('base64url').slice(0, 32);
  const secretHash = await hashSecret(secret);
  for (const device of city.bundle.devices as { secret_hash?: string }[]) device.secret_hash = secretHash;

  fs.mkdirSync(values.out, { recursive: true });
  fs.writeFileSync(path.join(values.out, 'registry-bundle.json'), JSON.stringify(city.bundle));
  fs.writeFileSync(path.join(values.out, 'roads.json'), JSON.stringify(city.roads));
  fs.writeFileSync(path.join(values.out, 'city.json'), JSON.stringify({ options: city.options, secret }, null, 2), { mode: 0o600 });
  const sizes = ['devices', 'trucks', 'bins', 'communities', 'sites', 'permits'].map((name) => `${(city.bundle[name] as unknown[]).length} ${name}`).join(', ');
  process.stdout.write(`city ${seed}: ${sizes}; ${city.roads.nodes.length} intersections, ${city.roads.edges.length} road segments\nwritten to ${values.out}/ (the devices' secret is in city.json)\n`);

  if (values.api) {
    const response = await fetch(new URL('/api/v1/import', values.api), {
      method: 'POST',
      headers: { authorization: `Bearer ${values.token}`, 'content-type': 'application/json' },
      body: JSON.stringify(city.bundle),
    }).catch((error: Error) => fail(`cannot reach ${values.api}: ${error.message}`));
    const body = (await response.json()) as { counts?: Record<string, { created: number; updated: number; unchanged: number }>; error?: { message: string; problems?: { path: unknown[]; message: string }[] } };
    if (!response.ok) {
      fail(`import refused (${response.status}): ${body.error?.message ?? ''}\n${(body.error?.problems ?? []).map((p) => `  ${p.path.join('.')}: ${p.message}`).join('\n')}`);
    }
    const lines = Object.entries(body.counts ?? {}).map(([name, c]) => `  ${name.padEnd(14)} created ${c.created}, updated ${c.updated}, unchanged ${c.unchanged}`);
    process.stdout.write(`imported into ${values.api}:\n${lines.join('\n')}\n`);
  }
}

await main();

// `npm run sim -- city`: generates a city and imports it into a running service.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { hashSecret } from '../../services/broker/secrets.ts';
import { DEFAULT_CITY, generateCity, type City } from '../city/generate.ts';
import { cityAuthCode } from '../city/terminals.ts';
import { UsageError, wholeNumber } from './options.ts';

export const CITY_HELP = `Usage: npm run sim -- city [options]

Generates a city, deterministic from its seed and sizes, as a registry bundle plus its road
network, and imports it into a running service when --api is given. Every simulated device uses
the city's secret (derived from the seed, or --secret), so the simulator can log in as any of them.
Every truck's GPS unit is also a JT/T 808 terminal (for \`run --truck-protocol jt808\`): its
phone number (147 and eight digits, from the seed) and model WASTE-SIM are in the bundle, with the
hash of one authentication code for the city's terminals, derived from the secret.
Every bin sensor is also a LoRaWAN end device (for \`run --bin-transport chirpstack\`): its
DevEUI (025753 and five bytes, from the seed) is in the bundle, and every other one (even
ordinals) is a Milesight EM400-UDL; the rest have no sensor model.

Options:
  --seed S                 (default ${DEFAULT_CITY.seed})
  --trucks N               muck trucks; one in twenty has no permit (default ${DEFAULT_CITY.trucks})
  --collection-trucks N    (default ${DEFAULT_CITY.collectionTrucks})
  --bins N                 (default ${DEFAULT_CITY.bins})
  --sites N                construction sites, one permit each (default ${DEFAULT_CITY.constructionSites})
  --start YYYY-MM-DD       first day of the permits, which run 120 days (default: 30 days ago)
  --secret S               the devices' secret (default: derived from the seed)
  --out DIR                where to write registry-bundle.json, roads.json, city.json (default data/sim)
  --api URL --token T      import into the service at URL (e.g. http://127.0.0.1:8080) with an
                           integrator or admin token
  -h, --help

Example:
  npm run sim -- city --seed 7 --trucks 100 --bins 2000 --api http://127.0.0.1:8080 --token wt_...
`;

export interface CityFiles {
  city: City;
  secret: string;
}

/** Generates the city and writes its files; the devices' secret is hashed once for all of them. */
export async function writeCity(options: Partial<City['options']>, out: string, secret?: string): Promise<CityFiles> {
  const city = generateCity(options);
  const deviceSecret = secret ?? crypto.createHash('sha256').update(`waste-sim-city:${city.options.seed}`).digest('base64url').slice(0, 32);
  const secretHash = await hashSecret(deviceSecret);
  // The trucks' terminals share one authentication code as all devices share one secret (terminals.ts says why).
  const authCodeHash = await hashSecret(cityAuthCode(deviceSecret));
  for (const device of city.bundle.devices as { secret_hash?: string; jt808_phone?: string; jt808_auth_code_hash?: string }[]) {
    device.secret_hash = secretHash;
    if (device.jt808_phone !== undefined) device.jt808_auth_code_hash = authCodeHash;
  }
  fs.mkdirSync(out, { recursive: true });
  fs.writeFileSync(path.join(out, 'registry-bundle.json'), JSON.stringify(city.bundle));
  fs.writeFileSync(path.join(out, 'roads.json'), JSON.stringify(city.roads));
  fs.writeFileSync(path.join(out, 'city.json'), JSON.stringify({ options: city.options, secret: deviceSecret }, null, 2), { mode: 0o600 });
  return { city, secret: deviceSecret };
}

/** POSTs the bundle to the service's import endpoint; returns the report lines. */
export async function importCity(api: string, token: string, bundle: City['bundle']): Promise<string> {
  const response = await fetch(new URL('/api/v1/import', api), {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify(bundle),
  }).catch((error: Error) => {
    throw new UsageError(`cannot reach ${api}: ${error.message}; is the service running (npm start)?`);
  });
  const body = (await response.json()) as { counts?: Record<string, { created: number; updated: number; unchanged: number }>; error?: { message: string; problems?: { path: unknown[]; message: string }[] } };
  if (!response.ok) {
    throw new Error(`import refused (${response.status}): ${body.error?.message ?? ''}\n${(body.error?.problems ?? []).map((p) => `  ${p.path.join('.')}: ${p.message}`).join('\n')}`);
  }
  return Object.entries(body.counts ?? {})
    .map(([name, c]) => `  ${name.padEnd(14)} created ${c.created}, updated ${c.updated}, unchanged ${c.unchanged}`)
    .join('\n');
}

export async function cityCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
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
  if (values.help) {
    process.stdout.write(CITY_HELP);
    return 0;
  }
  if (values.start !== undefined && !/^\d{4}-\d{2}-\d{2}$/.test(values.start)) throw new UsageError('--start must be YYYY-MM-DD');
  if (values.api && !values.token) throw new UsageError('--api needs --token (an integrator or admin token: npm run cli -- token create --role integrator --name sim)');
  const seed = values.seed ?? String(DEFAULT_CITY.seed);
  const { city } = await writeCity(
    {
      seed,
      trucks: wholeNumber(values.trucks, DEFAULT_CITY.trucks, 'trucks'),
      collectionTrucks: wholeNumber(values['collection-trucks'], DEFAULT_CITY.collectionTrucks, 'collection-trucks'),
      bins: wholeNumber(values.bins, DEFAULT_CITY.bins, 'bins'),
      constructionSites: Math.max(1, wholeNumber(values.sites, DEFAULT_CITY.constructionSites, 'sites')),
      startDate: values.start ?? new Date(Date.now() - 30 * 86_400_000).toISOString().slice(0, 10),
    },
    values.out,
    values.secret,
  );
  const sizes = ['devices', 'trucks', 'bins', 'communities', 'sites', 'permits'].map((name) => `${(city.bundle[name] as unknown[]).length} ${name}`).join(', ');
  process.stdout.write(`city ${seed}: ${sizes}; ${city.roads.nodes.length} intersections, ${city.roads.edges.length} road segments\nwritten to ${values.out}/ (the devices' secret is in city.json)\n`);
  if (values.api) process.stdout.write(`imported into ${values.api}:\n${await importCity(values.api, values.token!, city.bundle)}\n`);
  return 0;
}

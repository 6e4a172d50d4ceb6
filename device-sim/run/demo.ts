// `npm run demo`: the service and a small simulated city in one process, so that data flows,
// violations happen and alerts fire within a minute of starting. Uses its own data directory (data/demo) and an
// admin token it prints; Ctrl-C stops both.
import path from 'node:path';
import { parseArgs } from 'node:util';
import { TelemetryService } from '../../services/app.ts';
import { loadConfig } from '../../services/config/load.ts';
import { createLogger } from '../../services/log.ts';
import { parseNoise } from './options.ts';
import { importCity, writeCity } from './city-command.ts';
import { simulate } from './run-command.ts';
import { parseRates, uniformRates } from '../world/violations.ts';

export const DEMO_HELP = `Usage: npm run demo [-- options]

Starts the service (embedded broker, API, InfluxDB: a private influxd if none answers) with its data
in data/demo, imports a small generated city (20 muck trucks, 6 collection trucks, 150 bins), and
runs it: the last half hour at 30x, then in real time, with violations at 15 % so that some happen
in the first minute. Each alert the rules raise is printed as it is raised. The demo's permits allow hauling around the clock, so trucks move at any hour. Prints the API token and what to look at. Ctrl-C stops it.

Options:
  --data-dir DIR     (default data/demo; WASTE_DATA_DIR also works)
  --seed S           the city's seed (default demo)
  -h, --help

Every service setting can be changed as for npm start (WASTE_* variables, --config is not read).
`;

export async function demoCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { 'data-dir': { type: 'string' }, seed: { type: 'string', default: 'demo' }, help: { type: 'boolean', short: 'h' } } });
  if (values.help) {
    process.stdout.write(DEMO_HELP);
    return 0;
  }
  const dataDir = values['data-dir'] ?? process.env.WASTE_DATA_DIR ?? 'data/demo';
  const config = loadConfig({ env: { ...process.env, WASTE_DATA_DIR: dataDir } });
  const log = createLogger(process.env.WASTE_LOG_LEVEL ?? 'warn');
  const service = new TelemetryService(config, log);
  const started = await service.start();
  try {
    if (started.apiPort === null) throw new Error('the demo needs the API: set WASTE_API_PORT to a port, not 0');
    for (const t of service.tokens.list()) if (t.name === 'demo') service.tokens.revoke(t.id);
    const { token } = service.tokens.create({ name: 'demo', role: 'admin' });
    const api = `http://127.0.0.1:${started.apiPort}`;
    const cityDir = path.join(dataDir, 'sim');
    const { city, secret } = await writeCity(
      { seed: values.seed, trucks: 20, collectionTrucks: 6, bins: 150, constructionSites: 5, permitWindows: [{ from: '00:00', to: '23:59' }], startDate: new Date(Date.now() - 30 * 86_400_000).toISOString().slice(0, 10) },
      cityDir,
    );
    await importCity(api, token, city.bundle);
    const now = Date.now();
    process.stdout.write(
      [
        '',
        `Demo city "${values.seed}" is running (data in ${dataDir}/).`,
        `  MQTT broker   mqtt://127.0.0.1:${started.mqttPort}   (devices log in with the secret in ${cityDir}/city.json)`,
        `  HTTP API      ${api}/docs`,
        `  admin token   ${token}`,
        '',
        'Try:',
        `  curl -s -H 'authorization: Bearer ${token}' ${api}/api/v1/positions | head -c 600`,
        `  curl -s -H 'authorization: Bearer ${token}' '${api}/api/v1/bin-levels?limit=5'`,
        `  curl -s -H 'authorization: Bearer ${token}' '${api}/api/v1/alerts?limit=5'`,
        `  curl -N -H 'authorization: Bearer ${token}' ${api}/api/v1/alerts/stream`,
        `  curl -s -H 'authorization: Bearer ${token}' ${api}/api/v1/spillage/hotspots`,
        `  npm run sim -- score --labels ${cityDir}/labels.jsonl --api ${api} --token ${token}`,
        '',
      ].join('\n') + '\n',
    );
    service.alerts.subscribe(({ change, alert }) => {
      if (change !== 'raised') return;
      const where = alert.jurisdictions.join(', ') || 'no jurisdiction';
      process.stdout.write(`alert  ${alert.type.padEnd(20)} ${alert.subject.plate ?? alert.subject.id}  ${where}  since ${new Date(alert.started_at).toISOString()}  ${alert.id}\n`);
    });
    const result = await simulate({
      city: { ...city, seed: values.seed, secret },
      cityDir,
      url: config.broker.url || `mqtt://127.0.0.1:${started.mqttPort}`,
      seed: values.seed,
      start: now - 30 * 60_000,
      end: Infinity,
      speed: 30,
      dryRun: false,
      rates: parseRates('all=0.15', uniformRates(0)),
      noise: parseNoise(undefined),
      labelsPath: path.join(cityDir, 'labels.jsonl'),
      maxInFlight: 2000,
      progressEveryMs: 5000,
    });
    return result.undelivered > 0 ? 1 : 0;
  } finally {
    await service.stop();
  }
}

// `npm start`: broker and ingest in one process, or one part of the service with --role
// (docs/deployment.md). SIGINT/SIGTERM stop it cleanly: the API ends its
// event streams and cuts off what its clients still hold open after api.stopGraceMs, the broker
// closes its sessions, the spool is flushed and delivered for a few seconds, and it exits 0.
import { parseArgs } from 'node:util';
import { TelemetryService } from './app.ts';
import { ConfigError, loadConfig } from './config/load.ts';
import { createLogger } from './log.ts';

const HELP = `Usage: npm start [-- --config FILE] [--role ROLES]

Runs the embedded MQTT broker (or the ingest worker for an external broker) and the JT/T 808
gateway for truck terminals, and writes validated telemetry to InfluxDB through a durable spool.

Options:
  --config FILE   JSON configuration file (also WASTE_CONFIG); keys and defaults in the README
  --role ROLES    all (the default), or a comma-separated list of:
                    api        the HTTP API; any number behind a load balancer
                    ingest     device sources, validation, spool, rules and alerts
                    scheduler  separation-rate job, webhook delivery, open-alert counts;
                               one active at a time, the others standing by
                  (also WASTE_ROLE). Roles apart share PostgreSQL: WASTE_DATABASE_URL=postgres://...
  -h, --help      show this help

Every key can be set by environment variable, e.g. WASTE_BROKER_PORT=1884, WASTE_INFLUX_URL=...
Devices: npm run cli -- device add --class trucks --id TRUCK-001
JT/T 808 terminals: npm run cli -- device add --class trucks --id TRUCK-002 --jt808-phone 13800138000
`;

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { config: { type: 'string' }, role: { type: 'string' }, help: { type: 'boolean', short: 'h' } } });
  if (values.help) {
    process.stdout.write(HELP);
    return;
  }
  let config;
  try {
    config = loadConfig({ file: values.config, overrides: values.role === undefined ? {} : { role: values.role } });
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`${error.message}\n`);
      process.exit(2);
    }
    throw error;
  }
  const log = createLogger(config.logLevel);
  const service = new TelemetryService(config, log);
  let stopping = false;
  const stop = async (signal: string): Promise<void> => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'stopping');
    try {
      await service.stop();
      log.info('stopped');
      process.exit(0);
    } catch (error) {
      log.error({ error: (error as Error).message }, 'error while stopping');
      process.exit(1);
    }
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
  try {
    const started = await service.start();
    log.info({ ...started, role: config.role, dataDir: config.dataDir, registry: service.registry.where }, 'service ready');
  } catch (error) {
    const err = error as NodeJS.ErrnoException & { port?: number };
    const hint =
      err.code === 'EADDRINUSE'
        ? ` (another program already listens on port ${err.port ?? '?'}: stop it, or move this service with WASTE_BROKER_PORT, WASTE_BROKER_WS_PORT, WASTE_JT808_PORT or WASTE_API_PORT)`
        : '';
    log.fatal({ error: err.message }, `could not start${hint}`);
    process.exit(1);
  }
}

await main();

// The real service in-process: embedded broker on free ports, a temp data directory, a real InfluxDB.
import mqtt, { type MqttClient } from 'mqtt';
import { TelemetryService, type StartedService } from '../../services/app.ts';
import { loadConfig } from '../../services/config/load.ts';
import type { Config } from '../../services/config/schema.ts';
import type { DeviceClass } from '../../services/contract/topics.ts';
import { createLogger } from '../../services/log.ts';
import { RegistryDb } from '../../services/registry/db.ts';
import { DeviceStore } from '../../services/registry/devices.ts';
import { freePort } from './ports.ts';
import { tempDir } from './temp.ts';

export interface TestService {
  service: TelemetryService;
  config: Config;
  ports: StartedService;
  url: string;
  dataDir: string;
  stop(): Promise<void>;
}

export { tempDir } from './temp.ts';

/** Config for a test: free ports, temp data dir, the given InfluxDB, no private influxd. */
export async function testConfig(influxUrl: string, overrides: Record<string, unknown> = {}, dataDir?: string): Promise<Config> {
  const dir = dataDir ?? (await tempDir('waste-service-'));
  return loadConfig({
    env: {},
    overrides: {
      dataDir: dir,
      'broker.host': '127.0.0.1',
      'broker.port': 0,
      'broker.wsPort': await freePort(),
      'jt808.port': 0,
      'api.port': 0,
      'influx.url': influxUrl,
      'influx.startPrivate': false,
      'spool.retryMinMs': 100,
      'spool.retryMaxMs': 500,
      ...overrides,
    },
  });
}

export async function startTestService(config: Config): Promise<TestService> {
  const service = new TelemetryService(config, createLogger(process.env.TEST_LOG_LEVEL ?? 'silent'));
  const ports = await service.start();
  return {
    service,
    config,
    ports,
    url: `mqtt://127.0.0.1:${ports.mqttPort}`,
    dataDir: config.dataDir,
    stop: () => service.stop(),
  };
}

/** Adds devices to the registry of `config` (a connection of its own, as the CLI would). */
export async function provision(config: Config, devices: [string, DeviceClass][]): Promise<Record<string, string>> {
  return withRegistry(config, async (store) => {
    const secrets: Record<string, string> = {};
    for (const [id, deviceClass] of devices) secrets[id] = await store.add(id, deviceClass);
    return secrets;
  });
}

export async function provisionService(config: Config, name: string): Promise<string> {
  return withRegistry(config, (store) => store.addService(name));
}

export async function withRegistry<T>(config: Config, work: (store: DeviceStore) => Promise<T> | T): Promise<T> {
  const db = new RegistryDb(config.database.url || config.registry.file);
  db.open();
  try {
    return await work(new DeviceStore(db));
  } finally {
    db.close();
  }
}

export function connectDevice(url: string, deviceId: string, secret: string, options: mqtt.IClientOptions = {}): Promise<MqttClient> {
  return mqtt.connectAsync(url, { username: deviceId, password: secret, clientId: `${deviceId}-${Math.random().toString(16).slice(2, 8)}`, reconnectPeriod: 0, ...options });
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Polls until the check passes, and returns the value that passed it; fails (the test) when the
 * time is up, saying what was probed last: a wait that ran out must not let a test go on as if it
 * had not.
 */
export async function eventually<T>(probe: () => Promise<T>, ok: (value: T) => boolean, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let value = await probe();
  while (!ok(value)) {
    if (Date.now() >= deadline) {
      const last = typeof value === 'string' ? value : JSON.stringify(value, (_key, v: unknown) => (v instanceof Map ? [...v] : v instanceof Set ? [...v] : v));
      throw new Error(`still not so after ${timeoutMs} ms; last probed: ${String(last).slice(-800)}`);
    }
    await new Promise((r) => setTimeout(r, 100));
    value = await probe();
  }
  return value;
}

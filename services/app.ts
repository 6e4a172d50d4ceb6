// Wires the services of one process: the registry and its HTTP API, spool → shipper → InfluxDB,
// the ingest pipeline, and either the embedded broker (default) or the ingest worker on an
// external broker. Nothing happens in the constructor; start() and stop() do the I/O.
import fs from 'node:fs';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import type { Logger } from 'pino';
import { AlertService } from './alerts/alert-service.ts';
import { MqttAlertOutput } from './alerts/mqtt-output.ts';
import type { WebhookTargets } from './alerts/webhooks.ts';
import { buildApp } from './api/app.ts';
import { EmbeddedBroker } from './broker/broker.ts';
import type { Config } from './config/schema.ts';
import type { MessageBus } from './contract/source.ts';
import { REJECTED_TOPIC } from './contract/topics.ts';
import { InfluxStore, InfluxUnreachableError } from './influx/client.ts';
import { PRIVATE_INFLUXD_NICENESS, findOnPath, superviseInfluxd, type InfluxdProcess } from './influx/influxd.ts';
import { TelemetryReader } from './influx/reader.ts';
import { MqttIngestWorker } from './ingest/mqtt-worker.ts';
import { IngestPipeline } from './ingest/pipeline.ts';
import { StatsReporter } from './ingest/stats-reporter.ts';
import { CityIndex } from './registry/city-index.ts';
import { RegistryDb } from './registry/db.ts';
import { DeviceStore } from './registry/devices.ts';
import { EntityStore } from './registry/entity-store.ts';
import { readProvisioningFile } from './registry/provisioning-file.ts';
import { TokenStore } from './registry/tokens.ts';
import { RulesService } from './rules/rules-service.ts';
import { SortingService } from './sorting/sorting-service.ts';
import { SortingStore } from './sorting/sorting-store.ts';
import { StateSnapshots } from './state/snapshots.ts';
import { ServiceMetrics } from './metrics/metrics.ts';
import { Shipper } from './spool/shipper.ts';
import { Spool } from './spool/spool.ts';

/** How long stop() keeps delivering the spool to InfluxDB before leaving the rest for next time. */
const STOP_DRAIN_MS = 5000;
/** How long start() waits for the spool's backlog to reach InfluxDB before the rules replay history. */
const REPLAY_WAIT_MS = 10_000;

export interface StartedService {
  mqttPort: number | null;
  wsPort: number | null;
  apiPort: number | null;
  influxUrl: string;
}

export class TelemetryService {
  readonly spool: Spool;
  readonly influx: InfluxStore;
  readonly shipper: Shipper;
  readonly pipeline: IngestPipeline;
  readonly registry: RegistryDb;
  readonly devices: DeviceStore;
  readonly entities: EntityStore;
  readonly tokens: TokenStore;
  /** The registry in memory that the rules, the sorting job and the snapshots read; started and stopped here. */
  readonly city: CityIndex;
  readonly alerts: AlertService;
  readonly rules: RulesService;
  readonly sorting: SortingService;
  readonly reader: TelemetryReader;
  readonly metrics: ServiceMetrics;
  private influxReachable = false;
  private api: Awaited<ReturnType<typeof buildApp>> | null = null;
  private broker: EmbeddedBroker | null = null;
  private worker: MqttIngestWorker | null = null;
  private privateInfluxd: InfluxdProcess | null = null;
  private readonly stats: StatsReporter;
  private readonly snapshots: StateSnapshots;

  constructor(
    private readonly config: Config,
    private readonly log: Logger,
  ) {
    this.spool = new Spool(config.spool);
    this.influx = new InfluxStore(config.influx);
    this.shipper = new Shipper(
      this.spool,
      this.influx,
      { ...config.spool, deadLetterDir: path.join(config.dataDir, 'dead-letter') },
      log.child({ service: 'shipper' }),
    );
    this.pipeline = new IngestPipeline(this.spool, config.ingest, log.child({ service: 'ingest' }));
    this.registry = new RegistryDb(config.registry.file);
    this.devices = new DeviceStore(this.registry);
    this.entities = new EntityStore(this.registry, undefined, config.registry);
    this.tokens = new TokenStore(this.registry);
    this.reader = new TelemetryReader(this.influx);
    this.city = new CityIndex(this.registry, this.entities);
    const writeLines = (lines: string) => this.spool.append(lines);
    // Alerts go out on the broker that start() runs or connects to; before that, nowhere.
    const bus: MessageBus = {
      publish: (topic, payload, options) => (this.broker ?? this.worker)?.publish(topic, payload, options) ?? Promise.resolve(),
    };
    const alertsLog = log.child({ service: 'alerts' });
    this.alerts = new AlertService({ db: this.registry, config: config.alerts, evidenceMax: config.rules.evidenceMax, outputs: [new MqttAlertOutput(bus, alertsLog)], writeLines, log: alertsLog });
    reserveOwnEndpoints(this.alerts.deliverer.targets, config);
    this.metrics = new ServiceMetrics({
      ingest: this.pipeline,
      spool: this.spool,
      shipper: this.shipper,
      alertsRaised: this.alerts.raised,
      openAlerts: () => this.alerts.store.openCounts(),
      webhookOutboxDepth: () => this.alerts.webhooks.pendingCount(),
      connectedClients: () => this.broker?.connectedClients() ?? null,
    });
    this.shipper.observeWrites((ms) => this.metrics.observeWrite(ms));
    this.rules = new RulesService({
      db: this.registry,
      city: this.city,
      config: config.rules,
      onFinding: (finding) => this.alerts.onFinding(finding),
      writeLines,
      log: log.child({ service: 'rules' }),
      onEvaluated: (ms) => this.metrics.observeRules(ms),
    });
    if (config.rules.enabled) this.pipeline.onReadings((readings) => this.rules.consume(readings));
    this.sorting = new SortingService({
      config: config.sorting,
      store: new SortingStore(this.registry, config.sorting),
      entities: this.entities,
      reader: this.reader,
      delivered: (timeoutMs) => this.shipper.drained(timeoutMs),
      city: this.city,
      writeLines,
      onFinding: (finding) => this.alerts.onFinding(finding),
      log: log.child({ service: 'sorting' }),
    });
    this.pipeline.onReadings((readings) => this.sorting.consume(readings));
    this.snapshots = new StateSnapshots({
      city: this.city,
      source: {
        latestFixes: () => this.rules.latestFixes(),
        latestBinSample: (deviceId) => this.rules.latestBinSample(deviceId),
        binForecast: (deviceId) => this.rules.binForecast(deviceId),
        openAlertCounts: () => this.alerts.store.openCounts(),
        ongoing: (types) => this.alerts.store.ongoing(types),
      },
      options: { ...config.snapshots, movingKmh: config.rules.movingKmh, loadedKg: config.rules.loadedKg },
      writeLines,
      log: log.child({ service: 'snapshots' }),
    });
    this.stats = new StatsReporter(this.pipeline, this.spool, this.shipper, config.ingest.statsIntervalMs, log.child({ service: 'stats' }));
  }

  /** Starts everything; on failure, stops what did start before rethrowing. */
  async start(): Promise<StartedService> {
    try {
      return await this.startAll();
    } catch (error) {
      await this.stop().catch(() => {});
      throw error;
    }
  }

  private async startAll(): Promise<StartedService> {
    this.registry.open();
    this.takeOverProvisioningFile();
    await this.spool.open();
    const backlog = this.spool.backlogBytes();
    if (backlog > 0) this.log.info({ backlogBytes: backlog, dir: this.config.spool.dir }, 'spool holds undelivered data from before; delivering it first');
    await this.connectInflux();
    this.shipper.start();
    this.city.start();
    if (this.config.rules.enabled) await this.startRules();
    this.alerts.start();
    this.sorting.start();

    const ports = this.config.broker.url ? await this.startWorker() : await this.startBroker();
    const apiPort = await this.startApi();
    this.stats.start();
    this.snapshots.start();
    return { ...ports, apiPort, influxUrl: this.influx.url };
  }

  /** Starts the rules once the spool's backlog is in InfluxDB, so their replay of history sees it. */
  private async startRules(): Promise<void> {
    if (this.influxReachable) await this.shipper.drained(REPLAY_WAIT_MS);
    await this.rules.start(this.influxReachable ? this.reader : null);
  }

  private async startWorker(): Promise<{ mqttPort: null; wsPort: null }> {
    const worker = new MqttIngestWorker({ url: this.config.broker.url, ...this.config.ingest }, this.pipeline, this.log.child({ service: 'ingest-worker' }));
    this.worker = worker;
    await worker.start();
    return { mqttPort: null, wsPort: null };
  }

  private async startBroker(): Promise<{ mqttPort: number; wsPort: number | null }> {
    if (this.devices.list({ limit: 1 }).total === 0) {
      this.log.warn({ registry: this.config.registry.file }, 'no devices provisioned yet: add one with "npm run cli -- device add --class trucks --id TRUCK-001"');
    }
    const broker = new EmbeddedBroker({
      config: this.config.broker,
      credentials: this.devices,
      log: this.log.child({ service: 'broker' }),
    });
    this.broker = broker;
    // Devices disabled, rotated or removed (here or by another process) lose their connections.
    this.devices.onChange(() => broker.revokeStale());
    this.devices.watch();
    this.pipeline.setRejectionPublisher((payload) => {
      broker.publish(REJECTED_TOPIC, payload, { qos: 1 }).catch(() => {});
    });
    await broker.start(this.pipeline);
    const { port, wsPort } = broker.ports();
    // Ports picked at start (port 0) are known only now.
    this.alerts.deliverer.targets.reserve(port, 'the MQTT listener of this service');
    this.alerts.deliverer.targets.reserve(wsPort, 'the MQTT WebSocket listener of this service');
    return { mqttPort: port, wsPort };
  }

  private async startApi(): Promise<number | null> {
    const { host, port, rateLimitPerMinute } = this.config.api;
    if (port === 0) return null;
    this.api = await buildApp({ db: this.registry, devices: this.devices, entities: this.entities, tokens: this.tokens, reader: this.reader, alerts: this.alerts, spillage: this.rules.spillage, sorting: this.sorting, forecastOf: (deviceId) => this.rules.binForecast(deviceId), metrics: { ...this.config.metrics, source: this.metrics }, rateLimitPerMinute, limits: this.config.api, logger: this.log.child({ service: 'api' }) });
    await this.api.listen({ host, port });
    const bound = (this.api.server.address() as AddressInfo).port;
    this.log.info({ port: bound }, `HTTP API listening (OpenAPI at http://${host === '0.0.0.0' ? '127.0.0.1' : host}:${bound}/docs)`);
    if (this.tokens.list().length === 0) this.log.warn('no API tokens yet: create an admin token with "npm run cli -- token create --role admin --name ops"');
    return bound;
  }

  /** Moves the devices of a provisioning file from before the registry into it, once. */
  private takeOverProvisioningFile(): void {
    const file = this.config.broker.devicesFile;
    const content = readProvisioningFile(file);
    if (!content) return;
    const added = this.devices.importCredentials(content.devices, content.services);
    fs.renameSync(file, `${file}.imported`);
    this.log.info({ file, added, renamedTo: `${file}.imported` }, 'provisioning file taken over into the registry');
  }

  /** Stops taking data, delivers what it can for a few seconds, and leaves the rest spooled. */
  async stop(): Promise<void> {
    await this.api?.close();
    await this.broker?.stop();
    await this.worker?.stop();
    await this.alerts.stop();
    await this.sorting.stop();
    this.rules.stop();
    this.city.stop();
    this.devices.unwatch();
    this.stats.stop();
    this.snapshots.stop();
    await this.shipper.stop(STOP_DRAIN_MS);
    await this.spool.close();
    const left = this.spool.backlogBytes();
    if (left > 0) this.log.warn({ backlogBytes: left }, 'stopped with undelivered data in the spool; it is delivered at the next start');
    this.registry.close();
    await this.privateInfluxd?.stop();
    this.privateInfluxd = null;
  }

  private async connectInflux(): Promise<void> {
    const { url, startPrivate } = this.config.influx;
    try {
      const server = await this.influx.detect();
      this.log.info({ influx: url, version: server.version }, 'InfluxDB found');
      this.influxReachable = true;
    } catch (error) {
      if (!(error instanceof InfluxUnreachableError)) throw error;
      const target = new URL(url);
      const loopback = ['127.0.0.1', 'localhost', '::1', '[::1]'].includes(target.hostname);
      if (startPrivate && loopback && findOnPath('influxd')) {
        const port = Number(target.port || 8086);
        const dir = path.join(this.config.dataDir, 'influxdb');
        this.log.info({ influx: url, dir }, 'no InfluxDB answers; starting a private influxd');
        this.privateInfluxd = await superviseInfluxd({ dir, port, rpcPort: port + 2, niceness: PRIVATE_INFLUXD_NICENESS }, this.log.child({ service: 'influxd' }));
        const server = await this.influx.detect();
        this.log.info({ influx: url, version: server.version, pid: this.privateInfluxd.pid }, 'private InfluxDB started');
        this.influxReachable = true;
      } else {
        this.log.error(
          { influx: url },
          `${error.message}. Data is spooled under ${this.config.spool.dir} and delivered once it answers. ` +
            (findOnPath('influxd')
              ? 'Start InfluxDB, or point WASTE_INFLUX_URL at a running one.'
              : 'Install it (Debian: sudo apt-get install -y influxdb) or set WASTE_INFLUX_URL to a running InfluxDB 1.x/2.x/3.x.'),
        );
        return;
      }
    }
    await this.influx.ensureDatabase();
  }
}

/**
 * Webhooks may not call this service or its InfluxDB, whatever alerts.webhookAllowTargets allows
 * (alerts/webhooks.ts): its listeners on any address of this host, and the InfluxDB where it is.
 * Known from the configuration before anything starts, so no delivery runs without them.
 */
function reserveOwnEndpoints(targets: WebhookTargets, config: Config): void {
  if (!config.broker.url) {
    targets.reserve(config.broker.port, 'the MQTT listener of this service');
    targets.reserve(config.broker.wsPort, 'the MQTT WebSocket listener of this service');
  }
  targets.reserve(config.api.port, 'the HTTP API of this service');
  const influx = new URL(config.influx.url);
  targets.reserve(Number(influx.port || (influx.protocol === 'https:' ? 443 : 80)), 'the InfluxDB of this service', influx.hostname.replace(/^\[(.*)\]$/, '$1'));
}

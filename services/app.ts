// Runs one process: builds its pipeline (pipeline.ts, where the order of everything is declared)
// and starts and stops the parts in the order that keeps data safe: the registry and the spool
// first, then InfluxDB and the shipper, the rules, the alerts, and only then the sources that take
// device data, and the HTTP API; stop() in reverse. Nothing happens in the constructor.
import fs from 'node:fs';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import type { Logger } from 'pino';
import type { AlertService } from './alerts/alert-service.ts';
import type { WebhookTargets } from './alerts/webhooks.ts';
import { buildApp } from './api/app.ts';
import { ROLES, type Config, type Role } from './config/schema.ts';
import { InfluxUnreachableError, type InfluxStore } from './influx/client.ts';
import { PRIVATE_INFLUXD_NICENESS, findOnPath, superviseInfluxd, type InfluxdProcess } from './influx/influxd.ts';
import type { TelemetryReader } from './influx/reader.ts';
import type { IngestPipeline } from './ingest/pipeline.ts';
import type { Jt808Gateway } from './jt808/gateway.ts';
import type { ServiceMetrics } from './metrics/metrics.ts';
import { takeExclusiveLock, type ExclusiveLock } from './exclusive-lock.ts';
import { buildPipeline, type Pipeline } from './pipeline.ts';
import type { BrokerAuthOptions } from './api/routes/broker-auth.ts';
import { DeviceLogins } from './broker/device-logins.ts';
import { partitionsDeclared } from './broker/rabbitmq-management.ts';
import { RabbitmqRevocation } from './broker/rabbitmq-revocation.ts';
import type { RabbitmqPartitions } from './ingest/rabbitmq-partitions.ts';
import type { CityIndex } from './registry/city-index.ts';
import type { RegistryDb } from './registry/db.ts';
import type { DeviceStore } from './registry/devices.ts';
import type { EntityStore } from './registry/entity-store.ts';
import { readProvisioningFile } from './registry/provisioning-file.ts';
import type { TokenStore } from './registry/tokens.ts';
import type { RulesService } from './rules/rules-service.ts';
import type { SortingService } from './sorting/sorting-service.ts';
import type { Shipper } from './spool/shipper.ts';
import type { Spool } from './spool/spool.ts';

/** How long stop() keeps delivering the spool to InfluxDB before leaving the rest for next time. */
const STOP_DRAIN_MS = 5000;
/** How long start() waits for the spool's backlog to reach InfluxDB before the rules replay history. */
const REPLAY_WAIT_MS = 10_000;

export interface StartedService {
  mqttPort: number | null;
  wsPort: number | null;
  /** The JT/T 808 gateway's port; null while it is disabled (jt808.port 0). */
  jt808Port: number | null;
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
  /** The registry in memory that the rules, the sorting job and the snapshots read. */
  readonly city: CityIndex;
  readonly alerts: AlertService;
  readonly rules: RulesService;
  readonly sorting: SortingService;
  readonly reader: TelemetryReader;
  readonly metrics: ServiceMetrics;
  readonly gateway: Jt808Gateway | null;
  /** The ingest worker on a RabbitMQ cluster's partitions, where rabbitmq.amqpUrls are set. */
  readonly partitions: RabbitmqPartitions | null;
  private readonly parts: Pipeline;
  private influxReachable = false;
  private api: Awaited<ReturnType<typeof buildApp>> | null = null;
  private revocation: RabbitmqRevocation | null = null;
  private privateInfluxd: InfluxdProcess | null = null;
  private sourcesStarted = 0;
  private watchingDevices = false;
  private dataDirLock: ExclusiveLock | null = null;

  constructor(
    private readonly config: Config,
    private readonly log: Logger,
  ) {
    const parts = buildPipeline(config, log);
    this.parts = parts;
    ({ spool: this.spool, influx: this.influx, shipper: this.shipper, ingest: this.pipeline, registry: this.registry, devices: this.devices, entities: this.entities, tokens: this.tokens, city: this.city, alerts: this.alerts, rules: this.rules, sorting: this.sorting, reader: this.reader, metrics: this.metrics, gateway: this.gateway, partitions: this.partitions } = parts);
    reserveOwnEndpoints(this.alerts.deliverer.targets, config);
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
    const { roles } = this.parts;
    this.lockDataDir();
    this.registry.open();
    this.log.info({ roles: [...roles], database: this.registry.dialect, where: this.registry.where }, describeRoles(roles));
    if (roles.has('ingest')) this.takeOverProvisioningFile();
    // Every role spools what it writes to InfluxDB (readings, alert points, snapshots, the
    // separation rate), each process in its own data directory.
    await this.spool.open();
    const backlog = this.spool.backlogBytes();
    if (backlog > 0) this.log.info({ backlogBytes: backlog, dir: this.config.spool.dir }, 'spool holds undelivered data from before; delivering it first');
    await this.connectInflux();
    this.shipper.start();
    this.city.start();
    if (roles.has('ingest') && this.config.rules.enabled) await this.startRules();
    // The scheduled work (webhook delivery, the separation-rate job, the open-alert counts) starts
    // when this process holds the scheduler's lease: at once on SQLite, or when no other holds it.
    if (roles.has('scheduler')) this.parts.lease.start();

    const ports = roles.has('ingest') ? await this.startSources() : { mqttPort: null, wsPort: null, jt808Port: null };
    const apiPort = roles.has('api') ? await this.startApi() : null;
    this.parts.stats.start();
    if (roles.has('ingest')) this.parts.snapshots.start();
    return { ...ports, apiPort, influxUrl: this.influx.url };
  }

  /** Starts the rules once the spool's backlog is in InfluxDB, so their replay of history sees it. */
  private async startRules(): Promise<void> {
    if (this.influxReachable) await this.shipper.drained(REPLAY_WAIT_MS);
    await this.rules.start(this.influxReachable ? this.reader : null);
  }

  /** Starts the sources (pipeline.ts step 7), the broker in use first; each hands its traffic to the ingest gate. */
  private async startSources(): Promise<Pick<StartedService, 'mqttPort' | 'wsPort' | 'jt808Port'>> {
    const { broker, gateway, devices } = this.parts;
    if (broker && devices.list({ limit: 1 }).total === 0) {
      this.log.warn({ registry: this.registry.where }, 'no devices provisioned yet: add one with "npm run cli -- device add --class trucks --id TRUCK-001"');
    }
    // Devices disabled, rotated or removed (here or by another process) lose their connections.
    if (broker) devices.onChange(() => broker.revokeStale());
    devices.watch();
    this.watchingDevices = true;
    for (const source of this.parts.sources) {
      await source.start(this.pipeline);
      this.sourcesStarted++;
    }
    const { port, wsPort } = broker?.ports() ?? { port: null, wsPort: null };
    // Ports picked at start (port 0) are known only now.
    const targets = this.alerts.deliverer.targets;
    targets.reserve(port, 'the MQTT listener of this service');
    targets.reserve(wsPort, 'the MQTT WebSocket listener of this service');
    const jt808Port = gateway?.port() ?? null;
    targets.reserve(jt808Port, 'the JT/T 808 gateway of this service');
    return { mqttPort: port, wsPort, jt808Port };
  }

  private async startApi(): Promise<number | null> {
    const { host, port, rateLimitPerMinute } = this.config.api;
    if (port === 0) return null;
    const ingest = this.parts.roles.has('ingest');
    // The event streams show the alert changes of every process sharing the database.
    this.alerts.followOtherProcesses();
    this.api = await buildApp({ db: this.registry, devices: this.devices, entities: this.entities, tokens: this.tokens, reader: this.reader, alerts: this.alerts, spillage: this.rules.spillage, sorting: this.sorting, registryChanged: () => this.city.catchUp(), forecastOf: (deviceId) => (ingest ? this.rules.binForecast(deviceId) : null), downlink: ingest ? this.gateway : null, brokerAuth: this.brokerAuth(), metrics: { ...this.config.metrics, source: this.metrics }, rateLimitPerMinute, limits: this.config.api, logger: this.log.child({ service: 'api' }) });
    await this.api.listen({ host, port });
    this.startRevocation();
    const bound = (this.api.server.address() as AddressInfo).port;
    this.log.info({ port: bound }, `HTTP API listening (OpenAPI at http://${host === '0.0.0.0' ? '127.0.0.1' : host}:${bound}/docs)`);
    if (this.tokens.list().length === 0) this.log.warn('no API tokens yet: create an admin token with "npm run cli -- token create --role admin --name ops"');
    return bound;
  }

  /**
   * Where this process logs devices in for RabbitMQ, it also closes their connections there when
   * they are disabled, removed or given a new secret, here or by another process.
   */
  private startRevocation(): void {
    const { authBackend, managementUrl, managementUsername: username, managementPassword: password } = this.config.rabbitmq;
    if (!authBackend || !managementUrl) return;
    this.revocation = new RabbitmqRevocation({ managementUrl, username, password }, this.devices, this.log.child({ service: 'broker-auth' }));
    this.revocation.start();
    this.devices.watch();
    this.watchingDevices = true;
  }

  /** RabbitMQ's HTTP authentication backend, where rabbitmq.authBackend asks for it. */
  private brokerAuth(): BrokerAuthOptions | null {
    const { rabbitmq, broker } = this.config;
    if (!rabbitmq.authBackend) return null;
    const management = { managementUrl: rabbitmq.managementUrl, username: rabbitmq.managementUsername, password: rabbitmq.managementPassword };
    // Once declared, the partitions stay; until then they are looked for at most every 2 s. A
    // management API that does not answer does not keep devices out.
    let declared = false;
    let lookedAt = 0;
    const partitionsReady = async (): Promise<boolean> => {
      if (declared || Date.now() - lookedAt < 2000) return declared;
      lookedAt = Date.now();
      const found = await partitionsDeclared(management, rabbitmq.vhost, rabbitmq.exchange);
      if (found === null) return true;
      declared = found;
      return declared;
    };
    return {
      logins: new DeviceLogins(broker, this.devices, this.log.child({ service: 'broker-auth' })),
      credentials: this.devices,
      allowFrom: rabbitmq.authAllowFrom,
      vhost: rabbitmq.vhost,
      exchange: rabbitmq.exchange,
      ...(rabbitmq.managementUrl ? { partitionsReady } : {}),
    };
  }

  /**
   * One process per data directory: its spool is this process's alone (two writing one spool
   * would each deliver, and cut, what the other appended).
   */
  private lockDataDir(): void {
    const file = path.join(this.config.dataDir, 'service.lock');
    const holder = path.join(this.config.dataDir, 'service.pid');
    this.dataDirLock = takeExclusiveLock(file);
    if (!this.dataDirLock) {
      const pid = fs.existsSync(holder) ? fs.readFileSync(holder, 'utf8').trim() : '?';
      throw new Error(`the data directory ${this.config.dataDir} is in use by another process of the service (pid ${pid}); give each process its own (dataDir, WASTE_DATA_DIR)`);
    }
    fs.writeFileSync(holder, `${process.pid}\n`);
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
    await this.revocation?.stop();
    this.alerts.stopFollowing();
    // Sources in reverse: the broker, whose bus the others report on, last.
    for (const source of this.parts.sources.slice(0, this.sourcesStarted).reverse()) await source.stop();
    this.sourcesStarted = 0;
    await this.parts.lease.stop();
    // The rules' timers find nothing more; what they found is recorded, for a few seconds at most.
    this.rules.stop();
    await this.alerts.stopRecording(STOP_DRAIN_MS);
    this.city.stop();
    if (this.watchingDevices) this.devices.unwatch();
    this.watchingDevices = false;
    this.parts.stats.stop();
    this.parts.snapshots.stop();
    await this.shipper.stop(STOP_DRAIN_MS);
    await this.spool.close();
    const left = this.spool.backlogBytes();
    if (left > 0) this.log.warn({ backlogBytes: left }, 'stopped with undelivered data in the spool; it is delivered at the next start');
    this.registry.close();
    await this.privateInfluxd?.stop();
    this.privateInfluxd = null;
    this.dataDirLock?.release();
    this.dataDirLock = null;
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
        // Its backup RPC listener is not used: any free port, so that it never collides with another listener.
        this.privateInfluxd = await superviseInfluxd({ dir, port, rpcPort: 0, niceness: PRIVATE_INFLUXD_NICENESS }, this.log.child({ service: 'influxd' }));
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

/** What a process of these roles runs, and what it expects other processes to run. */
export function describeRoles(roles: ReadonlySet<Role>): string {
  if (roles.size === ROLES.length) return 'running every role: the device sources, ingest, rules and alerts; the HTTP API; the scheduled work';
  const runs: Record<Role, string> = {
    api: 'the HTTP API (stateless: run any number behind a load balancer)',
    ingest: 'the device sources (MQTT broker or worker, JT/T 808, LoRaWAN), validation, the spool, the rules and alerts',
    scheduler: 'the scheduled work (separation-rate job, webhook delivery, open-alert counts), active in one process at a time, standing by in the others',
  };
  const elsewhere = ROLES.filter((role) => !roles.has(role)).map((role) => `${role} (${runs[role].split(' (')[0]})`);
  return `running ${[...roles].map((role) => runs[role]).join('; ')}; expecting elsewhere, on the same database: ${elsewhere.join(', ')}`;
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
  targets.reserve(config.jt808.port, 'the JT/T 808 gateway of this service');
  targets.reserve(config.api.port, 'the HTTP API of this service');
  const influx = new URL(config.influx.url);
  targets.reserve(Number(influx.port || (influx.protocol === 'https:' ? 443 : 80)), 'the InfluxDB of this service', influx.hostname.replace(/^\[(.*)\]$/, '$1'));
}

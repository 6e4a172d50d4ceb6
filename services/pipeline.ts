// The pipeline of one process, declared in the order data flows through it. Read top to bottom:
// every part is built here, from the place data ends up back to the devices, and each is handed
// what it sends its results to. Nothing here does I/O; app.ts starts and stops the parts.
// docs/architecture.md draws the same picture and says why it is in this order.
//
//   device ─► source ─► ingest gate ─► validation ─► listeners ─► spool ─► shipper ─► InfluxDB
//            (MQTT broker,  (slices,      (contract/    (rules,       (fsync'd     (batches,
//             MQTT worker,   one device    payloads.ts)  sorting)      group        retries,
//             JT/T 808,      in turn)                                  commit)      dead letters)
//             LoRaWAN)
//                 ▲                                        │
//                 └── acknowledged once durable            ▼ findings
//                                               alert store (SQLite, webhook outbox)
//                                                          │
//                     alert outputs: MQTT waste/alerts/…, driver text (JT/T 808), the API's event
//                     streams, `alert` points in the spool; webhooks from the outbox
import os from 'node:os';
import path from 'node:path';
import type { Logger } from 'pino';
import { AlertService, type AlertOutput } from './alerts/alert-service.ts';
import { DriverTextOutput } from './alerts/driver-text-output.ts';
import { MqttAlertOutput } from './alerts/mqtt-output.ts';
import { EmbeddedBroker } from './broker/broker.ts';
import { parseRoles, type Config, type Role } from './config/schema.ts';
import type { ReadingsListener } from './ingest/pipeline.ts';
import type { Reading, TicketReading } from './contract/payloads.ts';
import type { MessageBus, Source } from './contract/source.ts';
import { InfluxStore } from './influx/client.ts';
import { TelemetryReader } from './influx/reader.ts';
import { MqttIngestWorker } from './ingest/mqtt-worker.ts';
import { RabbitmqPartitions } from './ingest/rabbitmq-partitions.ts';
import { RelayedSource } from './ingest/relayed-source.ts';
import { IngestPipeline } from './ingest/pipeline.ts';
import { StatsReporter } from './ingest/stats-reporter.ts';
import { Jt808Gateway } from './jt808/gateway.ts';
import { LorawanBridge } from './lorawan/bridge.ts';
import { ServiceMetrics } from './metrics/metrics.ts';
import { CityIndex } from './registry/city-index.ts';
import { RegistryDb } from './registry/db.ts';
import { DeviceStore } from './registry/devices.ts';
import { EntityStore } from './registry/entity-store.ts';
import { TokenStore } from './registry/tokens.ts';
import { RulesService } from './rules/rules-service.ts';
import { SortingService } from './sorting/sorting-service.ts';
import { SortingStore } from './sorting/sorting-store.ts';
import { Shipper } from './spool/shipper.ts';
import { Spool } from './spool/spool.ts';
import { JobRuns } from './scheduler/job-runs.ts';
import { SchedulerLease } from './scheduler/lease.ts';
import { StateSnapshots } from './state/snapshots.ts';

export interface Pipeline {
  spool: Spool;
  influx: InfluxStore;
  shipper: Shipper;
  registry: RegistryDb;
  devices: DeviceStore;
  entities: EntityStore;
  tokens: TokenStore;
  city: CityIndex;
  reader: TelemetryReader;
  /** The MQTT broker the service runs (embedded) or reads from (external): a source, and the bus. */
  broker: EmbeddedBroker | null;
  worker: MqttIngestWorker | null;
  /** The ingest worker on a RabbitMQ cluster's partitions (rabbitmq.amqpUrls), instead of a broker. */
  partitions: RabbitmqPartitions | null;
  /** Where the service publishes: rejection reports, alerts. */
  bus: MessageBus;
  gateway: Jt808Gateway | null;
  /** The LoRaWAN bridge for bin sensors behind network servers; null while none is configured. */
  lorawan: LorawanBridge | null;
  alerts: AlertService;
  rules: RulesService;
  sorting: SortingService;
  ingest: IngestPipeline;
  /** Every source of device data, in the order they start. */
  sources: Source[];
  /** The trucks' and bins' state, from this process's rules. */
  snapshots: StateSnapshots;
  /** What this process runs (config.role). */
  roles: Set<Role>;
  /** The scheduled work, where this lease is held. */
  lease: SchedulerLease;
  stats: StatsReporter;
  metrics: ServiceMetrics;
}

export function buildPipeline(config: Config, log: Logger): Pipeline {
  // 1. Where every accepted reading ends: the spool (durable on disk before any device is
  //    acknowledged), from which the shipper writes batches to InfluxDB, retrying while it is
  //    down. Everything else that writes time series (alerts, snapshots, sorting) appends here too.
  const spool = new Spool(config.spool);
  const writeLines = (lines: string) => spool.append(lines);
  const influx = new InfluxStore(config.influx);
  const shipper = new Shipper(spool, influx, { ...config.spool, deadLetterDir: path.join(config.dataDir, 'dead-letter') }, log.child({ service: 'shipper' }), (ms) => metrics.observeWrite(ms));
  const reader = new TelemetryReader(influx);

  // 2. The registry (SQLite, or PostgreSQL shared by every process): devices and their
  //    credentials, the city's entities, API tokens; and the city index, the registry in memory
  //    that the rules, sorting and snapshots read.
  // This process, as the ingest workers know each other and as alert histories name who judged.
  const workerId = `${os.hostname()}:${path.resolve(config.dataDir)}`;
  const registry = new RegistryDb(config.database.url || config.registry.file, { ...config.database, applicationName: `waste-telemetry ${config.role}` });
  const devices = new DeviceStore(registry);
  const entities = new EntityStore(registry, undefined, config.registry);
  const tokens = new TokenStore(registry);
  const city = new CityIndex(registry, entities);

  // 3. The broker in use. It is a source of device data (step 7) and the bus the service publishes
  //    on: rejection reports (waste/ingest/rejected) and alerts (waste/alerts/...).
  //    On a RabbitMQ cluster (rabbitmq.amqpUrls) devices connect to its nodes, and the service
  //    consumes its partitions over AMQP and publishes there.
  const { amqpUrls, partitions: partitionCount, prefetch, exchange } = config.rabbitmq;
  //    Workers on PostgreSQL share the partitions, each known by its machine and data directory.
  const assignment = registry.dialect === 'postgres' ? { db: registry, workerId } : null;
  //    A weighing ticket is judged where its truck's fixes are: the worker it reaches through its
  //    weighbridge's partition forwards it to the partition of the truck's terminal.
  const ticketTruckTerminal = (ticket: TicketReading) => ((ticket.truck_device_id && city.current.truckByDevice(ticket.truck_device_id)) || (ticket.plate && city.current.truckByPlate(ticket.plate)) || null)?.deviceId ?? null;
  const partitions = amqpUrls.length > 0 ? new RabbitmqPartitions({ urls: amqpUrls, partitions: partitionCount, prefetch, exchange, assignment, ticketTruckTerminal }, log.child({ service: 'ingest-worker' })) : null;
  const external = config.broker.url !== '' || partitions !== null;
  const broker = external ? null : new EmbeddedBroker({ config: config.broker, credentials: devices, log: log.child({ service: 'broker' }) });
  const worker = config.broker.url !== '' && !partitions ? new MqttIngestWorker({ url: config.broker.url, ...config.ingest }, log.child({ service: 'ingest-worker' })) : null;
  const bus: MessageBus = (broker ?? worker ?? partitions)!;
  // The JT/T 808 gateway for truck terminals (step 7), also the way down to their drivers.
  const gateway = config.jt808.port === 0 ? null : new Jt808Gateway({ config: config.jt808, terminals: devices, log: log.child({ service: 'jt808' }) });
  // The LoRaWAN bridge (step 7) for bin sensors whose uplinks reach a network server.
  const lorawan = config.lorawan.networkServers.length === 0 ? null : new LorawanBridge({ config: config.lorawan, directory: devices, log: log.child({ service: 'lorawan' }) });

  // 4. Findings become alerts: stored with their webhook deliveries in one transaction, then told
  //    to each output in this order, and written as `alert` points to the spool.
  const alertsLog = log.child({ service: 'alerts' });
  // Published on the broker, and texted to drivers, by processes that run them (the ingest role).
  const roles = parseRoles(config.role);
  const alertOutputs: AlertOutput[] = roles.has('ingest') ? [new MqttAlertOutput(bus, alertsLog)] : [];
  if (roles.has('ingest') && gateway && config.jt808.textOnAlert) alertOutputs.push(new DriverTextOutput(gateway, alertsLog));
  const alerts = new AlertService({ db: registry, config: config.alerts, evidenceMax: config.rules.evidenceMax, outputs: alertOutputs, writeLines, log: alertsLog, judge: `rules on ${workerId}` });

  // 5. The listeners told of every message's accepted readings, in this order: the rules (each
  //    truck and bin judged by event time; findings to step 4), then the separation-rate job
  //    (weighing tickets counted per day; its findings to step 4 as well).
  const rules = new RulesService({
    db: registry,
    city,
    config: config.rules,
    onFinding: (finding) => alerts.onFinding(finding),
    writeLines,
    log: log.child({ service: 'rules' }),
    onEvaluated: (ms) => metrics.observeRules(ms),
    findingsRoom: () => alerts.room(),
    judges: partitions && assignment ? (deviceId) => partitions.receives(deviceId) : undefined,
  });
  const jobRuns = new JobRuns(registry);
  const sorting = new SortingService({
    config: config.sorting,
    store: new SortingStore(registry, config.sorting),
    entities,
    reader,
    delivered: (timeoutMs) => shipper.drained(timeoutMs),
    city,
    writeLines,
    onFinding: (finding) => alerts.onFinding(finding),
    claimRun: (slot) => jobRuns.claim('separation-rate', slot),
    log: log.child({ service: 'sorting' }),
  });
  //    Workers sharing partitions judge no ticket as it comes: it is forwarded to its truck's
  //    partition (step 3) and judged by that partition's worker (Intake.judge).
  const forwardsTickets = config.rules.enabled && partitions !== null && assignment !== null;
  const listeners: ReadingsListener[] = [];
  if (forwardsTickets) listeners.push((readings) => rules.consume(readings.filter((r) => r.kind !== 'ticket')));
  else if (config.rules.enabled) listeners.push((readings) => rules.consume(readings));
  listeners.push((readings) => sorting.consume(readings));

  // 6. The ingest gate every source hands its messages to: validation (contract/payloads.ts),
  //    then the listeners of step 5, then the spool of step 1; refusals are counted and reported
  //    on the bus. A source acknowledges its device only once ingest() resolves.
  const handover = config.rules.enabled ? { takeOver: (ids: readonly string[]) => rules.takeOver(ids), release: (ids: readonly string[]) => rules.release(ids), judge: (readings: readonly Reading[]) => rules.consume(readings) } : null;
  const forwardTickets = forwardsTickets ? (tickets: readonly TicketReading[]) => partitions.forwardTickets(tickets) : null;
  const ingest = new IngestPipeline(spool, config.ingest, log.child({ service: 'ingest' }), { listeners, reports: bus, handover, forwardTickets });

  // 7. The sources, started last (app.ts) and stopped first, so no device is acknowledged before
  //    the path behind it runs, nor after it stops.
  //    On a RabbitMQ cluster's partitions, the devices that reach this process directly (JT/T 808
  //    terminals, LoRaWAN sensors through a network server) are relayed to the cluster, whose
  //    partition for each device's id sends them to the worker that judges it.
  const relayed = (source: Source) => (partitions ? new RelayedSource(source, ingest, partitions) : source);
  const sources: Source[] = [(broker ?? worker ?? partitions)!];
  if (gateway) sources.push(relayed(gateway));
  if (lorawan) sources.push(relayed(lorawan));

  // 8. What is reported about it all: state snapshots and ingest statistics (to the spool), and
  //    the Prometheus metrics the API serves. The devices' state is what this process's rules
  //    know; the open-alert counts, read from the registry, are the active scheduler's to write.
  const snapshotSource = {
      latestFixes: () => rules.latestFixes(),
      latestBinSample: (deviceId: string) => rules.latestBinSample(deviceId),
      binForecast: (deviceId: string) => rules.binForecast(deviceId),
      openAlertCounts: () => alerts.store.openCounts(),
      ongoing: (types: readonly string[]) => alerts.store.ongoing(types),
  };
  const snapshotOptions = { ...config.snapshots, movingKmh: config.rules.movingKmh, loadedKg: config.rules.loadedKg, everyBin: registry.dialect === 'sqlite' };
  const snapshots = new StateSnapshots({ city, source: snapshotSource, options: { ...snapshotOptions, parts: { devices: true, openAlerts: false } }, writeLines, log: log.child({ service: 'snapshots' }) });
  const alertSnapshots = new StateSnapshots({ city, source: snapshotSource, options: { ...snapshotOptions, parts: { devices: false, openAlerts: true } }, writeLines, log: log.child({ service: 'snapshots' }) });
  const stats = new StatsReporter(ingest, spool, shipper, config.ingest.statsIntervalMs, log.child({ service: 'stats' }));
  const metrics = new ServiceMetrics({
    ingest,
    spool,
    shipper,
    alertsRaised: alerts.raised,
    openAlerts: () => alerts.store.openCounts(),
    webhookOutboxDepth: () => alerts.webhooks.pendingCount(),
    connectedClients: () => broker?.connectedClients() ?? null,
    brokerDropped: () => worker?.brokerDropped() ?? null,
    connectedTerminals: () => gateway?.connectedTerminals() ?? null,
    lorawanStats: () => lorawan?.stats() ?? {},
  });

  // 9. The scheduled work runs where the scheduler's lease is held (scheduler/lease.ts): one
  //    process of all, the others standing by. Started by app.ts in the scheduler role.
  const lease = new SchedulerLease(registry.location, { leaseCheckMs: config.scheduler.leaseCheckMs, connectTimeoutMs: config.database.connectTimeoutMs }, {
    onAcquired: () => {
      alerts.start();
      sorting.start();
      alertSnapshots.start();
    },
    onLost: async () => {
      alertSnapshots.stop();
      await sorting.stop();
      await alerts.stop();
    },
  }, log.child({ service: 'scheduler' }));

  return { roles, spool, influx, shipper, registry, devices, entities, tokens, city, reader, broker, worker, partitions, bus, gateway, lorawan, alerts, rules, sorting, ingest, sources, snapshots, lease, stats, metrics };
}

// Prometheus metrics (text exposition format, served at /metrics) for sites that scrape: ingest
// counts and rejects by reason, InfluxDB write latency, spool depth, rule evaluation time, alerts by
// type, webhook outbox depth, plus Node's process metrics. Counts live in the services; the
// metrics read them at scrape time, so nothing here sits on the ingest path but two histograms.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { OpenCount } from '../alerts/alert-store.ts';
import type { DeviceClass } from '../contract/topics.ts';

export interface MetricSources {
  ingest: {
    received: number;
    receivedByClass: Readonly<Record<DeviceClass, number>>;
    accepted: number;
    rejections: { totals(): Record<string, number> };
    waitingMessages(): number;
  };
  spool: { backlogBytes(): number; usedBytes(): number };
  shipper: { stats: { deliveredLines: number; deadLetteredLines: number; failedWrites: number; failingSince: number | null } };
  /** Alerts raised since start, by type. */
  alertsRaised: ReadonlyMap<string, number>;
  openAlerts(): OpenCount[];
  webhookOutboxDepth(): number;
  /** MQTT clients on the embedded broker (null on an external one). */
  connectedClients(): number | null;
  /** Messages the external broker says it acknowledged and then dropped (Mosquitto's $SYS count); null where it does not say. */
  brokerDropped?(): number | null;
  /** JT/T 808 terminals authenticated and connected (null while the gateway is disabled). */
  connectedTerminals?(): number | null;
  /** The LoRaWAN bridge's counts by network server (lorawan/bridge.ts NetworkServerStats). */
  lorawanStats?(): Record<string, Record<string, number>>;
}

/** A counter whose value is read from a running total at scrape time. */
function totalCounter(registry: Registry, name: string, help: string, labelNames: string[], read: () => [Record<string, string>, number][]) {
  return new Counter({
    name,
    help,
    labelNames,
    registers: [registry],
    collect() {
      this.reset();
      for (const [labels, value] of read()) this.inc(labels, value);
    },
  });
}

export class ServiceMetrics {
  readonly registry = new Registry();
  private readonly writeSeconds: Histogram;
  private readonly ruleSeconds: Histogram;

  constructor(sources: MetricSources) {
    const r = this.registry;
    collectDefaultMetrics({ register: r });
    const { ingest, spool, shipper } = sources;
    totalCounter(r, 'waste_ingest_received_total', 'Device messages received, by device class (unknown: not on a contract topic).', ['device_class'], () => {
      const byClass = Object.entries(ingest.receivedByClass);
      const known = byClass.reduce((sum, [, n]) => sum + n, 0);
      return [...byClass.map(([c, n]): [Record<string, string>, number] => [{ device_class: c }, n]), [{ device_class: 'unknown' }, ingest.received - known]];
    });
    totalCounter(r, 'waste_ingest_accepted_total', 'Readings made durable in the spool (status changes included).', [], () => [[{}, ingest.accepted]]);
    totalCounter(r, 'waste_ingest_rejected_total', 'Rejections, by reason (docs/mqtt.md#rejections).', ['reason'], () => Object.entries(ingest.rejections.totals()).map(([reason, n]) => [{ reason }, n]));
    totalCounter(r, 'waste_influx_delivered_lines_total', 'Points delivered to InfluxDB.', [], () => [[{}, shipper.stats.deliveredLines]]);
    totalCounter(r, 'waste_influx_failed_writes_total', 'InfluxDB writes that failed and are retried.', [], () => [[{}, shipper.stats.failedWrites]]);
    totalCounter(r, 'waste_influx_dead_lettered_lines_total', 'Points InfluxDB refused for good, moved to dead-letter/.', [], () => [[{}, shipper.stats.deadLetteredLines]]);
    totalCounter(r, 'waste_alerts_raised_total', 'Alerts raised since start, by type.', ['type'], () => [...sources.alertsRaised].map(([type, n]) => [{ type }, n]));

    const gauge = (name: string, help: string, labelNames: string[], read: () => [Record<string, string>, number][]) =>
      new Gauge({
        name,
        help,
        labelNames,
        registers: [r],
        collect() {
          this.reset();
          for (const [labels, value] of read()) this.set(labels, value);
        },
      });
    gauge('waste_ingest_waiting_messages', 'Messages waiting for a slice of the event loop (ingest/pipeline.ts): above 0 for long, ingest is falling behind.', [], () => [[{}, ingest.waitingMessages()]]);
    gauge('waste_spool_backlog_bytes', 'Spooled data not yet in InfluxDB.', [], () => [[{}, spool.backlogBytes()]]);
    gauge('waste_spool_used_bytes', 'Spool on disk (what spool.quotaBytes limits).', [], () => [[{}, spool.usedBytes()]]);
    gauge('waste_influx_up', '1 while InfluxDB writes succeed, 0 while they fail.', [], () => [[{}, shipper.stats.failingSince === null ? 1 : 0]]);
    gauge('waste_alerts_open', 'Alerts not yet resolved, by type, jurisdiction (an alert counts in each it went to), severity and status.', ['type', 'jurisdiction', 'severity', 'status'], () =>
      sources.openAlerts().map(({ count, ...labels }) => [labels, count]),
    );
    gauge('waste_webhook_outbox_depth', 'Webhook deliveries waiting in the outbox (all webhooks).', [], () => [[{}, sources.webhookOutboxDepth()]]);
    gauge('waste_broker_connected_clients', 'MQTT clients connected to the embedded broker.', [], () => {
      const n = sources.connectedClients();
      return n === null ? [] : [[{}, n]];
    });
    gauge('waste_broker_dropped_messages', 'Messages the external broker acknowledged and then dropped because a subscriber\'s queue was full, since the broker started (Mosquitto\'s $SYS/broker/publish/messages/dropped; docs/external-broker.md). Any rise is data lost.', [], () => {
      const n = sources.brokerDropped?.() ?? null;
      return n === null ? [] : [[{}, n]];
    });
    gauge('waste_jt808_connected_terminals', 'JT/T 808 terminals authenticated and connected to the gateway.', [], () => {
      const n = sources.connectedTerminals?.() ?? null;
      return n === null ? [] : [[{}, n]];
    });
    totalCounter(r, 'waste_lorawan_events_total', 'LoRaWAN network-server events, by network server and outcome (readings, duplicates, withoutReading, joins, statuses, otherEvents, rejected).', ['network_server', 'outcome'], () =>
      Object.entries(sources.lorawanStats?.() ?? {}).flatMap(([server, counts]) =>
        Object.entries(counts)
          .filter(([outcome]) => outcome !== 'missing' && outcome !== 'counterResets')
          .map(([outcome, n]): [Record<string, string>, number] => [{ network_server: server, outcome }, n]),
      ),
    );
    // A gauge: an uplink counted missing that arrives late (a re-delivery out of order) is taken off again.
    gauge('waste_lorawan_missing_uplinks', 'Uplinks the sensors\' frame counters say were sent and have not reached the bridge since start, by network server.', ['network_server'], () =>
      Object.entries(sources.lorawanStats?.() ?? {}).map(([server, counts]) => [{ network_server: server }, counts.missing ?? 0]),
    );

    this.writeSeconds = new Histogram({
      name: 'waste_influx_write_seconds',
      help: 'Duration of successful InfluxDB writes (one batch of up to spool.batchLines points).',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [r],
    });
    this.ruleSeconds = new Histogram({
      name: 'waste_rules_evaluation_seconds',
      help: 'Time the rules took per message of readings.',
      buckets: [0.00001, 0.00005, 0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1],
      registers: [r],
    });
  }

  observeWrite(ms: number): void {
    this.writeSeconds.observe(ms / 1000);
  }

  observeRules(ms: number): void {
    this.ruleSeconds.observe(ms / 1000);
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }
}

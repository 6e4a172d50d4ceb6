// Wires the services of one process: spool → shipper → InfluxDB, the ingest pipeline, and either
// the embedded broker (default) or the ingest worker on an external broker. Nothing happens in the
// constructor; start() and stop() do the I/O.
import path from 'node:path';
import type { Logger } from 'pino';
import { EmbeddedBroker } from './broker/broker.ts';
import { DeviceFile } from './broker/device-file.ts';
import type { Config } from './config/schema.ts';
import { REJECTED_TOPIC } from './contract/topics.ts';
import { InfluxStore, InfluxUnreachableError } from './influx/client.ts';
import { findOnPath, startInfluxd, type InfluxdProcess } from './influx/influxd.ts';
import { MqttIngestWorker } from './ingest/mqtt-worker.ts';
import { IngestPipeline } from './ingest/pipeline.ts';
import { StatsReporter } from './ingest/stats-reporter.ts';
import { Shipper } from './spool/shipper.ts';
import { Spool } from './spool/spool.ts';

/** How long stop() keeps delivering the spool to InfluxDB before leaving the rest for next time. */
const STOP_DRAIN_MS = 5000;

export interface StartedService {
  mqttPort: number | null;
  wsPort: number | null;
  influxUrl: string;
}

export class TelemetryService {
  readonly spool: Spool;
  readonly influx: InfluxStore;
  readonly shipper: Shipper;
  readonly pipeline: IngestPipeline;
  readonly devices: DeviceFile;
  private broker: EmbeddedBroker | null = null;
  private worker: MqttIngestWorker | null = null;
  private privateInfluxd: InfluxdProcess | null = null;
  private readonly stats: StatsReporter;

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
    this.devices = new DeviceFile(config.broker.devicesFile);
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
    await this.spool.open();
    const backlog = this.spool.backlogBytes();
    if (backlog > 0) this.log.info({ backlogBytes: backlog, dir: this.config.spool.dir }, 'spool holds undelivered data from before; delivering it first');
    await this.connectInflux();
    this.shipper.start();

    let started: StartedService;
    if (this.config.broker.url) {
      this.worker = new MqttIngestWorker(
        { url: this.config.broker.url, ...this.config.ingest },
        this.pipeline,
        this.log.child({ service: 'ingest-worker' }),
      );
      await this.worker.start();
      started = { mqttPort: null, wsPort: null, influxUrl: this.influx.url };
    } else {
      await this.devices.load();
      this.devices.watch((error) => this.log.error({ file: this.devices.file, error: error.message }, 'provisioning file not reloaded'));
      if (this.devices.list().devices.length === 0) {
        this.log.warn({ file: this.devices.file }, 'no devices provisioned yet: add one with "npm run cli -- device add --class trucks --id TRUCK-001"');
      }
      const broker = new EmbeddedBroker({
        config: this.config.broker,
        credentials: this.devices,
        pipeline: this.pipeline,
        accepting: () => this.pipeline.accepting(),
        log: this.log.child({ service: 'broker' }),
      });
      this.broker = broker;
      this.devices.onChange(() => broker.revokeStale());
      this.pipeline.setRejectionPublisher((payload) => {
        broker.publish(REJECTED_TOPIC, payload, { qos: 1 }).catch(() => {});
      });
      const ports = await broker.start();
      started = { mqttPort: ports.port, wsPort: ports.wsPort, influxUrl: this.influx.url };
    }
    this.stats.start();
    return started;
  }

  /** Stops taking data, delivers what it can for a few seconds, and leaves the rest spooled. */
  async stop(): Promise<void> {
    await this.broker?.stop();
    await this.worker?.stop();
    this.devices.unwatch();
    this.stats.stop();
    await this.shipper.stop(STOP_DRAIN_MS);
    await this.spool.close();
    const left = this.spool.backlogBytes();
    if (left > 0) this.log.warn({ backlogBytes: left }, 'stopped with undelivered data in the spool; it is delivered at the next start');
    await this.privateInfluxd?.stop();
    this.privateInfluxd = null;
  }

  private async connectInflux(): Promise<void> {
    const { url, startPrivate } = this.config.influx;
    try {
      const server = await this.influx.detect();
      this.log.info({ influx: url, version: server.version }, 'InfluxDB found');
    } catch (error) {
      if (!(error instanceof InfluxUnreachableError)) throw error;
      const target = new URL(url);
      const loopback = ['127.0.0.1', 'localhost', '::1', '[::1]'].includes(target.hostname);
      if (startPrivate && loopback && findOnPath('influxd')) {
        const port = Number(target.port || 8086);
        const dir = path.join(this.config.dataDir, 'influxdb');
        this.log.info({ influx: url, dir }, 'no InfluxDB answers; starting a private influxd');
        this.privateInfluxd = await startInfluxd({ dir, port, rpcPort: port + 2 });
        const server = await this.influx.detect();
        this.log.info({ influx: url, version: server.version, pid: this.privateInfluxd.pid }, 'private InfluxDB started');
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

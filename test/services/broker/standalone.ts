// The embedded broker on its own, with the real registry (SQLite), spool and ingest pipeline but no
// InfluxDB, for the tests of logins, client ids and sessions; and a bare MQTT client over a TCP
// socket bound to a chosen loopback address (Linux routes all of 127.0.0.0/8 to lo), so a test can
// log in from as many remote addresses as it needs.
import net from 'node:net';
import path from 'node:path';
import mqttPacket from 'mqtt-packet';
import { EmbeddedBroker } from '../../../services/broker/broker.ts';
import { brokerSchema, ingestSchema, type BrokerConfig } from '../../../services/config/schema.ts';
import { IngestPipeline } from '../../../services/ingest/pipeline.ts';
import { createLogger } from '../../../services/log.ts';
import { RegistryDb } from '../../../services/registry/db.ts';
import { DeviceStore } from '../../../services/registry/devices.ts';
import { Spool } from '../../../services/spool/spool.ts';
import { tempDir } from '../../helpers/service.ts';

export interface StandaloneBroker {
  broker: EmbeddedBroker;
  store: DeviceStore;
  /** The broker's intake: a real ingest pipeline writing to `spool`. */
  pipeline: IngestPipeline;
  spool: Spool;
  port: number;
  url: string;
  stop(): Promise<void>;
}

/** `clock` moves the time failed logins back off by (the broker's BrokerDeps.clock). */
export async function startBroker(config: Partial<BrokerConfig> = {}, clock?: () => number): Promise<StandaloneBroker> {
  const dir = await tempDir('waste-broker-');
  const db = new RegistryDb(path.join(dir, 'registry.db'));
  db.open();
  const store = new DeviceStore(db);
  const spool = new Spool({ dir: path.join(dir, 'spool'), quotaBytes: 1e8, segmentBytes: 1e6, fsync: false });
  await spool.open();
  const log = createLogger(process.env.TEST_LOG_LEVEL ?? 'silent');
  const broker = new EmbeddedBroker({
    config: brokerSchema.parse({ host: '127.0.0.1', port: 0, wsPort: 0, ...config }),
    credentials: store,
    log,
    ...(clock ? { clock } : {}),
  });
  const pipeline = new IngestPipeline(spool, ingestSchema.parse({}), log);
  await broker.start(pipeline);
  const { port } = broker.ports();
  return {
    broker,
    store,
    pipeline,
    spool,
    port,
    url: `mqtt://127.0.0.1:${port}`,
    stop: async () => {
      await broker.stop();
      await spool.close();
      db.close();
    },
  };
}

export interface RawLogin {
  socket: net.Socket;
  /** The CONNACK return code, or 'closed' if the connection closed without one. */
  answer: Promise<number | 'closed'>;
  /** Every packet the broker sent, in order. */
  packets: mqttPacket.Packet[];
  closed: Promise<void>;
}

export interface RawLoginOptions {
  port: number;
  /** The loopback address to connect from, e.g. 127.0.0.2. */
  from?: string;
  username?: string;
  password?: string;
  clientId?: string;
  clean?: boolean;
  /** Sent instead of the CONNECT built from the options (for packets mqtt-packet will not build). */
  connectPacket?: Buffer;
}

/** Opens a TCP connection and sends one CONNECT (MQTT 3.1.1) at once. */
export function rawLogin(options: RawLoginOptions): RawLogin {
  const socket = net.connect({ host: '127.0.0.1', port: options.port, localAddress: options.from ?? '127.0.0.1' });
  const packets: mqttPacket.Packet[] = [];
  const parser = mqttPacket.parser({ protocolVersion: 4 });
  let settle: (value: number | 'closed') => void = () => {};
  const answer = new Promise<number | 'closed'>((resolve) => (settle = resolve));
  parser.on('packet', (packet) => {
    packets.push(packet);
    if (packet.cmd === 'connack') settle(packet.returnCode ?? 0);
  });
  socket.on('data', (chunk) => parser.parse(chunk));
  socket.on('error', () => {});
  const closed = new Promise<void>((resolve) =>
    socket.once('close', () => {
      settle('closed');
      resolve();
    }),
  );
  socket.write(
    options.connectPacket ??
    mqttPacket.generate({
      cmd: 'connect',
      protocolId: 'MQTT',
      protocolVersion: 4,
      clean: options.clean ?? true,
      clientId: options.clientId ?? `raw-${Math.random().toString(16).slice(2, 10)}`,
      keepalive: 60,
      ...(options.username === undefined ? {} : { username: options.username }),
      ...(options.password === undefined ? {} : { password: Buffer.from(options.password) }),
    }),
  );
  return { socket, answer, packets, closed };
}

/** Resolves once `check` holds, polling every 10 ms; rejects after `timeoutMs`. */
export async function until(check: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

// A persistent MQTT session on a broker the service does not run (an external device broker, a
// LoRaWAN network server's broker), spoken with mqtt-packet: clean session off and a stable client
// id, subscribed at QoS 1, so that what is published while the service is down is queued by the
// broker and delivered when it returns.
//
// Every message is handed to the handler as it arrives, and its PUBACK goes out once the handler
// resolves, that is once the message is durable. PUBACKs leave in the order the messages came
// ([MQTT-4.6.0-2]), in one write per turn of the event loop: the spool makes a whole group durable
// with one fsync, and the group's acknowledgements go out together. mqtt.js cannot do this: it
// reads the next packet of a connection only once the handler of the one before has called back,
// so each message waited for an fsync of its own (about 1,800 messages/s through Mosquitto).
//
// What one connection can hold is bounded: past UNACKED_MAX messages handled but not yet
// acknowledged, the socket is no longer read, so the broker keeps the rest (its in-flight window
// stops it sending more anyway: Mosquitto's max_inflight_messages, RabbitMQ's mqtt.prefetch). A
// handler that fails (a disk error) is tried again, with a growing wait, on the same connection: a
// broker resends an unacknowledged message only on the next connection ([MQTT-4.4.0-1]). When the
// connection drops, handlers still running for it give up (their acknowledgement could no longer be
// sent) and the broker delivers those messages again: a handler may therefore be called for a
// message an earlier call is still handling (the LoRaWAN bridge takes such a message once).
import net from 'node:net';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import mqttPacket, { type IPublishPacket, type Packet, type Parser } from 'mqtt-packet';
import type { Logger } from 'pino';
import WebSocket, { createWebSocketStream } from 'ws';
import type { Intake } from '../contract/source.ts';
import { within } from '../within.ts';
import { AckLine, type AckEntry } from './ack-line.ts';
import { PacketFraming, type OversizedPublish } from './mqtt-framing.ts';

export interface DurableSubscriptionOptions {
  /** mqtt://, mqtts://, ws:// or wss://. */
  url: string;
  clientId: string;
  username: string;
  password: string;
  subscriptions: string[];
  /**
   * Subscribed at QoS 0 beside them where the broker allows it (a broker's own reports, such as
   * Mosquitto's $SYS topics); a refusal is only logged. Their messages go to the handler too.
   */
  reports?: string[];
  /** 1 for a persistent, acknowledged session; 0 where the broker offers nothing else (The Things Stack). */
  qos: 0 | 1;
  /** Who connects, in logs and errors: "the ingest worker", "network server cs-1". */
  label: string;
  /** What to check when the broker cannot be reached or refuses the login, in logs and errors. */
  loginHint: string;
  /** What the broker's ACL must allow, said when it refuses the subscriptions. */
  aclHint: string;
  /**
   * Largest packet read whole. A PUBLISH above it is acknowledged unread and told to
   * refuseOversized; the handler does not see it.
   */
  maxPacketBytes: number;
  refuseOversized: (publish: OversizedPublish) => void;
  /**
   * Hands a message over only once the handler of the one before has resolved, for a handler that
   * must see its effects in order (the LoRaWAN bridge counts frame counters as uplinks become
   * durable); the acknowledgements then go out one by one. Otherwise every message is handed over
   * as it arrives.
   */
  oneAtATime?: boolean;
}

/** Handles one message; the broker is acknowledged once it resolves, and sends it again if it rejects. */
export type MessageHandler = (topic: string, payload: Buffer) => Promise<void>;

const CONNECT_TIMEOUT_MS = 10_000;
const RECONNECT_MS = 1000;
/** Seconds of the CONNECT's Keep Alive ([MQTT 3.1.1] §3.1.2.10); a PINGREQ goes out at half of it. */
const KEEPALIVE_S = 20;
/** Messages handled but not yet acknowledged on one connection before its socket is no longer read. */
const UNACKED_MAX = 10_000;
/** Publishes of the service's own (alerts, reports) waiting for the broker's PUBACK; more are refused. */
const OUTGOING_MAX = 10_000;
const SPOOL_FULL_RETRY_MS = 1000;
/** Waits before a failed handler is tried again: 1 s, doubling to 30 s. */
const RETRY_FIRST_MS = 1000;
const RETRY_MAX_MS = 30_000;
/** How long stop() lets handlers in progress finish, so that their acknowledgements go out. */
const STOP_GRACE_MS = 5000;
/** While the broker stays unreachable, the warning is repeated once per this many attempts. */
const WARN_EVERY_ATTEMPTS = 60;

/** CONNACK return codes, [MQTT 3.1.1] §3.2.2.3. */
const CONNACK_REFUSALS: Record<number, string> = {
  1: 'unacceptable protocol version',
  2: 'client identifier rejected',
  3: 'server unavailable',
  4: 'bad user name or password',
  5: 'not authorized',
};

interface Connection {
  readonly number: number;
  readonly socket: Duplex;
  /** QoS 1 messages received and not yet acknowledged, by packet id, in order. */
  readonly unacked: AckLine<number>;
  /** QoS 0 messages whose handler is running. */
  handlingQos0: number;
  paused: boolean;
  ackScheduled: boolean;
  /** The handler last started (oneAtATime). */
  last: Promise<void>;
  /** When the PINGREQ not yet answered went out. */
  pingSentAt: number | null;
  ready: boolean;
}

interface OutgoingPublish {
  packet: IPublishPacket;
  /** Written on some connection: sent again marked as a duplicate. */
  sent: boolean;
  resolve: () => void;
  reject: (error: Error) => void;
}

export class DurableSubscription {
  private connection: Connection | null = null;
  private connections = 0;
  private stopping = false;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private pingTimer: NodeJS.Timeout | null = null;
  private failedAttempts = 0;
  private readonly running = new Set<Promise<void>>();
  private readonly outgoing = new Map<number, OutgoingPublish>();
  private nextMessageId = 1;

  constructor(
    private readonly options: DurableSubscriptionOptions,
    private readonly handle: MessageHandler,
    private readonly log: Logger,
  ) {}

  get stopped(): boolean {
    return this.stopping;
  }

  /** Messages handled and not yet acknowledged on the current connection. */
  unacknowledged(): number {
    return this.connection ? pending(this.connection) : 0;
  }

  /**
   * Connects and subscribes. Rejects, saying what to check, when the broker refuses the login or a
   * subscription, or cannot be reached within CONNECT_TIMEOUT_MS; later losses are reconnected.
   */
  async start(): Promise<void> {
    this.stopping = false;
    const deadline = Date.now() + CONNECT_TIMEOUT_MS;
    const { url, label, loginHint } = this.options;
    for (;;) {
      try {
        await this.connect(deadline, true);
        break;
      } catch (error) {
        if (error instanceof RefusedError || Date.now() + RECONNECT_MS >= deadline || this.stopping) {
          throw new Error(
            error instanceof RefusedError
              ? `${label}: ${error.message}`
              : `${label}: no connection to the broker at ${url} within ${CONNECT_TIMEOUT_MS / 1000} s (${(error as Error).message}): is it running, and ${loginHint}?`,
          );
        }
        await new Promise((resolve) => setTimeout(resolve, RECONNECT_MS));
      }
    }
    this.pingTimer = setInterval(() => this.keepAlive(), (KEEPALIVE_S * 1000) / 2);
    this.pingTimer.unref();
  }

  /** Resolves once the broker has the message (QoS 1), or once it is written (QoS 0). */
  publish(topic: string, payload: string | Buffer, options: { qos?: 0 | 1; retain?: boolean } = {}): Promise<void> {
    const qos = options.qos ?? 1;
    const packet: IPublishPacket = { cmd: 'publish', topic, payload: typeof payload === 'string' ? Buffer.from(payload) : payload, qos, retain: options.retain ?? false, dup: false };
    if (this.stopping) return Promise.reject(new Error(`${this.options.label} is stopped`));
    const c = this.connection;
    if (qos === 0) {
      // QoS 0 is at most once: while there is no connection it is not sent.
      if (c?.ready) c.socket.write(mqttPacket.generate(packet));
      return Promise.resolve();
    }
    if (this.outgoing.size >= OUTGOING_MAX) return Promise.reject(new Error(`${OUTGOING_MAX} publishes of ${this.options.label} are waiting for the broker's acknowledgement`));
    return new Promise((resolve, reject) => {
      while (this.outgoing.has(this.nextMessageId)) this.nextMessageId = (this.nextMessageId % 65_535) + 1;
      packet.messageId = this.nextMessageId;
      this.nextMessageId = (this.nextMessageId % 65_535) + 1;
      const out = { packet, sent: false, resolve, reject };
      this.outgoing.set(packet.messageId, out);
      if (c?.ready) {
        c.socket.write(mqttPacket.generate(packet));
        out.sent = true;
      }
    });
  }

  async stop(): Promise<void> {
    this.stopping = true;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    if (this.pingTimer) clearInterval(this.pingTimer);
    this.reconnectTimer = this.pingTimer = null;
    // Handlers about to finish send their acknowledgements; the rest give up and their messages
    // come again at the next start.
    if (this.running.size > 0) await within(Promise.allSettled([...this.running]), STOP_GRACE_MS);
    const c = this.connection;
    this.connection = null;
    if (c) {
      this.sendAcknowledgements(c);
      c.socket.end(mqttPacket.generate({ cmd: 'disconnect' }));
      await within(new Promise((resolve) => c.socket.once('close', resolve)), 1000);
      c.socket.destroy();
    }
    for (const { reject } of this.outgoing.values()) reject(new Error(`${this.options.label} stopped before the broker acknowledged the publish`));
    this.outgoing.clear();
  }

  /** Opens one connection: resolves once the login and the subscriptions are granted. */
  private connect(deadline: number, first: boolean): Promise<void> {
    const { url, clientId, username, password, subscriptions, qos, aclHint } = this.options;
    const reports = this.options.reports ?? [];
    const socket = openTransport(url);
    const c: Connection = { number: ++this.connections, socket, unacked: new AckLine<number>(), handlingQos0: 0, last: Promise.resolve(), paused: false, ackScheduled: false, pingSentAt: null, ready: false };
    const parser: Parser = mqttPacket.parser({ protocolVersion: 4 });
    const framing = new PacketFraming(this.options.maxPacketBytes, (bytes) => parser.parse(bytes), (publish) => this.oversized(c, publish));
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      const fail = (error: Error) => {
        socket.destroy();
        if (!settled) {
          settled = true;
          clearTimeout(timer);
          reject(error);
        }
      };
      const timer = setTimeout(() => fail(new Error('no CONNACK or SUBACK in time')), Math.max(1000, deadline - Date.now()));
      socket.on('data', (chunk: Buffer) => {
        try {
          framing.feed(chunk);
        } catch (error) {
          this.log.error({ broker: url, error: (error as Error).message }, `the broker at ${url} sent what is not MQTT to ${this.options.label}; reconnecting`);
          socket.destroy();
        }
      });
      parser.on('error', (error: Error) => {
        this.log.error({ broker: url, error: error.message }, `the broker at ${url} sent a malformed packet to ${this.options.label}; reconnecting`);
        socket.destroy();
      });
      socket.on('error', (error: Error) => {
        if (settled && !this.stopping) this.log.warn({ broker: url, error: error.message }, `MQTT error on the connection of ${this.options.label}`);
        fail(error);
      });
      socket.on('close', () => {
        fail(new Error('the connection closed'));
        if (this.connection === c) this.lost(c);
      });
      const subscribeId = 1;
      parser.on('packet', (packet: Packet) => {
        c.pingSentAt = null;
        switch (packet.cmd) {
          case 'connack': {
            const code = packet.returnCode ?? 0;
            if (code !== 0) return fail(new RefusedError(`the broker at ${url} refused the login (CONNACK ${code}: ${CONNACK_REFUSALS[code] ?? 'unknown'}); ${this.options.loginHint}?`));
            this.log.info({ broker: url, clientId, sessionPresent: packet.sessionPresent }, `${this.options.label} connected`);
            // Subscribed on every connection: a session the broker lost (a restart without
            // persistence) would otherwise deliver nothing, silently.
            const wanted = [...subscriptions.map((topic) => ({ topic, qos })), ...reports.map((topic) => ({ topic, qos: 0 as const }))];
            socket.write(mqttPacket.generate({ cmd: 'subscribe', messageId: subscribeId, subscriptions: wanted }));
            return;
          }
          case 'suback': {
            const refused = subscriptions.filter((_, i) => (packet.granted[i] ?? 0x80) === 0x80);
            const reportsRefused = reports.filter((_, i) => (packet.granted[subscriptions.length + i] ?? 0x80) === 0x80);
            if (reportsRefused.length > 0) this.log.info({ broker: url, topics: reportsRefused }, `the broker at ${url} does not let ${this.options.label} read its reports ${reportsRefused.join(', ')}`);
            if (refused.length > 0) {
              const message = `the broker at ${url} refused the subscriptions ${refused.join(', ')} (SUBACK 0x80); ${aclHint}`;
              if (first) return fail(new RefusedError(message));
              this.log.error({ broker: url }, message);
            }
            c.ready = true;
            this.connection = c;
            this.failedAttempts = 0;
            // Publishes the broker had not acknowledged go again, marked as such ([MQTT-4.4.0-1]).
            for (const out of this.outgoing.values()) {
              socket.write(mqttPacket.generate({ ...out.packet, dup: out.sent }));
              out.sent = true;
            }
            settled = true;
            clearTimeout(timer);
            return resolve();
          }
          case 'publish':
            return this.received(c, packet);
          case 'puback': {
            const out = this.outgoing.get(packet.messageId!);
            if (out) {
              this.outgoing.delete(packet.messageId!);
              out.resolve();
            }
            return;
          }
          default:
            return; // pingresp, unsuback: nothing to do beyond noting the broker answers
        }
      });
      const connect = { cmd: 'connect' as const, protocolId: 'MQTT' as const, protocolVersion: 4 as const, clean: false, clientId, keepalive: KEEPALIVE_S };
      socket.write(mqttPacket.generate({ ...connect, ...(username ? { username } : {}), ...(password ? { password: Buffer.from(password) } : {}) }));
    });
  }

  private received(c: Connection, packet: IPublishPacket): void {
    const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload;
    if (packet.qos === 2) {
      // Nothing is subscribed at QoS 2, so a broker sends none ([MQTT-3.8.4-6]).
      this.log.error({ broker: this.options.url, topic: packet.topic }, 'the broker sent a QoS 2 message to a QoS 1 subscription; reconnecting');
      c.socket.destroy();
      return;
    }
    const entry = packet.qos === 1 ? c.unacked.add(packet.messageId!) : null;
    if (!entry) c.handlingQos0++;
    const handled = this.options.oneAtATime
      ? (c.last = c.last.catch(() => undefined).then(() => this.handleUntilDone(packet.topic, payload, c)))
      : this.handleUntilDone(packet.topic, payload, c);
    this.running.add(handled);
    handled
      .then(
        () => {
          if (entry) this.acknowledge(c, entry);
        },
        () => undefined, // the connection is gone: the broker sends the message again
      )
      .finally(() => {
        this.running.delete(handled);
        if (!entry) c.handlingQos0--;
        this.resumeIfRoom(c);
      });
    if (!c.paused && pending(c) >= UNACKED_MAX) {
      c.paused = true;
      c.socket.pause();
    }
  }

  private oversized(c: Connection, publish: OversizedPublish): void {
    try {
      this.options.refuseOversized(publish);
    } catch (error) {
      this.log.error({ error: (error as Error).message }, 'refusing an oversized message failed');
    }
    if (publish.qos === 1 && publish.messageId !== null) this.acknowledge(c, c.unacked.add(publish.messageId));
  }

  private acknowledge(c: Connection, entry: AckEntry): void {
    entry.done = true;
    if (c.ackScheduled) return;
    c.ackScheduled = true;
    setImmediate(() => this.sendAcknowledgements(c));
  }

  /** Sends the PUBACKs of every message at the head of the line that is durable, in one write. */
  private sendAcknowledgements(c: Connection): void {
    c.ackScheduled = false;
    if (c.socket.destroyed) return;
    const ids = c.unacked.takeDone();
    if (ids.length === 0) return;
    // PUBACK: type 4, Remaining Length 2, the packet id ([MQTT 3.1.1] §3.4).
    const acks = Buffer.allocUnsafe(4 * ids.length);
    ids.forEach((id, i) => {
      acks[4 * i] = 0x40;
      acks[4 * i + 1] = 2;
      acks.writeUInt16BE(id, 4 * i + 2);
    });
    c.socket.write(acks);
    this.resumeIfRoom(c);
  }

  private resumeIfRoom(c: Connection): void {
    if (c.paused && !c.socket.destroyed && pending(c) <= UNACKED_MAX / 2) {
      c.paused = false;
      c.pingSentAt = null;
      c.socket.resume();
    }
  }

  private keepAlive(): void {
    const c = this.connection;
    if (!c?.ready) return;
    // A paused socket is not read, so its PINGRESP cannot be seen; the broker still sees the PINGREQs.
    if (c.pingSentAt !== null && !c.paused && Date.now() - c.pingSentAt > KEEPALIVE_S * 1000) {
      this.log.warn({ broker: this.options.url }, `the broker at ${this.options.url} did not answer ${this.options.label}'s PINGREQ within ${KEEPALIVE_S} s; reconnecting`);
      c.socket.destroy();
      return;
    }
    if (c.pingSentAt === null || c.paused) {
      c.pingSentAt ??= Date.now();
      c.socket.write(mqttPacket.generate({ cmd: 'pingreq' }));
    }
  }

  private lost(c: Connection): void {
    this.connection = null;
    if (this.stopping) return;
    this.log.warn({ broker: this.options.url, unacknowledged: c.unacked.waiting }, `${this.options.label} lost its connection to ${this.options.url}; reconnecting (the broker sends what was not acknowledged again)`);
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    if (this.stopping || this.reconnectTimer) return;
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      if (this.stopping) return;
      this.connect(Date.now() + CONNECT_TIMEOUT_MS, false).catch((error: Error) => {
        if (this.stopping) return;
        if (this.failedAttempts++ % WARN_EVERY_ATTEMPTS === 0) {
          this.log.warn({ broker: this.options.url, error: error.message, attempts: this.failedAttempts }, `broker ${this.options.url} is unreachable for ${this.options.label}; retrying every second (${this.options.loginHint})`);
        }
        this.scheduleReconnect();
      });
    }, RECONNECT_MS);
  }

  /** Runs the handler until it succeeds, or until its acknowledgement could no longer be sent. */
  private handleUntilDone(topic: string, payload: Buffer, c: Connection): Promise<void> {
    return untilDurable(() => this.handle(topic, payload), () => this.stopping || c.socket.destroyed, topic, this.log);
  }
}

function pending(c: Connection): number {
  return c.unacked.waiting + c.handlingQos0;
}

/** A broker's refusal (of the login or a subscription), which trying again will not change. */
class RefusedError extends Error {}

function openTransport(url: string): Duplex {
  const parsed = new URL(url);
  const host = parsed.hostname.replace(/^\[(.*)\]$/, '$1');
  switch (parsed.protocol) {
    case 'mqtt:':
    case 'tcp:':
      return net.connect({ host, port: Number(parsed.port || 1883) });
    case 'mqtts:':
    case 'ssl:':
      return tls.connect({ host, port: Number(parsed.port || 8883), ...(net.isIP(host) ? {} : { servername: host }) });
    case 'ws:':
    case 'wss:':
      // [MQTT 3.1.1] §6: binary frames, subprotocol "mqtt".
      return createWebSocketStream(new WebSocket(url, 'mqtt'));
    default:
      throw new Error(`${url}: not an mqtt://, mqtts://, ws:// or wss:// URL`);
  }
}

/**
 * Runs `handle` until it succeeds, waiting 1 s, 2 s, … up to 30 s between tries; rejects once
 * `gone()` says the message's acknowledgement could no longer be sent (the connection or channel
 * closed, the source stopping), so that the broker delivers it again. A message left
 * unacknowledged instead would hold every acknowledgement after it, which go in order.
 */
export async function untilDurable(handle: () => Promise<void>, gone: () => boolean, topic: string, log: Logger): Promise<void> {
  for (let waitMs = RETRY_FIRST_MS; ; waitMs = Math.min(waitMs * 2, RETRY_MAX_MS)) {
    if (gone()) throw new Error('the connection closed before the message was handled');
    try {
      return await handle();
    } catch (error) {
      const given = gone();
      log.error(
        { topic, error: (error as Error).message },
        given
          ? 'could not make a message durable; not acknowledged, the broker sends it again on the next connection'
          : `could not make a message durable; trying again in ${waitMs / 1000} s (the broker holds what follows)`,
      );
      if (given) throw error;
      await new Promise((resolve) => setTimeout(resolve, waitMs));
    }
  }
}

/**
 * Resolves once the spool has room for a message; while it is full, waits instead of
 * acknowledging, so that the broker holds the backlog. Rejects when `stopping` turns true.
 */
export async function roomInSpool(intake: Intake, stopping: () => boolean, log: Logger): Promise<void> {
  while (!intake.accepting()) {
    if (stopping()) throw new Error('stopping while the spool is full');
    log.error('the spool is full; holding deliveries at the broker until InfluxDB takes the backlog');
    await new Promise((resolve) => setTimeout(resolve, SPOOL_FULL_RETRY_MS));
  }
}


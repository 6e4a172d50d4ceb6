// The embedded broker: aedes on TCP and WebSocket, with device authentication, the ACL, device
// status, and the ingest gate. It is one of the service's sources (contract/source.ts): started
// with the pipeline's Intake, it hands every device message to it; and it is the MessageBus the
// service publishes alerts and reports on. A device's QoS 1 PUBLISH is acknowledged by aedes right after
// authorizePublish calls back (lib/handlers/publish.js: authorizePublish, then PUBACK), so the gate
// holds that callback until the message is durable in the spool: an acknowledged message is never
// lost, and an unacknowledged one is resent by the device.
import net from 'node:net';
import { Duplex } from 'node:stream';
import { Aedes, type AedesPublishPacket, type AuthenticateError, type Client, type PublishPacket, type Subscription } from 'aedes';
import type { Logger } from 'pino';
import { WebSocketServer, createWebSocketStream } from 'ws';
import type { BrokerConfig } from '../config/schema.ts';
import { topics, type DeviceClass } from '../contract/topics.ts';
import type { Intake, MessageBus, Source } from '../contract/source.ts';
import { canPublish, canReceive, canSubscribe, type Identity } from './acl.ts';
import type { CredentialDirectory } from './credentials.ts';
import { FrameLimit, PacketTooLargeError } from './frame-limit.ts';
import { DroppedPayloads, boundedEmitter, cleanlyDisconnected, keepRefusedFiltersOutOfSessions, limitFramesBeforeParsing, parseIntoFreshPackets, verifyLibraryPatches } from './library-patches.ts';
import { DeviceLogins, MAX_USERNAME_LENGTH, type LoginRefusal } from './device-logins.ts';
import { addressSource } from './login-limits.ts';

export interface BrokerDeps {
  config: BrokerConfig;
  credentials: CredentialDirectory;
  log: Logger;
  /** Epoch ms; what failed logins back off by. Date.now unless a test moves time itself. */
  clock?: () => number;
}

export interface BrokerStats {
  refusedConnects: number;
  unauthorisedPublishes: number;
  refusedSubscriptions: number;
  oversizedPackets: number;
  spoolFullRefusals: number;
  /** Logins refused with CONNACK 3 to bound the work of logins: verifier full, per-source limit, backoff. */
  busyLoginRefusals: number;
  /** Logins refused because they did not finish within broker.loginTimeoutMs. */
  loginTimeouts: number;
}

/** CONNACK return codes, [MQTT 3.1.1] §3.2.2.3. */
const CONNACK = { identifierRejected: 2, serverUnavailable: 3, badCredentials: 4, notAuthorized: 5 } as const;
/** While the spool is full, the loud warning is repeated at most this often. */
const SPOOL_FULL_WARNING_MS = 10_000;
/** The CONNACK a refused login gets. */
const REFUSAL_CODES: Record<LoginRefusal, number> = { bad_credentials: CONNACK.badCredentials, disabled: CONNACK.notAuthorized, busy: CONNACK.serverUnavailable, unavailable: CONNACK.serverUnavailable };
const OFFLINE = Buffer.from('{"online":false}');
const ONLINE = Buffer.from('{"online":true}');

function refusal(message: string, returnCode: number): AuthenticateError {
  return Object.assign(new Error(message), { returnCode }) as AuthenticateError;
}

/** The connection closed before its login was answered. */
class ClientGoneError extends Error {}

/** The login did not finish within broker.loginTimeoutMs of its CONNECT. */
class LoginTimeoutError extends Error {}

/** What the broker keeps about one network connection while it logs in. */
interface Connection {
  /** Its remote address, as failed logins and pending verifications are counted (addressSource). */
  source: string;
  /** Aborted when the login is given up: the connection closed, or its deadline passed. */
  login: AbortController;
  /** CONNECT-to-CONNACK deadline. */
  deadline: NodeJS.Timeout | null;
  /** The CONNECT carried a zero-byte client id (aedes then makes one up). */
  emptyClientId: boolean;
  /** The device logged in on it, once it has (counted in openConnections). */
  device?: string;
}

/** Who holds a client id, over which connections, and whether its session outlives them. */
interface ClientIdHolder {
  holder: string;
  /** Connections logged in with the id (two while one takes over the other). */
  live: Set<Client>;
  /** The latest login's CleanSession was 0: the session, and the id with it, outlive the connection. */
  persistent: boolean;
}

/** Persistent sessions (client ids kept after their connection) one identity may hold; a new one past it is refused. */
const MAX_PERSISTENT_CLIENT_IDS = 8;
const holderOf = (identity: Identity): string => (identity.kind === 'device' ? `device ${identity.deviceId}` : `service account ${identity.name}`);


/**
 * Deliveries in flight through the broker's emitter before further messages queue; 0 is no limit.
 * aedes' default of 100 counts nested deliveries, which a burst of acknowledged publishes reaches
 * without any subscriber being slow: at 10,000 fixes/s the queue held 10,000 messages, each taken
 * off with an O(n) array shift (10 % of the CPU), and alerts waited behind it.
 */
const EMITTER_CONCURRENCY = 0;

/** The ports the listeners bound: port 0 in the configuration picks a free one; wsPort null means no WebSocket. */
export interface BrokerPorts {
  port: number;
  wsPort: number | null;
}

export class EmbeddedBroker implements Source, MessageBus {
  readonly name = 'mqtt';
  readonly stats: BrokerStats = { refusedConnects: 0, unauthorisedPublishes: 0, refusedSubscriptions: 0, oversizedPackets: 0, spoolFullRefusals: 0, busyLoginRefusals: 0, loginTimeouts: 0 };
  private lastSpoolFullWarning = 0;
  private aedes: Aedes | null = null;
  /**
   * Where device messages go, from start() on. Also says, through accepting(), when the spool is
   * full: connects and publishes are refused then.
   */
  private intake: Intake | null = null;
  private bound: BrokerPorts | null = null;
  private tcp: net.Server | null = null;
  private ws: WebSocketServer | null = null;
  private readonly identities = new WeakMap<Client, Identity>();
  /** Messages the gate refused: acknowledged to the device, but neither stored nor forwarded. */
  private readonly dropped = new DroppedPayloads();
  private readonly sockets = new Set<net.Socket>();
  private readonly clients = new Set<Client>();
  private readonly connections = new WeakMap<Client, Connection>();
  private readonly logins: DeviceLogins;
  /**
   * Who holds each client id: the identity of its live connection, or of the persistent session
   * the broker keeps for it once the connection is gone. [MQTT-3.1.4-2] has a server disconnect the
   * existing client when another connects with its id; here a client id is bound to the credentials
   * that hold it, so only they may take it over (their own half-open connection), and anyone else
   * is refused with CONNACK 2.
   */
  private readonly clientIdHolders = new Map<string, ClientIdHolder>();
  /** Live connections per device id, oldest first, each from its login to its close. */
  private readonly openConnections = new Map<string, Set<Client>>();
  /** The client ids each holder has, oldest first. */
  private readonly clientIdsOf = new Map<string, Set<string>>();

  constructor(private readonly deps: BrokerDeps) {
    this.logins = new DeviceLogins(deps.config, deps.credentials, deps.log, deps.clock);
  }

  /** The work secret verifications have done and refused: scrypt runs, busy refusals, dropped requests. */
  get verification(): DeviceLogins['verification'] {
    return this.logins.verification;
  }

  /** Secret verifications running or queued now. */
  pendingLogins(): number {
    return this.logins.pending();
  }

  /**
   * The ports the listeners bound, once start() has resolved (port 0 picks a free one; wsPort 0
   * in the configuration means no WebSocket, null here).
   */
  ports(): BrokerPorts {
    if (!this.bound) throw new Error('the embedded MQTT broker is not listening: ports() is known only once start() has resolved');
    return { ...this.bound };
  }

  /** Starts the listeners; from then on every device message goes to the intake. */
  async start(intake: Intake): Promise<void> {
    const { config, log } = this.deps;
    if (this.bound) throw new Error('the embedded MQTT broker is started already');
    // Set before any listener opens: aedes calls the hooks that use it from the first connection on.
    // It is kept after stop(): wills of the connections stop() closes still reach it.
    this.intake = intake;
    // Throws, before anything listens, when a patch whose absence loses data or security no
    // longer fits the installed aedes, mqtt-packet or mqemitter.
    await verifyLibraryPatches(log);
    const aedes = await Aedes.createBroker({
      mq: boundedEmitter(EMITTER_CONCURRENCY),
      // Until the whole CONNECT has arrived (lib/client.js); from then on loginTimeoutMs applies.
      connectTimeout: config.connectTimeoutMs,
      preConnect: (client, packet, done) => this.preConnect(client, packet, done),
      authenticate: (client, username, password, done) => {
        this.authenticate(client, username, password).then(
          () => done(null, true),
          (error: AuthenticateError) => {
            // aedes drops the answer to a connection already closed (connect.js, authenticate).
            if (error instanceof ClientGoneError) return done(error, false);
            this.stats.refusedConnects++;
            // Refusals for load (spool full, busy, timed out) are summarised by their own warnings.
            const level = error.returnCode === CONNACK.serverUnavailable ? 'debug' : 'warn';
            log[level]({ clientId: client.id, username, returnCode: error.returnCode }, `connect refused: ${error.message}`);
            done(error, false);
          },
        );
      },
      authorizePublish: (client, packet, done) => this.authorizePublish(client, packet, done),
      authorizeSubscribe: (client, subscription, done) => this.authorizeSubscribe(client, subscription, done),
      authorizeForward: (client, packet) => this.authorizeForward(client, packet),
    });
    keepRefusedFiltersOutOfSessions(aedes, (client, subscription) => {
      const identity = this.identities.get(client);
      return identity !== undefined && canSubscribe(identity, subscription.topic);
    });
    this.aedes = aedes;
    aedes.on('connackSent', (_packet, client) => this.endLoginDeadline(client));
    aedes.on('client', (client) => this.clients.add(client));
    aedes.on('clientReady', (client) => this.onStatus(client, true));
    aedes.on('clientDisconnect', (client) => {
      this.clients.delete(client);
      // A clean DISCONNECT suppresses the will ([MQTT-3.1.2-10]); publish the offline state ourselves.
      if (cleanlyDisconnected(client)) this.onStatus(client, false);
    });
    aedes.on('clientError', (client, error) => log.debug({ clientId: client.id, error: error.message }, 'client error'));

    this.tcp = net.createServer((socket) => this.handle(socket, socket));
    const port = await listen(this.tcp, config.port, config.host);
    let wsPort: number | null = null;
    if (config.wsPort !== 0) {
      // ws buffers a whole WebSocket message (100 MiB by default) before the frame limit sees it;
      // an MQTT packet never needs more than the packet limit plus its fixed header.
      this.ws = new WebSocketServer({ host: config.host, port: config.wsPort, maxPayload: config.maxPacketBytes + 5 });
      this.ws.on('connection', (socket, request) => {
        const stream = createWebSocketStream(socket);
        this.handle(stream, request.socket);
      });
      await new Promise<void>((resolve, reject) => {
        this.ws!.once('listening', resolve);
        this.ws!.once('error', reject);
      });
      wsPort = (this.ws.address() as net.AddressInfo).port;
    }
    this.bound = { port, wsPort };
    log.info({ port, wsPort }, 'embedded MQTT broker listening');
  }

  async stop(): Promise<void> {
    this.ws?.clients.forEach((client) => client.terminate());
    await new Promise<void>((resolve) => (this.ws ? this.ws.close(() => resolve()) : resolve()));
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => (this.tcp ? this.tcp.close(() => resolve()) : resolve()));
    await new Promise<void>((resolve) => (this.aedes ? this.aedes.close(() => resolve()) : resolve()));
    this.ws = null;
    this.tcp = null;
    this.aedes = null;
    this.bound = null;
  }

  /** MQTT clients connected now (devices and services). */
  connectedClients(): number {
    return this.aedes?.connectedClients ?? 0;
  }

  /** Publishes on behalf of the service (rejection reports, alerts, downlinks). */
  publish(topic: string, payload: string | Buffer, options: { qos?: 0 | 1; retain?: boolean } = {}): Promise<void> {
    const aedes = this.aedes;
    if (!aedes) return Promise.resolve();
    // aedes does not check what the service publishes itself: a topic name must not be empty nor
    // hold a wildcard or NUL ([MQTT-4.7.3-1], [MQTT-3.3.2-2], [MQTT-4.7.3-2]); a filter such as
    // topics.downlink()'s ".../downlink/#" is not a topic to publish on.
    if (topic === '' || topic.includes('#') || topic.includes('+') || topic.includes('\u0000')) return Promise.reject(new Error(`not a topic name to publish on: ${topic.slice(0, 200)}`));
    return new Promise((resolve, reject) =>
      aedes.publish(
        { cmd: 'publish', topic, payload: typeof payload === 'string' ? Buffer.from(payload) : payload, qos: options.qos ?? 1, retain: options.retain ?? false, dup: false },
        (error) => (error ? reject(error) : resolve()),
      ),
    );
  }

  /**
   * Disconnects at once every client whose credentials no longer hold: removed, disabled, or given
   * a new secret since it connected. Called whenever the credential directory changes.
   */
  revokeStale(): void {
    try {
      this.revokeStaleNow();
    } catch (error) {
      // The registry does not answer: the next change it tells of (or its reconnection) looks again.
      this.deps.log.warn({ error: (error as Error).message }, 'could not check the connected clients against the registry');
    }
  }

  /**
   * A credential lookup; `otherwise` answers when the registry does not (PostgreSQL restarting):
   * the broker goes on, and the login is refused as "server unavailable" (CONNACK 3), which
   * devices retry.
   */
  private lookUp<T>(find: () => T, otherwise: () => T): T {
    try {
      return find();
    } catch {
      return otherwise();
    }
  }

  private revokeStaleNow(): void {
    const { credentials, log } = this.deps;
    for (const client of this.clients) {
      const identity = this.identities.get(client);
      if (!identity) continue;
      const username = identity.kind === 'device' ? identity.deviceId : identity.name;
      const record = identity.kind === 'device' ? credentials.device(username) : credentials.service(username);
      const disabled = record !== undefined && 'enabled' in record && !record.enabled;
      if (!record || disabled || this.logins.verified.hashOf(username) !== record.secret_hash) {
        log.info({ username, clientId: client.id }, 'credentials revoked: disconnecting');
        this.logins.verified.forget(username);
        client.close();
      }
    }
  }

  /** The intake; only hooks of a started broker ask for it. */
  private gate(): Intake {
    if (!this.intake) throw new Error('the embedded MQTT broker has no intake: start() was not called');
    return this.intake;
  }

  private handle(stream: Duplex, socket: net.Socket): void {
    // A packet over the limit closes the connection; the chunk holding its header is not handed
    // on, so nothing in it is acknowledged and the device still holds it.
    limitFramesBeforeParsing(stream, new FrameLimit(this.deps.config.maxPacketBytes), (error) => {
      if (error instanceof PacketTooLargeError) this.refuseOversized(stream, error);
    });
    this.sockets.add(socket);
    // PUBACKs are tiny and each one releases a device's next publish: with Nagle's algorithm on, a
    // PUBACK written while the previous one is unacknowledged waits for the peer's delayed ACK (~40 ms).
    socket.setNoDelay(true);
    // A peer gone without a word (a terminal out of coverage) is found by TCP keepalive even when
    // its MQTT keepalive is 0, so its connection is closed and its will published.
    socket.setKeepAlive(true, 60_000);
    socket.once('close', () => this.sockets.delete(socket));
    stream.on('error', () => stream.destroy());
    const client = this.aedes!.handle(stream as unknown as net.Socket);
    const connection: Connection = { source: addressSource(socket.remoteAddress), login: new AbortController(), deadline: null, emptyClientId: false };
    this.connections.set(client, connection);
    stream.once('close', () => {
      // A verification still queued for this connection is dropped rather than computed for nobody.
      connection.login.abort(new ClientGoneError('the connection closed'));
      this.endLoginDeadline(client);
      this.releaseClientId(client);
      if (connection.device !== undefined) {
        const open = this.openConnections.get(connection.device);
        open?.delete(client);
        if (open?.size === 0) this.openConnections.delete(connection.device);
      }
    });
    // Where the parser has another shape, the self-check at start has said so.
    parseIntoFreshPackets(client);
  }

  private refuseOversized(stream: Duplex, error: PacketTooLargeError): void {
    this.stats.oversizedPackets++;
    const client = [...this.clients].find((c) => (c.conn as unknown) === stream);
    const identity = client ? this.identities.get(client) : undefined;
    this.gate().reject({
      reason: 'payload_too_large',
      message: `${error.message}; the connection was closed`,
      deviceId: identity?.kind === 'device' ? identity.deviceId : null,
      topic: '',
      receivedAt: Date.now(),
    });
  }

  private preConnect(client: Client, packet: { username?: string; clientId?: string; will?: unknown }, done: (error: Error | null, ok: boolean) => void): void {
    const connection = this.connections.get(client);
    if (connection) {
      connection.emptyClientId = !packet.clientId;
      const { loginTimeoutMs } = this.deps.config;
      connection.deadline = setTimeout(() => connection.login.abort(new LoginTimeoutError(`the login took longer than ${loginTimeoutMs} ms`)), loginTimeoutMs);
    }
    // Every device gets the same will: its retained status goes offline when the connection dies.
    // A registry that does not answer leaves it for authenticate() to refuse the login.
    const device = packet.username && packet.username.length <= MAX_USERNAME_LENGTH ? this.lookUp(() => this.deps.credentials.device(packet.username!), () => undefined) : undefined;
    if (device) packet.will = { topic: topics.status(device.class, device.id), payload: OFFLINE, qos: 1, retain: true };
    done(null, true);
  }

  private endLoginDeadline(client: Client): void {
    const connection = this.connections.get(client);
    if (connection?.deadline) clearTimeout(connection.deadline);
    if (connection) connection.deadline = null;
  }

  private async authenticate(client: Client, username: string | undefined, password: Buffer | undefined): Promise<void> {
    if (!this.gate().accepting()) {
      this.warnSpoolFull();
      throw refusal('the spool is full; try again later', CONNACK.serverUnavailable);
    }
    if (!username || !password) throw refusal('username and secret are required', CONNACK.badCredentials);
    const connection = this.connections.get(client);
    let outcome: Awaited<ReturnType<DeviceLogins['check']>>;
    try {
      outcome = await this.logins.check(username, password.toString('utf8'), connection?.source ?? 'unknown', connection?.login.signal);
    } catch (error) {
      if (error instanceof LoginTimeoutError) {
        this.stats.loginTimeouts++;
        this.logins.warnBusy(error.message, { loginTimeouts: this.stats.loginTimeouts });
        throw refusal(error.message, CONNACK.serverUnavailable);
      }
      throw error;
    }
    if (!outcome.ok) {
      if (outcome.refusal === 'busy') this.stats.busyLoginRefusals++;
      throw refusal(outcome.message, REFUSAL_CODES[outcome.refusal]);
    }
    const { identity } = outcome;
    // A connection that closed while its secret was verified must not claim its id: its close
    // has been handled already, so the hold would never be let go.
    if (this.connections.get(client)?.login.signal.aborted) throw refusal('the connection closed during its login', CONNACK.serverUnavailable);
    this.claimClientId(client, identity);
    this.identities.set(client, identity);
    if (identity.kind === 'device') this.countConnection(client, identity.deviceId);
  }

  /**
   * Each connection holds a socket, parser buffers and a session: a device's own secret must not
   * let it open them without end. Past broker.maxConnectionsPerDevice its oldest connection is
   * closed, not the new one refused: the new one has just proved the secret, and the old ones may
   * be dead connections nobody has noticed yet (a terminal that lost its network and came back).
   */
  private countConnection(client: Client, deviceId: string): void {
    const open = this.openConnections.get(deviceId) ?? new Set<Client>();
    this.openConnections.set(deviceId, open);
    open.add(client);
    this.connections.get(client)!.device = deviceId;
    for (const oldest of open) {
      if (open.size <= this.deps.config.maxConnectionsPerDevice) break;
      this.deps.log.warn({ deviceId, clientId: oldest.id }, `device ${deviceId} opened more than ${this.deps.config.maxConnectionsPerDevice} connections; closing its oldest`);
      open.delete(oldest);
      oldest.close();
    }
  }

  /**
   * Binds the client id to the identity, or refuses it (CONNACK 2): "waste-" ids are the service
   * accounts', a registered device's id is that device's, and an id held by other credentials (a
   * live connection or a kept session) stays theirs.
   */
  private claimClientId(client: Client, identity: Identity): void {
    const id = client.id;
    const holder = holderOf(identity);
    // [MQTT-3.1.3-8]: a zero-byte client id with CleanSession 0 is refused with return code 2.
    if (this.connections.get(client)?.emptyClientId && !client.clean) throw refusal('a persistent session needs a client id', CONNACK.identifierRejected);
    if (identity.kind === 'device' && id.startsWith('waste-')) throw refusal(`client id ${id} is reserved for service accounts`, CONNACK.identifierRejected);
    const owner = id.length <= MAX_USERNAME_LENGTH ? this.deps.credentials.device(id) : undefined;
    if (owner && !(identity.kind === 'device' && identity.deviceId === owner.id)) throw refusal(`client id ${id} is device ${owner.id}'s own`, CONNACK.identifierRejected);
    let held = this.clientIdHolders.get(id);
    if (held && held.holder !== holder) {
      // A device's own id is its own even if another client took it before the device was
      // registered; aedes then closes the other client ([MQTT-3.1.4-2]).
      if (!owner) throw refusal(`client id ${id.slice(0, 64)} is held by ${held.holder}`, CONNACK.identifierRejected);
      this.letGoClientId(id, held);
      held = undefined;
    }
    // The latest connection decides whether the session outlives it ([MQTT-3.1.2-6]).
    if (held) {
      held.live.add(client);
      held.persistent = !client.clean;
      return;
    }
    const ids = this.clientIdsOf.get(holder) ?? new Set<string>();
    // A client cycling through new ids with persistent sessions would otherwise have aedes keep a
    // session, and its queue, for every one of them (in memory, without end).
    if (!client.clean && [...ids].filter((other) => this.clientIdHolders.get(other)?.persistent).length >= MAX_PERSISTENT_CLIENT_IDS) {
      throw refusal(`${holder} holds ${MAX_PERSISTENT_CLIENT_IDS} persistent sessions already; reuse one of their client ids, or connect with a clean session`, CONNACK.identifierRejected);
    }
    this.clientIdHolders.set(id, { holder, live: new Set([client]), persistent: !client.clean });
    ids.add(id);
    this.clientIdsOf.set(holder, ids);
  }

  private letGoClientId(id: string, held: ClientIdHolder): void {
    this.clientIdHolders.delete(id);
    const ids = this.clientIdsOf.get(held.holder);
    ids?.delete(id);
    if (ids?.size === 0) this.clientIdsOf.delete(held.holder);
  }

  /** A connection is gone: a clean session ends with the last of its connections and frees the id; a persistent one keeps it. */
  private releaseClientId(client: Client): void {
    const held = client.id ? this.clientIdHolders.get(client.id) : undefined;
    if (!held?.live.delete(client)) return;
    if (held.live.size === 0 && !held.persistent) this.letGoClientId(client.id, held);
  }

  private authorizePublish(client: Client | null, packet: PublishPacket, done: (error?: Error | null) => void): void {
    // client is null for the stored will of a session that ended while no broker held it; those
    // wills are set by preConnect, so they are the device's own status topic.
    const identity = client ? this.identities.get(client) : undefined;
    if (client && !identity) return done(new Error('not authenticated'));
    const receivedAt = Date.now();
    if (identity?.kind === 'service') {
      return done(canPublish(identity, packet.topic) === 'allow' ? null : new Error(`service ${identity.name} may not publish on ${packet.topic}`));
    }
    if (identity && canPublish(identity, packet.topic) === 'deny') {
      // [MQTT-3.3.5-2]: acknowledge and drop, so the device's own traffic keeps flowing.
      this.stats.unauthorisedPublishes++;
      this.drop(packet);
      this.gate().reject({
        reason: 'unauthorised_topic',
        message: `device ${identity.deviceId} may publish only under waste/${identity.deviceClass}/${identity.deviceId}/`,
        deviceId: identity.deviceId,
        topic: packet.topic,
        receivedAt,
      });
      return done(null);
    }
    if (!this.gate().accepting()) {
      this.warnSpoolFull();
      return done(new Error('spool full: publish refused, the device keeps the data'));
    }
    this.gate().ingest({ topic: packet.topic, payload: packet.payload as Buffer, receivedAt }).then(
      (outcome) => {
        // Subscribers and the retained copy get only what was accepted: a partly refused batch is
        // forwarded as its accepted readings, a wholly refused message not at all.
        if (outcome.forward === null) this.drop(packet);
        else packet.payload = outcome.forward;
        // A group commit releases many publishes of a client at once; their PUBACKs still leave in
        // one write, as mqtt-packet corks the connection for each packet and uncorks it on the next
        // tick (writeToStream.js).
        done(null);
      },
      (error: Error) => {
        this.deps.log.error({ topic: packet.topic, error: error.message }, 'could not make a publish durable; not acknowledged');
        done(error);
      },
    );
  }

  private warnSpoolFull(): void {
    this.stats.spoolFullRefusals++;
    const now = Date.now();
    if (now - this.lastSpoolFullWarning < SPOOL_FULL_WARNING_MS) return;
    this.lastSpoolFullWarning = now;
    this.deps.log.error(
      { refusals: this.stats.spoolFullRefusals },
      'SPOOL FULL: refusing device data (connections closed without acknowledgement, so devices keep it). ' +
        'InfluxDB is not taking the backlog: check it, or raise spool.quotaBytes (WASTE_SPOOL_QUOTA_BYTES).',
    );
  }

  /**
   * The last check before a message leaves for a client, whichever subscription or stored session
   * matched it: refused payloads go nowhere, and a device gets only its own downlink.
   */
  private authorizeForward(client: Client, packet: AedesPublishPacket): AedesPublishPacket | null {
    if (this.dropped.has(packet)) return null;
    const identity = this.identities.get(client);
    return identity && canReceive(identity, packet.topic) ? packet : null;
  }

  private drop(packet: PublishPacket): void {
    this.dropped.drop(packet);
  }

  private authorizeSubscribe(client: Client, subscription: Subscription, done: (error: Error | null, subscription?: Subscription | null) => void): void {
    const identity = this.identities.get(client);
    if (identity && canSubscribe(identity, subscription.topic)) return done(null, subscription);
    this.stats.refusedSubscriptions++;
    this.deps.log.warn({ clientId: client.id, filter: subscription.topic }, 'subscription refused');
    done(null, null); // SUBACK 0x80, [MQTT-3.9.3]
  }

  private onStatus(client: Client, online: boolean): void {
    const identity = this.identities.get(client);
    if (identity?.kind !== 'device') return;
    const { deviceClass, deviceId } = identity;
    this.publish(topics.status(deviceClass, deviceId), online ? ONLINE : OFFLINE, { qos: 1, retain: true }).catch(() => {});
    this.recordStatus(deviceClass, deviceId, online);
  }

  private recordStatus(deviceClass: DeviceClass, deviceId: string, online: boolean): void {
    this.gate().deviceStatus(deviceClass, deviceId, online).catch((error: Error) =>
      this.deps.log.warn({ deviceId, error: error.message }, 'could not record device status'),
    );
  }
}

function listen(server: net.Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve((server.address() as net.AddressInfo).port));
  });
}


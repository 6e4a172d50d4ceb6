// Every place the broker reaches into aedes, mqtt-packet, mqemitter, aedes-packet and
// aedes-persistence past their documented options and hooks, in one module. Each patch is a small
// function saying why it is there and which library file it depends on; LIBRARY_PATCHES says what
// each one needs of the libraries, and verifyLibraryPatches() checks it when the broker starts, with
// a probe session on a throwaway aedes broker over an in-memory stream. An upgrade that changes one
// of those shapes is then told at start, in one sentence naming the package, the version installed,
// the version the patch was written for and what stops working, rather than found as a crash under
// load or a quiet leak. PATCHED_FOR holds the versions the patches were written and tested for.
import fs from 'node:fs';
import { createRequire } from 'node:module';
import type net from 'node:net';
import path from 'node:path';
import { Duplex } from 'node:stream';
import { Aedes, type AedesPublishPacket, type Client, type PublishPacket, type Subscription } from 'aedes';
import mqemitter, { type MQEmitter } from 'mqemitter';
import mqttPacket from 'mqtt-packet';
import type { Logger } from 'pino';

/** The versions the patches here were written and tested for; package.json should pin exactly these. */
export const PATCHED_FOR = {
  aedes: '1.2.0',
  'aedes-packet': '4.0.1',
  'aedes-persistence': '11.0.0',
  mqemitter: '7.1.0',
  'mqtt-packet': '9.0.2',
} as const;

export type PatchedPackage = keyof typeof PATCHED_FOR;

// ---------------------------------------------------------------------------------------------
// The frame limit: aedes reads with read() (aedes lib/client.js, nextBatch)

/** What limitFramesBeforeParsing asks of a frame limit (frame-limit.ts, FrameLimit). */
export interface ChunkCheck {
  /** Throws to refuse the chunk. */
  check(chunk: Buffer): void;
}

/**
 * Checks every chunk of the connection before aedes' parser sees it. aedes takes what arrives with
 * read() on 'readable' (lib/client.js, nextBatch: `client.conn.read(null)`): each chunk is checked
 * there, before its parser buffers anything, and nothing stands between the socket and aedes (two
 * stream layers per connection cost about 20 µs a message at 10,000 messages/s). A chunk the check
 * throws on is not handed on and the connection is destroyed, so nothing in it is acknowledged and
 * the device still holds it. Installed before aedes.handle(stream).
 */
export function limitFramesBeforeParsing(stream: Duplex, limit: ChunkCheck, refused: (error: unknown) => void): void {
  const read = stream.read.bind(stream);
  stream.read = (size?: number) => {
    const chunk = read(size) as Buffer | string | null;
    if (chunk === null || typeof chunk === 'string') return chunk;
    try {
      limit.check(chunk);
      return chunk;
    } catch (error) {
      refused(error);
      stream.destroy();
      return null;
    }
  };
}

// ---------------------------------------------------------------------------------------------
// Fresh packet objects: mqtt-packet's parser (mqtt-packet parser.js, _parseHeader and _newPacket)

/** The part of mqtt-packet's Parser (parser.js) parseIntoFreshPackets relies on. */
interface PacketParser {
  packet: object;
  _parseHeader(): boolean;
}

/** aedes' client keeps its mqtt-packet parser as _parser (lib/client.js, constructor). */
function parserOf(client: unknown): PacketParser | null {
  const parser = (client as { _parser?: Partial<PacketParser> } | null)?._parser;
  if (!parser || typeof parser._parseHeader !== 'function' || typeof parser.packet !== 'object' || parser.packet === null) return null;
  return parser as PacketParser;
}

/**
 * Makes aedes parse each MQTT packet into an object allocated when that packet's first byte
 * arrives. mqtt-packet's parser (parser.js, _newPacket) allocates the object for a connection's
 * next packet as soon as the previous one is emitted, and fills it in when that next packet comes.
 * A truck sending one fix a second keeps that empty object for a second, so V8 has promoted it to
 * the old generation by the time the fix is written into it. V8's scavenger keeps every young
 * object an old object points to alive, dead or not, until the next full collection: so every
 * payload, and with it the socket read buffer it is a view of, was promoted as well. At 10,000
 * connections that is about 2.5 MB/s of external memory; past V8's external-memory limit every
 * socket read then does a 5–10 ms slice of old-generation marking on the main thread
 * (Heap::ReportExternalMemoryPressure), which held alerts back by up to half a second
 * (docs/alerts.md, "Speed").
 *
 * Returns false, changing nothing, when the client's parser does not have that shape (the broker
 * still works; only the memory effect above returns).
 */
export function parseIntoFreshPackets(client: Client): boolean {
  const parser = parserOf(client);
  if (!parser) return false;
  const parseHeader = parser._parseHeader;
  // A packet's header byte is the first thing _parseHeader reads; nothing of it is in the object yet.
  const Packet = parser.packet.constructor as new () => object;
  parser._parseHeader = function (this: PacketParser): boolean {
    this.packet = new Packet();
    return parseHeader.call(this);
  };
  return true;
}

// ---------------------------------------------------------------------------------------------
// The emitter's depth: mqemitter's _do (mqemitter mqemitter.js, MQEmitter.prototype._do)

/** Emits nested deeper than this continue on the next turn of the event loop. */
const MAX_EMIT_DEPTH = 200;

type Do = (message: unknown, callback: () => void) => unknown;

/** Emits each bounded emitter has taken through its _do: the self-check's proof that emit still goes there. */
const emitsThroughDo = new WeakMap<MQEmitter, { count: number }>();

/**
 * The message emitter under aedes, kept from recursing without bound. aedes passes every publish
 * through mqemitter (aedes.js, emitPacket: `broker.mq.emit`), and a delivery that completes at once
 * can start the next one from inside its callback: mqemitter's emit calls _do, which calls the
 * callback synchronously when every listener did (mqemitter.js, _do and fastparallel). A burst of
 * thousands (a spool group commit releasing that many publishes, or a queue drained after the
 * in-flight limit) goes one stack level deeper per message, overflows the stack and kills the
 * process (mqemitter pull request #204, unresolved upstream). Here an emit nested deeper than
 * MAX_EMIT_DEPTH continues on the next turn of the event loop instead. Empty levels match as aedes
 * sets them up itself ([MQTT-4.7.1-3]). An emitter without _do is returned as mqemitter made it
 * (the self-check says so).
 */
export function boundedEmitter(concurrency: number): MQEmitter {
  const mq = mqemitter({ concurrency, matchEmptyLevels: true });
  const internals = mq as unknown as { _do?: Do };
  const original = internals._do;
  if (typeof original !== 'function') return mq;
  const seen = { count: 0 };
  emitsThroughDo.set(mq, seen);
  let depth = 0;
  internals._do = function (message, callback) {
    seen.count++;
    if (depth >= MAX_EMIT_DEPTH) {
      setImmediate(() => original.call(mq, message, callback));
      return mq;
    }
    depth++;
    try {
      return original.call(mq, message, callback);
    } finally {
      depth--;
    }
  };
  return mq;
}

// ---------------------------------------------------------------------------------------------
// A clean DISCONNECT: aedes' _disconnected (aedes lib/handlers/index.js, lib/client.js)

/**
 * True when the client ended its connection with a DISCONNECT packet. aedes sets _disconnected then
 * (lib/handlers/index.js, case 'disconnect'; [MQTT-3.14.4-3]) and because of it does not publish
 * the will (lib/client.js, close: finish; [MQTT-3.1.2-10]). Its clientDisconnect event fires for
 * either ending and says nothing else of which it was, so this is how the broker knows to publish
 * and record the offline status the suppressed will would have.
 */
export function cleanlyDisconnected(client: Client): boolean {
  return (client as Client & { _disconnected?: unknown })._disconnected === true;
}

// ---------------------------------------------------------------------------------------------
// Session filters: aedes' persistence.addSubscriptions (aedes lib/handlers/subscribe.js)

/** The part of aedes' session store (aedes-persistence asyncPersistence.js) the broker filters. */
interface SessionStore {
  addSubscriptions(client: Client, subscriptions: Subscription[]): Promise<unknown>;
}

function sessionStoreOf(aedes: unknown): SessionStore | null {
  const persistence = (aedes as { persistence?: Partial<SessionStore> } | null)?.persistence;
  return persistence && typeof persistence.addSubscriptions === 'function' ? (persistence as SessionStore) : null;
}

/**
 * aedes stores a persistent session's subscriptions as the SUBSCRIBE packet listed them, refused
 * filters included (lib/handlers/subscribe.js, storeSubscriptions: addSubscriptions(client,
 * packet.subscriptions) once any filter is granted). A device subscribing to its downlink and
 * "waste/#" in one packet then had every QoS 1 message of the fleet queued for its session while it
 * was away (in memory, aedes-persistence asyncPersistence.js outgoingEnqueueCombi), and its refused
 * filters brought back on every reconnection; authorizeForward keeps the queued messages from being
 * delivered (lib/handlers/connect.js, emptyQueueFilter), not from being queued. Only the filters
 * `granted` accepts are stored. Returns false, changing nothing, when aedes has no such store.
 */
export function keepRefusedFiltersOutOfSessions(aedes: Aedes, granted: (client: Client, subscription: Subscription) => boolean): boolean {
  const sessions = sessionStoreOf(aedes);
  if (!sessions) return false;
  const store = sessions.addSubscriptions.bind(sessions);
  sessions.addSubscriptions = (client, subscriptions) => store(client, subscriptions.filter((subscription) => granted(client, subscription)));
  return true;
}

// ---------------------------------------------------------------------------------------------
// Refused messages not forwarded: one payload Buffer from authorizePublish to authorizeForward

/**
 * Messages the gate refused, told apart when aedes is about to forward them. authorizePublish gets
 * the parser's packet; aedes forwards a copy of it (aedes.js publish: `new Packet(packet, this)`,
 * aedes-packet packet.js keeping `payload` by reference, also in a stored session's queue) and
 * authorizeForward gets that copy (lib/client.js, deliver0/deliverQoS; lib/handlers/connect.js,
 * emptyQueueFilter). The payload Buffer is the one object both hooks see, so it is what marks a
 * message acknowledged to the device but neither stored nor forwarded.
 */
export class DroppedPayloads {
  private readonly payloads = new WeakSet<Buffer>();

  /** Called from authorizePublish: the message is not retained, and forwarded to nobody. */
  drop(packet: PublishPacket): void {
    packet.retain = false;
    this.payloads.add(packet.payload as Buffer);
  }

  /** Called from authorizeForward. */
  has(packet: AedesPublishPacket): boolean {
    return this.payloads.has(packet.payload as Buffer);
  }
}

// ---------------------------------------------------------------------------------------------
// The self-check

/** What a probe session on a throwaway aedes broker showed of the libraries (probeLibraries). */
export interface LibraryShape {
  /** The probe connection's aedes client. */
  client: unknown;
  /** Chunks of the probe connection that went through the read() wrapper before aedes parsed them. */
  chunksChecked: number;
  /** 'data' listeners aedes put on the connection: a flowing stream hands chunks on without read(). */
  dataListeners: number;
  /** The throwaway broker's bounded emitter, and the emits it took through _do during the session. */
  emitter: unknown;
  emitsThroughDo: number;
  /** The throwaway broker (for its persistence), and the filters of the persistent probe session that reached persistence.addSubscriptions. */
  aedes: unknown;
  filtersStored: number;
  /** authorizeForward got the payload Buffer authorizePublish saw; null when nothing was forwarded. */
  samePayloadForwarded: boolean | null;
  /** The client's _disconnected before and after its DISCONNECT. */
  disconnectedBefore: unknown;
  disconnectedAfter: unknown;
  /** The step of the probe session that did not finish in time or threw (and why), or null when all finished. */
  unfinished: string | null;
}

export interface LibraryPatch {
  /** The function above that holds the patch. */
  name: string;
  /** The packages whose internals it depends on, the one it reaches into most first. */
  packages: readonly PatchedPackage[];
  /** The library files it depends on. */
  files: string;
  /** What stops working when the libraries no longer have the shape the patch relies on. */
  without: string;
  /**
   * True: the broker refuses to start without the patch, because its absence loses data or opens a
   * hole; false: the broker logs and runs without it.
   */
  required: boolean;
  /** What is wrong with the shape the probe saw, or null when it is the one the patch relies on. */
  problem(shape: LibraryShape): string | null;
}

const hasMethod = (value: unknown, member: string): boolean => typeof (value as Record<string, unknown> | null)?.[member] === 'function';

/** When the probe session stopped early, that is the problem to tell, not the step it never reached. */
const stoppedBefore = (shape: LibraryShape, step: string): string | null =>
  shape.unfinished === null ? null : `the probe session stopped at ${shape.unfinished}, before ${step}`;

export const LIBRARY_PATCHES: readonly LibraryPatch[] = [
  {
    name: 'limitFramesBeforeParsing',
    packages: ['aedes'],
    files: 'aedes/lib/client.js (nextBatch: conn.read(null) on readable)',
    // Required: without it any connection, logged in or not, makes the parser buffer a packet of up
    // to 256 MB before anything refuses it; a handful exhaust the memory.
    required: true,
    without: 'packets over broker.maxPacketBytes are no longer refused from their header: any connection, logged in or not, can make the broker buffer up to 256 MB for one packet',
    problem: (shape) => {
      if (shape.dataListeners > 0) return "aedes listens for 'data' on the connection, so chunks reach its parser without read()";
      if (shape.chunksChecked === 0) return stoppedBefore(shape, 'its CONNECT was read') ?? "aedes took the connection's bytes without read()";
      return null;
    },
  },
  {
    name: 'parseIntoFreshPackets',
    packages: ['mqtt-packet', 'aedes'],
    files: 'mqtt-packet/parser.js (packet, _parseHeader, _newPacket); aedes/lib/client.js (client._parser)',
    // Not required: only memory and GC pauses suffer, no message is lost or let through.
    required: false,
    without: "each connection's waiting packet object is promoted with the payloads later written into it, and at thousands of connections GC pauses hold alerts back (docs/alerts.md, Speed)",
    problem: (shape) => {
      if (shape.client === undefined) return stoppedBefore(shape, 'its client was made') ?? 'aedes.handle() made no client';
      return parserOf(shape.client) ? null : 'the aedes client has no _parser with a _parseHeader function and a packet object';
    },
  },
  {
    name: 'boundedEmitter',
    packages: ['mqemitter'],
    files: 'mqemitter/mqemitter.js (emit and _released call _do)',
    // Required: the process dies of a stack overflow in the first burst of a few hundred deliveries
    // that complete at once (fewer than 500 through aedes 1.2.0 on Node 20's default stack, see
    // test/services/broker/emitter-depth.test.ts), at peak load when it is least expected; better
    // found at start.
    required: true,
    without: 'a burst of a few hundred deliveries that complete at once overflows the stack and kills the process',
    problem: (shape) => {
      if (!hasMethod(shape.emitter, '_do')) return 'the mqemitter instance has no _do method';
      if (shape.emitsThroughDo === 0) return stoppedBefore(shape, 'its publish') ?? "the probe's publish did not go through _do";
      return null;
    },
  },
  {
    name: 'cleanlyDisconnected',
    packages: ['aedes'],
    files: "aedes/lib/handlers/index.js (case 'disconnect': client._disconnected = true); aedes/lib/client.js (close: no will when _disconnected)",
    // Required: every device that disconnects cleanly would stay online in its retained status and
    // in InfluxDB, its offline status lost.
    required: true,
    without: 'a device that disconnects cleanly is no longer recorded offline: aedes suppresses its will, so its retained status stays online and no offline status is stored',
    problem: (shape) => {
      if (shape.client === undefined) return stoppedBefore(shape, 'its client was made') ?? 'aedes.handle() made no client';
      if (shape.disconnectedBefore !== false) return `a new aedes client has _disconnected ${String(shape.disconnectedBefore)}, not false`;
      if (shape.disconnectedAfter !== true) return stoppedBefore(shape, 'its DISCONNECT') ?? `a client that sent DISCONNECT has _disconnected ${String(shape.disconnectedAfter)}, not true`;
      return null;
    },
  },
  {
    name: 'keepRefusedFiltersOutOfSessions',
    packages: ['aedes', 'aedes-persistence'],
    files: 'aedes/lib/handlers/subscribe.js (storeSubscriptions: persistence.addSubscriptions); aedes-persistence/asyncPersistence.js',
    // Required: one device's refused "waste/#" would have the whole fleet's QoS 1 traffic queued in
    // memory for its session while it is away, without bound.
    required: true,
    without: "a persistent session keeps the filters the ACL refused, and while its device is away every QoS 1 message they match (waste/#: the whole fleet's) is queued in memory for it",
    problem: (shape) => {
      if (!sessionStoreOf(shape.aedes)) return "aedes' persistence has no addSubscriptions method";
      if (shape.filtersStored === 0) return stoppedBefore(shape, 'its SUBSCRIBE was stored') ?? "a persistent session's SUBSCRIBE did not go through persistence.addSubscriptions";
      return null;
    },
  },
  {
    name: 'DroppedPayloads',
    packages: ['aedes', 'aedes-packet'],
    files: 'aedes/aedes.js (publish: new Packet(packet)); aedes-packet/packet.js (payload kept by reference); aedes/lib/client.js (authorizeForward)',
    // Required: publishes the gate refused (on another device's topic, wholly invalid) would reach
    // subscribers as if accepted.
    required: true,
    without: "messages the broker refused (on another device's topic, or with no valid reading) are forwarded to subscribers as if accepted",
    problem: (shape) => {
      if (shape.samePayloadForwarded === null) return stoppedBefore(shape, 'its publish was forwarded') ?? "the probe's publish was not forwarded to its subscription";
      return shape.samePayloadForwarded ? null : 'authorizeForward got another payload Buffer than the one authorizePublish saw';
    },
  },
];

/** A patch whose libraries no longer have the shape it relies on. */
export interface PatchFailure {
  patch: LibraryPatch;
  /** The one sentence that says it: packages and versions, what changed, what stops working. */
  message: string;
}

export class LibraryPatchError extends Error {
  constructor(readonly failures: PatchFailure[]) {
    super(failures.map((failure) => failure.message).join(' '));
  }
}

const requireHere = createRequire(import.meta.url);

/** The entry file a package is loaded from: aedes' own dependencies as aedes resolves them, mqemitter as boundedEmitter imports it. */
function entryOf(pkg: PatchedPackage): string {
  if (pkg === 'aedes' || pkg === 'mqemitter') return requireHere.resolve(pkg);
  return createRequire(requireHere.resolve('aedes')).resolve(pkg);
}

const installed = new Map<PatchedPackage, string>();

/** The version of the package as installed (its node_modules/<pkg>/package.json), or "unknown". */
export function installedVersion(pkg: PatchedPackage): string {
  let version = installed.get(pkg);
  if (version === undefined) {
    version = readVersion(pkg);
    installed.set(pkg, version);
  }
  return version;
}

function readVersion(pkg: PatchedPackage): string {
  try {
    // aedes' exports do not include its package.json: it is found from the entry file up.
    for (let dir = path.dirname(entryOf(pkg)); ; dir = path.dirname(dir)) {
      const file = path.join(dir, 'package.json');
      if (fs.existsSync(file)) {
        const manifest = JSON.parse(fs.readFileSync(file, 'utf8')) as { name?: string; version?: string };
        if (manifest.name === pkg) return manifest.version ?? 'unknown';
      }
      if (path.dirname(dir) === dir) return 'unknown';
    }
  } catch {
    return 'unknown';
  }
}

/** The sentence for one failed check. */
function failureMessage(patch: LibraryPatch, problem: string): string {
  const versions = patch.packages
    .map((pkg) => `${pkg} ${installedVersion(pkg)} is installed (the patch was written for ${PATCHED_FOR[pkg]})`)
    .join(', ');
  return `The broker's patch ${patch.name} (services/broker/library-patches.ts) no longer fits the library: ${versions}, and ${problem} [${patch.files}]; so ${patch.without}.`;
}

/** The patches whose shape the probe did not find. */
export function checkLibraryShape(shape: LibraryShape, patches: readonly LibraryPatch[] = LIBRARY_PATCHES): PatchFailure[] {
  const failures: PatchFailure[] = [];
  for (const patch of patches) {
    const problem = patch.problem(shape);
    if (problem !== null) failures.push({ patch, message: failureMessage(patch, problem) });
  }
  return failures;
}

/** The probe session's steps, each given this long. */
const PROBE_STEP_MS = 2000;
const PROBE_TOPIC = 'library-probe/t';

/**
 * One session on a throwaway aedes broker, with every patch installed, over an in-memory stream:
 * CONNECT with a persistent session, SUBSCRIBE, PUBLISH forwarded back to itself, DISCONNECT. What
 * it saw is what the patches rely on.
 */
export async function probeLibraries(): Promise<LibraryShape> {
  const emitter = boundedEmitter(0);
  let published: unknown;
  let samePayloadForwarded: boolean | null = null;
  const aedes = await Aedes.createBroker({
    mq: emitter,
    authorizePublish: (_client, packet, done) => {
      if (packet.topic === PROBE_TOPIC) published = packet.payload;
      done(null);
    },
    authorizeForward: (_client, packet) => {
      if (packet.topic === PROBE_TOPIC) samePayloadForwarded = packet.payload === published;
      return packet;
    },
  });
  let filtersStored = 0;
  keepRefusedFiltersOutOfSessions(aedes, () => {
    filtersStored++;
    return true;
  });
  const answers = mqttPacket.parser({ protocolVersion: 4 });
  const waiting = new Map<string, () => void>();
  answers.on('packet', (packet) => waiting.get(packet.cmd)?.());
  const conn = new Duplex({
    read() {},
    write(chunk: Buffer, _encoding, callback) {
      answers.parse(chunk);
      callback();
    },
  });
  let chunksChecked = 0;
  limitFramesBeforeParsing(conn, { check: () => void chunksChecked++ }, () => {});
  const shape: LibraryShape = {
    client: undefined,
    chunksChecked: 0,
    dataListeners: 0,
    emitter,
    emitsThroughDo: 0,
    aedes,
    filtersStored: 0,
    samePayloadForwarded: null,
    disconnectedBefore: undefined,
    disconnectedAfter: undefined,
    unfinished: null,
  };
  /** The step under way: what the probe stopped at, if it does. */
  let current = 'aedes.handle()';
  /** Sends a packet and waits for what answers it, at most PROBE_STEP_MS. */
  const step = async (name: string, packet: mqttPacket.Packet, answer: 'connack' | 'suback' | 'publish' | 'close'): Promise<void> => {
    current = name;
    let timer: NodeJS.Timeout | undefined;
    const answered = new Promise<void>((resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`${name} (no ${answer} within ${PROBE_STEP_MS} ms)`)), PROBE_STEP_MS);
      if (answer === 'close') conn.once('close', resolve);
      else waiting.set(answer, resolve);
    });
    conn.push(mqttPacket.generate(packet));
    try {
      await answered;
    } finally {
      clearTimeout(timer);
    }
  };
  try {
    const client = aedes.handle(conn as unknown as net.Socket);
    shape.client = client;
    shape.dataListeners = conn.listenerCount('data');
    shape.disconnectedBefore = (client as Client & { _disconnected?: unknown })._disconnected;
    parseIntoFreshPackets(client);
    await step('its CONNECT', { cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: false, clientId: 'library-probe', keepalive: 0 }, 'connack');
    await step('its SUBSCRIBE', { cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: PROBE_TOPIC, qos: 0 }] }, 'suback');
    await step('its PUBLISH', { cmd: 'publish', topic: PROBE_TOPIC, payload: Buffer.from('probe'), qos: 1, messageId: 2, retain: false, dup: false }, 'publish');
    await step('its DISCONNECT', { cmd: 'disconnect' }, 'close');
    shape.disconnectedAfter = (client as Client & { _disconnected?: unknown })._disconnected;
  } catch (error) {
    // A timeout names its step; anything thrown is told with the step it was thrown in.
    shape.unfinished = (error as Error).message.startsWith(current) ? (error as Error).message : `${current} (${(error as Error).message})`;
  } finally {
    conn.destroy();
    await new Promise<void>((resolve) => aedes.close(() => resolve()));
  }
  shape.chunksChecked = chunksChecked;
  shape.emitsThroughDo = emitsThroughDo.get(emitter)?.count ?? 0;
  shape.filtersStored = filtersStored;
  shape.samePayloadForwarded = samePayloadForwarded;
  return shape;
}

/**
 * Logs each failure (error for required patches, warn for the others) and throws a
 * LibraryPatchError when a required patch failed.
 */
export function reportPatchFailures(failures: PatchFailure[], log: Logger): void {
  for (const { patch, message } of failures) {
    if (patch.required) log.error({ patch: patch.name }, `${message} The broker does not start: pin the version the patch was written for, or fit the patch to this one.`);
    else log.warn({ patch: patch.name }, `${message} The broker runs without it.`);
  }
  const fatal = failures.filter((failure) => failure.patch.required);
  if (fatal.length > 0) throw new LibraryPatchError(fatal);
}

/** The libraries do not change while the process runs: one probe serves every broker it starts. */
let probed: Promise<PatchFailure[]> | null = null;

/** Run at broker start: probes the libraries once per process and reports what no longer fits. */
export async function verifyLibraryPatches(log: Logger): Promise<void> {
  probed ??= probeLibraries().then((shape) => checkLibraryShape(shape));
  reportPatchFailures(await probed, log);
}

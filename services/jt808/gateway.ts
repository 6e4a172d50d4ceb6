// The JT/T 808 gateway: a TCP server for truck terminals (JT/T 808-2013 and 2019), one of the
// pipeline's sources (contract/source.ts). It turns registration, authentication and location
// reports into registry checks and truck fixes of the MQTT contract, answers reports once they are
// durable, and sends text messages down. Terminals are registry devices found by their phone
// number (terminals.ts); disabling one, or giving it a new code, closes its connection at once.
import crypto from 'node:crypto';
import net from 'node:net';
import type { Logger } from 'pino';
import { hashSecret, SecretHashRefusedError, SecretVerifier, VerifiedSecrets, VerifierBusyError } from '../broker/secrets.ts';
import { FailureBackoff, addressSource } from '../broker/login-limits.ts';
import type { Jt808Config } from '../config/schema.ts';
import { UNSTORABLE } from '../contract/payloads.ts';
import { normalisePlate } from '../registry/city-index.ts';
import { DeviceOfflineError, type TextDownlink } from '../contract/downlink.ts';
import type { Intake, Source } from '../contract/source.ts';
import { TerminalConnection, type ConnectionHost } from './connection.ts';
import { SHIPPED_LAYOUTS } from './extensions.ts';
import { gbkEncode } from './gbk.ts';
import { REGISTRATION_RESULT, type Registration } from './session.ts';
import type { TerminalDirectory, TerminalRecord } from './terminals.ts';

export interface GatewayDeps {
  config: Jt808Config;
  terminals: TerminalDirectory;
  log: Logger;
  clock?: () => number;
}

export interface GatewayStats {
  /** Frames read, and of them refused by the gateway (bad frames, unknown ids, reports before authentication). */
  frames: number;
  refusedFrames: number;
  connections: number;
  refusedConnections: number;
  registrations: number;
  refusedRegistrations: number;
  authentications: number;
  failedAuthentications: number;
  /** Logins answered "failed" for load (verifier full, per-address limit, back-off), not for their code. */
  busyLoginRefusals: number;
}


/** Text message flags (JT/T 808-2013 §8.37, table 38): bit 2 show on the display, bit 3 read aloud (TTS). */
export const TEXT_DISPLAY_AND_SPEAK = 0x04 | 0x08;
/** Longest text message: a body of 1,023 bytes without sub-packages, less the flag and type bytes. */
export const MAX_TEXT_BYTES = 1021;
/** scrypt runs at once for terminal logins (the MQTT broker has its own two). */
const VERIFICATION_CONCURRENCY = 2;
const MAX_PENDING_VERIFICATIONS = 64;
/** Logins being verified per terminal, and per remote address (a fleet behind a carrier NAT shares one), as broker.maxPendingLoginsPer*. */
const MAX_PENDING_PER_TERMINAL = 2;
const MAX_PENDING_PER_ADDRESS = 16;
/** Registrations hashing their new code at once; more wait unanswered (the terminal sends again). */
const MAX_REGISTRATIONS_HASHING = 2;
/** While logins are put off for load, the warning is repeated at most this often. */
const BUSY_WARNING_MS = 10_000;
const MAX_BACKOFF_KEYS = 100_000;
/** Wrong codes in a row a terminal may send from one address before it backs off there. */
const FREE_FAILURES = 5;



export class Jt808Gateway implements Source, TextDownlink {
  readonly name = 'jt808';
  readonly stats: GatewayStats = { frames: 0, refusedFrames: 0, connections: 0, refusedConnections: 0, registrations: 0, refusedRegistrations: 0, authentications: 0, failedAuthentications: 0, busyLoginRefusals: 0 };
  private server: net.Server | null = null;
  private lastBusyWarning = 0;
  private intake: Intake | null = null;
  private boundPort: number | null = null;
  private readonly connections = new Set<TerminalConnection>();
  /** The connection each device speaks through now. */
  private readonly current = new Map<string, TerminalConnection>();
  private readonly verifier = new SecretVerifier({ concurrency: VERIFICATION_CONCURRENCY, maxPending: MAX_PENDING_VERIFICATIONS });
  /** Failed logins per phone and address, and per address (counting each phone's first few), as the broker counts them. */
  private readonly failures: FailureBackoff;
  private readonly addressFailures: FailureBackoff;
  /** Codes verified since start, per phone and per hash (a fleet sharing one code costs one scrypt run; secrets.ts). */
  private readonly verified = new VerifiedSecrets();
  /** Phones whose registration is being hashed: a second one at once is refused, not hashed again. */
  private readonly registering = new Set<string>();

  constructor(private readonly deps: GatewayDeps) {
    const backoff = { baseMs: 1000, maxMs: 60_000, maxKeys: MAX_BACKOFF_KEYS };
    this.failures = new FailureBackoff({ ...backoff, freeFailures: FREE_FAILURES }, deps.clock ?? Date.now);
    this.addressFailures = new FailureBackoff({ ...backoff, freeFailures: 50 }, deps.clock ?? Date.now);
  }

  /** The work authentication has done and refused: scrypt runs, busy refusals, dropped requests. */
  get verification(): Readonly<SecretVerifier['stats']> {
    return this.verifier.stats;
  }

  /** The port listened on once started (null while stopped or disabled). */
  port(): number | null {
    return this.boundPort;
  }

  /** Terminals authenticated and connected now. */
  connectedTerminals(): number {
    return this.current.size;
  }

  async start(intake: Intake): Promise<void> {
    const { config, log, terminals } = this.deps;
    this.intake = intake;
    terminals.onChange(() => this.revokeStale());
    const host = this.host(intake);
    const server = net.createServer((socket) => {
      if (this.connections.size >= config.maxConnections) {
        this.stats.refusedConnections++;
        socket.destroy();
        return;
      }
      this.stats.connections++;
      const connection = new TerminalConnection(socket, host, addressSource(socket.remoteAddress));
      this.connections.add(connection);
    });
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', (error: NodeJS.ErrnoException) =>
        reject(error.code === 'EADDRINUSE' ? new Error(`the JT/T 808 port ${config.port} on ${config.host} is taken by another program: stop it, or set jt808.port (WASTE_JT808_PORT) to a free port (0 disables the gateway)`) : error),
      );
      server.listen(config.port, config.host, () => resolve());
    });
    this.boundPort = (server.address() as net.AddressInfo).port;
    log.info({ port: this.boundPort, host: config.host }, 'JT/T 808 gateway listening');
  }

  async stop(): Promise<void> {
    for (const connection of this.connections) connection.close();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    this.server = null;
    this.boundPort = null;
  }

  /**
   * Sends a text message to a truck's terminal (0x8300) and resolves with its answer's result
   * (0 received; JT/T 808-2013 table 5). Throws DeviceOfflineError when it is not connected.
   */
  async sendText(deviceId: string, text: string, flags = TEXT_DISPLAY_AND_SPEAK): Promise<number> {
    const connection = this.current.get(deviceId);
    if (!connection) throw new DeviceOfflineError(`truck ${deviceId} has no JT/T 808 terminal connected`);
    const encoded = gbkEncode(text);
    if (encoded.length > MAX_TEXT_BYTES) throw new RangeError(`the text is ${encoded.length} bytes in GBK; a text message holds at most ${MAX_TEXT_BYTES}`);
    // 2019 (JT/T 808-2019 §8.38): a text type BYTE (1 notice, 2 service) follows the flag.
    const head = connection.speaks === 2019 ? Buffer.from([flags, 1]) : Buffer.from([flags]);
    return connection.sendText(Buffer.concat([head, encoded]));
  }

  /** Closes every connection whose terminal was removed, disabled, renumbered or given a new code. */
  revokeStale(): void {
    if (this.current.size === 0) return;
    // One query for all: a lookup per connected terminal held the event loop 130 ms at 20,000.
    const byPhone = new Map(this.deps.terminals.terminals().map((t) => [t.phone, t]));
    for (const [deviceId, connection] of this.current) {
      const record = connection.phone === null ? undefined : byPhone.get(connection.phone);
      const held = connection.terminal!;
      if (!record || !record.enabled || record.deviceId !== deviceId || record.authCodeHash !== held.authCodeHash) {
        this.deps.log.info({ deviceId, phone: connection.phone }, 'JT/T 808 terminal revoked (removed, disabled or new code): disconnecting');
        this.verified.forget(connection.phone ?? '');
        connection.close();
      }
    }
  }

  private host(intake: Intake): ConnectionHost {
    const { config, log } = this.deps;
    return {
      config,
      layouts: config.layouts ?? SHIPPED_LAYOUTS,
      intake,
      log,
      counts: this.stats,
      clock: this.deps.clock ?? Date.now,
      register: (phone, registration, address) => this.register(phone, registration, address),
      busyRefusal: (reason) => {
        this.stats.busyLoginRefusals++;
        const now = Date.now();
        if (now - this.lastBusyWarning < BUSY_WARNING_MS) return;
        this.lastBusyWarning = now;
        log.warn({ busyLoginRefusals: this.stats.busyLoginRefusals, pendingVerifications: this.verifier.pending() }, `JT/T 808 logins put off to bound their work (answered "failed"; terminals try again); latest: ${reason}`);
      },
      authenticate: (phone, code, address, signal) => this.authenticate(phone, code, address, signal),
      claim: (connection) => {
        const deviceId = connection.deviceId!;
        const older = this.current.get(deviceId);
        this.current.set(deviceId, connection);
        if (older && older !== connection) {
          log.info({ deviceId }, 'JT/T 808 terminal connected again; closing its older connection');
          older.close();
        }
        return older !== undefined;
      },
      release: (connection) => {
        this.connections.delete(connection);
        const deviceId = connection.deviceId;
        if (deviceId === null || this.current.get(deviceId) !== connection) return false;
        this.current.delete(deviceId);
        return true;
      },
    };
  }

  /**
   * Registration (0x0100 → 0x8100, JT/T 808-2013 §8.5-8.6): a provisioned, enabled terminal
   * without a code gets one, which is stored only as its hash. A terminal with a code already is
   * answered 3 ("terminal registered"): the code is issued once, and a lost one is reset by an
   * operator (npm run cli -- device jt808-reset), so whoever learns a phone number cannot take a
   * registered terminal's place. Where the registry knows the truck's plate, the registration
   * must name it.
   */
  private async register(phone: string, registration: Registration, address: string): Promise<{ result: number; code?: string } | null> {
    // Registrations are counted like failed logins: a refused one from an address backs that
    // number off there, so that nobody can ask registration after registration for the moment an
    // operator resets a terminal, nor try the numbers of a fleet for who is who.
    const key = `registration of ${phone} from ${address}`;
    if (this.failures.waitFor(key) > 0 || (this.addressFailures.waitFor(address) > 0 && this.registering.size >= MAX_REGISTRATIONS_HASHING)) {
      this.stats.refusedRegistrations++;
      return null;
    }
    const record = this.deps.terminals.terminal(phone);
    const refuse = (result: number) => {
      this.stats.refusedRegistrations++;
      this.failures.fail(key);
      this.addressFailures.fail(address);
      return { result };
    };
    if (!record || !record.enabled) return refuse(REGISTRATION_RESULT.noSuchTerminal);
    // Where the registry knows the truck's plate, the registration must name it: plate colour 0
    // (a VIN in place of the plate, §8.5) does not get round that.
    if (record.plate && (registration.plateColour === 0 || normalisePlate(registration.plate) !== normalisePlate(record.plate))) return refuse(REGISTRATION_RESULT.noSuchVehicle);
    if (record.authCodeHash || this.registering.has(phone)) return refuse(REGISTRATION_RESULT.terminalRegistered);
    // Hashing needs the thread pool the spool's fsyncs need: a few at a time, the rest not answered yet.
    if (this.registering.size >= MAX_REGISTRATIONS_HASHING) return null;
    this.registering.add(phone);
    try {
      const code = crypto.randomBytes(12).toString('base64url');
      const hash = await hashSecret(code);
      const model = registration.model.length <= 64 && registration.model !== '' && !UNSTORABLE.test(registration.model) ? registration.model : null;
      if (!this.deps.terminals.register(record.deviceId, hash, record.model ?? model)) return refuse(REGISTRATION_RESULT.terminalRegistered);
      this.stats.registrations++;
      this.deps.log.info({ deviceId: record.deviceId, phone, model }, 'JT/T 808 terminal registered; authentication code issued');
      return { result: REGISTRATION_RESULT.ok, code };
    } finally {
      this.registering.delete(phone);
    }
  }

  /**
   * Authentication (0x0102, §8.8). The code is checked against its hash with the same bounded work
   * as MQTT logins (broker/secrets.ts SecretVerifier): an unknown phone costs the same scrypt run as
   * a known one, failures back off per phone and address, and a code verified before costs none.
   */
  private async authenticate(phone: string, code: string, address: string, signal: AbortSignal): Promise<{ terminal: TerminalRecord } | { refused: string; busy?: boolean }> {
    const record = this.deps.terminals.terminal(phone);
    const key = `${phone} from ${address}`;
    const codeDigest = VerifiedSecrets.digest(code);
    const hash = record?.authCodeHash ?? null;
    let matches = hash !== null && this.verified.matches(phone, hash, codeDigest);
    if (!matches) {
      const wait = this.failures.waitFor(key);
      if (wait > 0) return this.refused(`too many failed authentications from this address; next try in ${Math.ceil(wait / 1000)} s`, true);
      // An address trying many phone numbers backs off while logins queue (broker.ts does the same):
      // one address is often a whole fleet behind a carrier NAT, so not before.
      const addressWait = this.addressFailures.waitFor(address);
      if (addressWait > 0 && this.verifier.pending() >= MAX_PENDING_VERIFICATIONS / 2) return this.refused(`too many failed authentications from this address while logins queue; next try in ${Math.ceil(addressWait / 1000)} s`, true);
      const sources = [`terminal ${phone}`, `address ${address}`];
      if (this.verifier.pendingFor(sources[0]!) >= MAX_PENDING_PER_TERMINAL || this.verifier.pendingFor(sources[1]!) >= MAX_PENDING_PER_ADDRESS) {
        return this.refused('authentications of this terminal or address are being verified already', true);
      }
      try {
        // Sources that keep failing give way first when the verifier is full (SecretVerifier).
        const request = { signal, sources, demerits: this.failures.failures(key) + this.addressFailures.failures(address) };
        matches = hash !== null ? await this.verifier.verify(code, hash, request) : await this.verifier.verifyUnknown(code, request);
      } catch (error) {
        if (error instanceof VerifierBusyError) return this.refused(error.message, true);
        if (error instanceof SecretHashRefusedError) return this.refused(error.message);
        if (signal.aborted) return { refused: 'the connection closed', busy: true };
        throw error;
      }
    }
    // Who a phone number is (unknown, disabled, not registered) is told only after the code is proved.
    if (!record || !record.authCodeHash || !matches) {
      this.failures.fail(key);
      if (this.failures.failures(key) <= FREE_FAILURES) this.addressFailures.fail(address);
      return this.refused(record ? 'wrong authentication code' : `no terminal with phone number ${phone}`);
    }
    this.failures.forget(key);
    this.verified.remember(phone, record.authCodeHash, codeDigest);
    // The verification may have waited seconds for its turn: what the registry says now decides,
    // or a terminal disabled, removed or given a new code meanwhile would be let in.
    const now = this.deps.terminals.terminal(phone);
    if (!now || now.deviceId !== record.deviceId || now.authCodeHash !== record.authCodeHash) return this.refused('the terminal was changed while its code was checked; try again');
    if (!now.enabled) return this.refused(`device ${now.deviceId} is disabled`);
    this.stats.authentications++;
    return { terminal: now };
  }

  /** A refused login; busy when it was refused for load, not for its code. */
  private refused(reason: string, busy = false): { refused: string; busy: boolean } {
    this.stats.failedAuthentications++;
    return { refused: reason, busy };
  }
}

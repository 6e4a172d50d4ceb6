// Checks a username and secret against the registry within bounds on the work it may cause: the
// embedded broker's logins, and those RabbitMQ asks the service about through its HTTP
// authentication backend (api/broker-auth.ts). A secret is verified with scrypt at most
// VERIFICATION_CONCURRENCY at a time, within broker.maxPendingLogins queued; a username failing
// from one address backs off there, an address failing with many usernames backs off while
// verifications queue; a secret verified before is recognised without scrypt (secrets.ts).
import type { Logger } from 'pino';
import type { BrokerConfig } from '../config/schema.ts';
import type { Identity } from './acl.ts';
import type { CredentialDirectory, DeviceRecord, ServiceRecord } from './credentials.ts';
import { FailureBackoff } from './login-limits.ts';
import { SecretHashRefusedError, SecretVerifier, VerifiedSecrets, VerifierBusyError } from './secrets.ts';

/** scrypt runs at once: libuv's pool has 4 threads, and the spool's writes and fsyncs need the others. */
const VERIFICATION_CONCURRENCY = 2;
/** Usernames and addresses whose failed logins are remembered at most (about 20 MB at most). */
const MAX_BACKOFF_KEYS = 100_000;
/** Longest username a credential can have: device ids and service names are at most 64 characters. */
export const MAX_USERNAME_LENGTH = 64;
/** While logins are refused as busy, the warning is repeated at most this often. */
const BUSY_LOGIN_WARNING_MS = 10_000;

/**
 * Why a login was refused: wrong credentials; a device disabled (said only once its secret is
 * proved); the work of logins bounded (try again later); the registry not answering.
 */
export type LoginRefusal = 'bad_credentials' | 'disabled' | 'busy' | 'unavailable';

export type LoginOutcome =
  | { ok: true; identity: Identity; record: DeviceRecord | ServiceRecord }
  | { ok: false; refusal: LoginRefusal; message: string };

/** The key a username's failed logins are counted under: per address it logs in from. */
const usernameFrom = (username: string, address: string): string => `${username} from ${address}`;

export class DeviceLogins {
  readonly stats = { busyLoginRefusals: 0 };
  /** Verified secrets, so a reconnect storm does not cost one scrypt per device (secrets.ts). */
  readonly verified = new VerifiedSecrets();
  private readonly verifier: SecretVerifier;
  private readonly usernameFailures: FailureBackoff;
  private readonly addressFailures: FailureBackoff;
  private lastBusyWarning = 0;

  constructor(
    private readonly config: BrokerConfig,
    private readonly credentials: CredentialDirectory,
    private readonly log: Logger,
    clock: () => number = Date.now,
  ) {
    this.verifier = new SecretVerifier({ concurrency: VERIFICATION_CONCURRENCY, maxPending: config.maxPendingLogins });
    const backoff = { baseMs: config.loginBackoffMs, maxMs: config.loginBackoffMaxMs, maxKeys: MAX_BACKOFF_KEYS };
    this.usernameFailures = new FailureBackoff({ ...backoff, freeFailures: config.loginFailuresBeforeBackoff }, clock);
    this.addressFailures = new FailureBackoff({ ...backoff, freeFailures: config.loginFailuresPerAddressBeforeBackoff }, clock);
  }

  /** The work secret verifications have done and refused: scrypt runs, busy refusals, dropped requests. */
  get verification(): Readonly<SecretVerifier['stats']> {
    return this.verifier.stats;
  }

  /** Secret verifications running or queued now. */
  pending(): number {
    return this.verifier.pending();
  }

  /**
   * Checks a login from `address` (addressSource: IPv6 reduced to its /64). `signal` gives it up:
   * its verification is dropped and check() rejects with the signal's reason.
   */
  async check(username: string, secret: string, address: string, signal?: AbortSignal): Promise<LoginOutcome> {
    if (!username || !secret) return { ok: false, refusal: 'bad_credentials', message: 'username and secret are required' };
    // No credential has a longer name; refused at once, such a name is not remembered anywhere.
    if (username.length > MAX_USERNAME_LENGTH) return { ok: false, refusal: 'bad_credentials', message: `username of ${username.length} characters` };
    let record: DeviceRecord | ServiceRecord | undefined;
    let device: DeviceRecord | undefined;
    try {
      device = this.credentials.device(username);
      record = device ?? this.credentials.service(username);
    } catch {
      return { ok: false, refusal: 'unavailable', message: 'the registry database does not answer; try again later' };
    }
    const secretDigest = VerifiedSecrets.digest(secret);
    const known = record !== undefined && this.verified.matches(username, record.secret_hash, secretDigest);
    let matches = known;
    if (!known) {
      const verified = await this.verifyWithinLimits(username, secret, address, record?.secret_hash, signal);
      if (typeof verified !== 'boolean') return verified;
      matches = verified;
    }
    if (!record || !matches) {
      this.usernameFailures.fail(usernameFrom(username, address));
      // A username failing again and again from one address is held back by its own count; the
      // address counts only the first of those failures, so that a few misprovisioned devices
      // behind one NAT do not hold back the others, while an address trying many usernames still
      // backs off.
      if (this.usernameFailures.failures(usernameFrom(username, address)) <= this.config.loginFailuresBeforeBackoff) this.addressFailures.fail(address);
      return { ok: false, refusal: 'bad_credentials', message: record ? `wrong secret for ${username}` : `unknown username ${username}` };
    }
    this.usernameFailures.forget(usernameFrom(username, address));
    this.verified.remember(username, record.secret_hash, secretDigest);
    // Refusals from here on tell who a username is, so they come only after the secret is proved:
    // without it, a disabled device looks like any wrong secret.
    if (device && !device.enabled) return { ok: false, refusal: 'disabled', message: `device ${username} is disabled` };
    const identity: Identity = device ? { kind: 'device', deviceId: device.id, deviceClass: device.class } : { kind: 'service', name: username };
    return { ok: true, identity, record };
  }

  /**
   * One scrypt verification within the limits on the work of logins: true if the secret matches,
   * or the refusal when the work is refused. An unknown username (no hash) is verified against a
   * hash of the same cost, so that it takes as long, and is counted and limited, as a known one.
   */
  private async verifyWithinLimits(username: string, secret: string, address: string, hash: string | undefined, signal?: AbortSignal): Promise<boolean | LoginOutcome> {
    const { config } = this;
    // A username backs off per address: counted from every address, wrong secrets sent by anyone
    // for a device id (ids are not secret: they are in topics and alerts) would lock the device
    // out. An address backs off only while the verifier is short of room: one address is often a
    // whole fleet behind a carrier NAT or a TLS terminator, and its failures still count against
    // it (demerits) when places are given out.
    const usernameWait = this.usernameFailures.waitFor(usernameFrom(username, address));
    if (usernameWait > 0) return this.busy(`too many failed logins for this username from this address; next try in ${Math.ceil(usernameWait / 1000)} s`);
    const addressWait = this.addressFailures.waitFor(address);
    if (addressWait > 0 && this.verifier.pending() >= config.maxPendingLogins / 2) {
      return this.busy(`too many failed logins from this address while logins queue; next try in ${Math.ceil(addressWait / 1000)} s`);
    }
    const sources = [`username ${username}`, `address ${address}`];
    if (this.verifier.pendingFor(sources[0]!) >= config.maxPendingLoginsPerSource) {
      return this.busy(`${config.maxPendingLoginsPerSource} logins of this username are being verified already`);
    }
    if (this.verifier.pendingFor(sources[1]!) >= config.maxPendingLoginsPerAddress) {
      return this.busy(`${config.maxPendingLoginsPerAddress} logins from this address are being verified already`);
    }
    try {
      // Sources that keep failing give way first when the verifier is full (SecretVerifier.evictFor).
      const demerits = this.usernameFailures.failures(usernameFrom(username, address)) + this.addressFailures.failures(address);
      const request = { signal, sources, demerits };
      return hash === undefined ? await this.verifier.verifyUnknown(secret, request) : await this.verifier.verify(secret, hash, request);
    } catch (error) {
      if (error instanceof VerifierBusyError) return this.busy(error.message);
      if (error instanceof SecretHashRefusedError) {
        this.log.error({ username }, `${error.message}; give it a new secret (npm run cli -- device rotate)`);
        return { ok: false, refusal: 'bad_credentials', message: error.message };
      }
      throw error;
    }
  }

  private busy(message: string): LoginOutcome {
    this.stats.busyLoginRefusals++;
    this.warnBusy(message);
    return { ok: false, refusal: 'busy', message };
  }

  /** Warns, at most every BUSY_LOGIN_WARNING_MS, that logins are refused to bound their work. */
  warnBusy(latest: string, counts: Record<string, number> = {}): void {
    const now = Date.now();
    if (now - this.lastBusyWarning < BUSY_LOGIN_WARNING_MS) return;
    this.lastBusyWarning = now;
    this.log.warn({ busyLoginRefusals: this.stats.busyLoginRefusals, ...counts, pendingVerifications: this.verifier.pending() }, `logins refused to bound their work (MQTT: CONNACK 3); latest: ${latest}`);
  }
}

// Device and service secrets: random, shown once, stored only as a salted scrypt hash
// ("scrypt$N$r$p$salt$hash", base64url) and compared in constant time.
import crypto from 'node:crypto';

/** scrypt cost: N = 2^14, r = 8, p = 1 (RFC 7914 §2's interactive-login figures); 40-60 ms here. */
export const ISSUED_SCRYPT_COST = { N: 16384, r: 8, p: 1 } as const;
const KEY_BYTES = 32;
/** RFC 7914 puts no bound on the salt; 16 bytes are issued here, and more than 64 serves nothing. */
const MAX_SALT_BYTES = 64;

/**
 * 192 random bits, base64url. Never starting with '-': pasted after an option (`--secret -Gq...`,
 * `mosquitto_pub -P -Gq...`), such a secret is taken for an option by command-line parsers.
 */
export function generateSecret(): string {
  for (;;) {
    const secret = crypto.randomBytes(24).toString('base64url');
    if (!secret.startsWith('-')) return secret;
  }
}

function scrypt(secret: string, salt: Buffer, N: number, r: number, p: number): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    crypto.scrypt(secret, salt, KEY_BYTES, { N, r, p, maxmem: 256 * N * r }, (error, key) => (error ? reject(error) : resolve(key))),
  );
}

export async function hashSecret(secret: string): Promise<string> {
  const { N, r, p } = ISSUED_SCRYPT_COST;
  const salt = crypto.randomBytes(16);
  const key = await scrypt(secret, salt, N, r, p);
  return ['scrypt', N, r, p, salt.toString('base64url'), key.toString('base64url')].join('$');
}

interface ParsedHash {
  N: number;
  r: number;
  p: number;
  salt: Buffer;
  key: Buffer;
}

const BASE64URL = /^[A-Za-z0-9_-]+$/;
const DECIMAL = /^[1-9]\d{0,9}$/;

function parseHash(encoded: string): ParsedHash | string {
  const parts = encoded.split('$');
  const [scheme, n, r, p, salt, key] = parts;
  if (parts.length !== 6 || scheme !== 'scrypt') return 'not scrypt$N$r$p$salt$hash';
  if (!DECIMAL.test(n!) || !DECIMAL.test(r!) || !DECIMAL.test(p!)) return 'N, r and p must be positive integers';
  if (!BASE64URL.test(salt!) || !BASE64URL.test(key!)) return 'salt and hash must be base64url';
  const parsed = { N: Number(n), r: Number(r), p: Number(p), salt: Buffer.from(salt!, 'base64url'), key: Buffer.from(key!, 'base64url') };
  const issued = ISSUED_SCRYPT_COST;
  // A stored hash sets the work of every login attempt for its username, wrong secrets included:
  // one imported with p = 64 cost 2.5 s of the thread pool per attempt. Nothing costlier than what
  // the service issues itself is computed.
  if (parsed.N > issued.N || parsed.r > issued.r || parsed.p > issued.p) {
    return `scrypt cost N=${parsed.N} r=${parsed.r} p=${parsed.p} exceeds the issued N=${issued.N} r=${issued.r} p=${issued.p}`;
  }
  // RFC 7914 §2: N is a power of two greater than 1.
  if (parsed.N < 2 || (parsed.N & (parsed.N - 1)) !== 0) return `scrypt N=${parsed.N} is not a power of two greater than 1`;
  if (parsed.salt.length > MAX_SALT_BYTES) return `salt of ${parsed.salt.length} bytes is longer than ${MAX_SALT_BYTES}`;
  if (parsed.key.length !== KEY_BYTES) return `hash of ${parsed.key.length} bytes; it must be ${KEY_BYTES}`;
  return parsed;
}

/**
 * Why a stored secret hash cannot be used, or null if it can. For whatever imports hashes made
 * elsewhere (the registry bundle, a provisioning file): such a hash is refused there, with this
 * reason, before any login depends on it.
 */
export function secretHashProblem(encoded: string): string | null {
  const parsed = parseHash(encoded);
  return typeof parsed === 'string' ? parsed : null;
}

/**
 * One verification outside the broker's limits (tools, tests): true if `secret` matches. An
 * unusable hash (secretHashProblem) matches nothing and is not computed.
 */
export async function verifySecret(secret: string, encoded: string): Promise<boolean> {
  const parsed = parseHash(encoded);
  if (typeof parsed === 'string') return false;
  const actual = await scrypt(secret, parsed.salt, parsed.N, parsed.r, parsed.p);
  return crypto.timingSafeEqual(parsed.key, actual);
}

/** The stored hash is malformed or costs more than the service issues; it was not computed. */
export class SecretHashRefusedError extends Error {}

/** Too many verifications are pending; the login was refused without one. */
export class VerifierBusyError extends Error {}

export interface VerifierLimits {
  /**
   * scrypt computations at once. scrypt runs on libuv's thread pool (4 threads), which the spool's
   * writes and fsyncs share: a reconnect storm (thousands of devices after a restart) holding every
   * thread would stall every acknowledgement.
   */
  concurrency: number;
  /** Verifications running or queued; beyond, verify() refuses with VerifierBusyError. */
  maxPending: number;
}

export interface VerificationRequest {
  /** Aborted when the login is given up (client gone, deadline passed): dropped if still queued. */
  signal?: AbortSignal;
  /** Who asks, e.g. its username and remote address; pendingFor() counts their requests. */
  sources?: readonly string[];
  /** How badly its sources have done lately, e.g. their recent failed logins (0: not at all). */
  demerits?: number;
}

interface Pending {
  sources: readonly string[];
  demerits: number;
  run: () => void;
  refuse: (error: Error) => void;
  detach: () => void;
}

/**
 * Verifies secrets against stored hashes with bounded work: at most `concurrency` scrypt runs at
 * once, at most `maxPending` waiting or running, queued requests dropped when their login is
 * given up, and costlier hashes than the service issues refused without being computed.
 */
export class SecretVerifier {
  readonly stats = { scryptRuns: 0, refusedBusy: 0, evicted: 0, abandoned: 0, refusedHashes: 0, mostPending: 0 };
  private running = 0;
  private readonly queue: Pending[] = [];
  private readonly perSource = new Map<string, number>();
  /**
   * A hash of the issued cost whose key is random bytes: no secret verifies against it, and trying
   * costs what trying a real device's hash costs, so the time of a refusal does not tell a known
   * username from an unknown one.
   */
  private readonly unknownUserHash: string;

  constructor(private readonly limits: VerifierLimits) {
    const { N, r, p } = ISSUED_SCRYPT_COST;
    this.unknownUserHash = ['scrypt', N, r, p, crypto.randomBytes(16).toString('base64url'), crypto.randomBytes(KEY_BYTES).toString('base64url')].join('$');
  }

  /** Verifications of this source running or queued now. */
  pendingFor(source: string): number {
    return this.perSource.get(source) ?? 0;
  }

  pending(): number {
    return this.running + this.queue.length;
  }

  /**
   * True if `secret` matches `encoded`. Rejects with SecretHashRefusedError for an unusable hash,
   * VerifierBusyError when no room is left, or the signal's reason when it aborts first.
   */
  async verify(secret: string, encoded: string, request: VerificationRequest = {}): Promise<boolean> {
    const parsed = parseHash(encoded);
    if (typeof parsed === 'string') {
      this.stats.refusedHashes++;
      throw new SecretHashRefusedError(`stored secret hash refused: ${parsed}`);
    }
    await this.slot(request);
    try {
      this.stats.scryptRuns++;
      const actual = await scrypt(secret, parsed.salt, parsed.N, parsed.r, parsed.p);
      return crypto.timingSafeEqual(parsed.key, actual);
    } finally {
      this.release(request.sources ?? []);
    }
  }

  /** The same work as verify() for a username that does not exist; always false. */
  async verifyUnknown(secret: string, request: VerificationRequest = {}): Promise<false> {
    await this.verify(secret, this.unknownUserHash, request);
    return false;
  }

  /** Resolves when a computation may start; the caller then owns one running slot. */
  private slot(request: VerificationRequest): Promise<void> {
    const sources = request.sources ?? [];
    const { signal } = request;
    if (signal?.aborted) {
      this.stats.abandoned++;
      return Promise.reject(signal.reason as Error);
    }
    const demerits = request.demerits ?? 0;
    if (this.pending() >= this.limits.maxPending && !this.evictFor(sources, demerits)) {
      this.stats.refusedBusy++;
      return Promise.reject(new VerifierBusyError(`${this.pending()} secret verifications pending`));
    }
    for (const source of sources) this.perSource.set(source, this.pendingFor(source) + 1);
    if (this.running < this.limits.concurrency) {
      this.running++;
      this.noteMostPending();
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        this.stats.abandoned++;
        this.dequeue(entry);
        reject(signal!.reason as Error);
      };
      const entry: Pending = {
        sources,
        demerits,
        run: () => {
          entry.detach();
          resolve();
        },
        refuse: (error) => {
          entry.detach();
          reject(error);
        },
        detach: () => signal?.removeEventListener('abort', onAbort),
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.queue.push(entry);
      this.noteMostPending();
    });
  }

  /** A finished computation hands its slot to the next queued request. */
  private release(sources: readonly string[]): void {
    this.forget(sources);
    const next = this.queue.shift();
    if (next) next.run();
    else this.running--;
  }

  private dequeue(entry: Pending): void {
    const index = this.queue.indexOf(entry);
    if (index === -1) return;
    this.queue.splice(index, 1);
    this.forget(entry.sources);
  }

  private forget(sources: readonly string[]): void {
    for (const source of sources) {
      const count = this.pendingFor(source) - 1;
      if (count > 0) this.perSource.set(source, count);
      else this.perSource.delete(source);
    }
  }

  /** How much a request's sources hold of the queue already, and how badly they have done. */
  private weight(sources: readonly string[], demerits: number): number {
    let most = 0;
    for (const source of sources) most = Math.max(most, this.pendingFor(source));
    return most + demerits;
  }

  /**
   * A full queue makes room for a newcomer by dropping the newest queued request of the heaviest
   * weight (weight()), if that weighs at least two more than the newcomer: a flood from a few
   * sources, or from sources that keep failing, cannot keep everyone else out, and requests of
   * equal standing do not displace each other.
   */
  private evictFor(sources: readonly string[], demerits: number): boolean {
    let victim: Pending | undefined;
    let victimWeight = 0;
    for (const entry of this.queue) {
      const weight = this.weight(entry.sources, entry.demerits);
      if (weight >= victimWeight) {
        victim = entry;
        victimWeight = weight;
      }
    }
    if (!victim || victimWeight < this.weight(sources, demerits) + 2) return false;
    this.stats.evicted++;
    this.dequeue(victim);
    victim.refuse(new VerifierBusyError('secret verification dropped to make room for another source'));
    return true;
  }

  private noteMostPending(): void {
    this.stats.mostPending = Math.max(this.stats.mostPending, this.pending());
  }
}

/**
 * Secrets verified since the process started, so that a reconnect storm costs no scrypt run for
 * a credential seen before: per name (a device id, a terminal phone number), the hash it matched
 * and a SHA-256 digest of the secret; and per hash, the digest of the secret that matched it, so
 * that credentials imported with one shared hash (a fleet provisioned from one secret) cost one
 * scrypt run in all. A hash is salted, so unrelated credentials never share an entry. Digests are
 * compared in constant time.
 */
export class VerifiedSecrets {
  private readonly byName = new Map<string, { hash: string; digest: Buffer }>();
  private readonly byHash = new Map<string, Buffer>();

  static digest(secret: string): Buffer {
    return crypto.createHash('sha256').update(secret).digest();
  }

  /** True if this secret was verified against this hash before, under this name or any other. */
  matches(name: string, hash: string, secretDigest: Buffer): boolean {
    const cached = this.byName.get(name);
    if (cached?.hash === hash && crypto.timingSafeEqual(cached.digest, secretDigest)) return true;
    const shared = this.byHash.get(hash);
    return shared !== undefined && crypto.timingSafeEqual(shared, secretDigest);
  }

  remember(name: string, hash: string, secretDigest: Buffer): void {
    this.byName.set(name, { hash, digest: secretDigest });
    this.byHash.set(hash, secretDigest);
  }

  /** The hash last verified for this name (revocation compares it with the registry's). */
  hashOf(name: string): string | undefined {
    return this.byName.get(name)?.hash;
  }

  forget(name: string): void {
    this.byName.delete(name);
  }
}

// Device and service secrets: random, shown once, stored only as a salted scrypt hash
// ("scrypt$N$r$p$salt$hash", base64url) and compared in constant time.
import crypto from 'node:crypto';

/** scrypt cost: N = 2^14, r = 8, p = 1 (RFC 7914 §2's interactive-login figures); ~40 ms here. */
const PARAMS = { N: 16384, r: 8, p: 1 } as const;
const KEY_BYTES = 32;

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
  const salt = crypto.randomBytes(16);
  const key = await scrypt(secret, salt, PARAMS.N, PARAMS.r, PARAMS.p);
  return ['scrypt', PARAMS.N, PARAMS.r, PARAMS.p, salt.toString('base64url'), key.toString('base64url')].join('$');
}

/**
 * scrypt runs on libuv's thread pool (4 threads), which the spool's writes and fsyncs share. A
 * reconnect storm (thousands of devices after a restart) would otherwise hold every thread and
 * stall every acknowledgement; at most this many verifications run at once, the rest queue.
 */
const MAX_CONCURRENT_VERIFICATIONS = 2;
let running = 0;
const waiting: (() => void)[] = [];

async function withVerificationSlot<T>(work: () => Promise<T>): Promise<T> {
  if (running < MAX_CONCURRENT_VERIFICATIONS) running++;
  else await new Promise<void>((resolve) => waiting.push(resolve)); // a finishing one hands its slot over
  try {
    return await work();
  } finally {
    const next = waiting.shift();
    if (next) next();
    else running--;
  }
}

export async function verifySecret(secret: string, encoded: string): Promise<boolean> {
  const [scheme, n, r, p, salt, hash] = encoded.split('$');
  if (scheme !== 'scrypt' || !n || !r || !p || !salt || !hash) return false;
  const expected = Buffer.from(hash, 'base64url');
  const actual = await withVerificationSlot(() => scrypt(secret, Buffer.from(salt, 'base64url'), Number(n), Number(r), Number(p)));
  return expected.length === actual.length && crypto.timingSafeEqual(expected, actual);
}

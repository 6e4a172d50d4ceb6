import { describe, expect, it } from 'vitest';
import { SecretHashRefusedError, SecretVerifier, VerifierBusyError, generateSecret, hashSecret, secretHashProblem, verifySecret } from '../../../services/broker/secrets.ts';

const key = Buffer.alloc(32, 1).toString('base64url');
const salt = Buffer.from('sixteen byte salt').toString('base64url');

describe('secrets', () => {
  it('stores a salted scrypt hash that verifies the secret and nothing else', async () => {
    const secret = generateSecret();
    const hash = await hashSecret(secret);
    expect(hash).toMatch(/^scrypt\$16384\$8\$1\$[\w-]+\$[\w-]+$/);
    expect(hash).not.toContain(secret);
    expect(await verifySecret(secret, hash)).toBe(true);
    expect(await verifySecret(secret + 'x', hash)).toBe(false);
    expect(await verifySecret('', hash)).toBe(false);
  });

  it('salts: the same secret hashes differently each time', async () => {
    const secret = generateSecret();
    expect(await hashSecret(secret)).not.toBe(await hashSecret(secret));
  });

  it('generates 32-character base64url secrets that never start with a dash (command lines take those for options)', () => {
    // One in 64 raw draws starts with '-': in 2,000 secrets that would be about 31.
    const secrets = Array.from({ length: 2000 }, generateSecret);
    for (const secret of secrets) expect(secret).toMatch(/^[A-Za-z0-9_][\w-]{31}$/);
    expect(new Set(secrets).size).toBe(secrets.length);
  });

  it('refuses malformed stored hashes', async () => {
    expect(await verifySecret('x', 'plain')).toBe(false);
    expect(await verifySecret('x', 'md5$1$2$3$4$5')).toBe(false);
  });

  it('refuses stored hashes costlier than the issued N=2^14, r=8, p=1, and malformed ones, saying why', () => {
    expect(secretHashProblem(`scrypt$16384$8$1$${salt}$${key}`)).toBeNull();
    expect(secretHashProblem(`scrypt$1024$8$1$${salt}$${key}`)).toBeNull();
    expect(secretHashProblem(`scrypt$16384$8$64$${salt}$${key}`)).toMatch(/p=64 exceeds the issued N=16384 r=8 p=1/);
    expect(secretHashProblem(`scrypt$1048576$8$1$${salt}$${key}`)).toMatch(/N=1048576 r=8 p=1 exceeds/);
    expect(secretHashProblem(`scrypt$16384$16$1$${salt}$${key}`)).toMatch(/r=16 .*exceeds/);
    expect(secretHashProblem(`scrypt$10000$8$1$${salt}$${key}`)).toMatch(/not a power of two/);
    expect(secretHashProblem(`scrypt$16384$8$1$${salt}$${Buffer.alloc(16).toString('base64url')}`)).toMatch(/16 bytes; it must be 32/);
    expect(secretHashProblem(`scrypt$16384$8$1$${Buffer.alloc(65).toString('base64url')}$${key}`)).toMatch(/salt of 65 bytes/);
    expect(secretHashProblem(`scrypt$16384$8$1e3$${salt}$${key}`)).toMatch(/positive integers/);
    expect(secretHashProblem('plain')).toMatch(/not scrypt/);
  });
});

describe('SecretVerifier', () => {
  const hashOf = (secret: string) => hashSecret(secret);

  it('verifies against the stored hash, and an unknown username at the same cost, one scrypt run each', async () => {
    const verifier = new SecretVerifier({ concurrency: 2, maxPending: 4 });
    const hash = await hashOf('right');
    expect(await verifier.verify('right', hash)).toBe(true);
    expect(await verifier.verify('wrong', hash)).toBe(false);
    expect(await verifier.verifyUnknown('right')).toBe(false);
    expect(verifier.stats.scryptRuns).toBe(3);
  });

  it('computes no hash costlier than the issued cost', async () => {
    const verifier = new SecretVerifier({ concurrency: 2, maxPending: 4 });
    await expect(verifier.verify('x', `scrypt$16384$8$64$${salt}$${key}`)).rejects.toThrow(SecretHashRefusedError);
    expect(verifier.stats).toMatchObject({ scryptRuns: 0, refusedHashes: 1 });
  });

  it('holds at most maxPending verifications, running or queued, and refuses the next at once', async () => {
    const verifier = new SecretVerifier({ concurrency: 2, maxPending: 5 });
    const hash = await hashOf('right');
    const results = Array.from({ length: 8 }, (_, i) => verifier.verify('wrong', hash, { sources: [`source ${i}`] }).then(() => 'verified', (e: Error) => e.constructor.name));
    expect(verifier.pending()).toBe(5);
    expect(await Promise.all(results)).toEqual([...Array<string>(5).fill('verified'), ...Array<string>(3).fill(VerifierBusyError.name)]);
    expect(verifier.stats).toMatchObject({ scryptRuns: 5, refusedBusy: 3, mostPending: 5 });
  });

  it('drops a queued verification whose login was given up, without computing it', async () => {
    const verifier = new SecretVerifier({ concurrency: 1, maxPending: 10 });
    const hash = await hashOf('right');
    const controllers = Array.from({ length: 5 }, () => new AbortController());
    const results = controllers.map((c) => verifier.verify('wrong', hash, { signal: c.signal }).then(() => 'verified', (e: Error) => e.message));
    for (const c of controllers.slice(1)) c.abort(new Error('gone'));
    expect(await Promise.all(results)).toEqual(['verified', 'gone', 'gone', 'gone', 'gone']);
    expect(verifier.stats).toMatchObject({ scryptRuns: 1, abandoned: 4 });
    const late = new AbortController();
    late.abort(new Error('gone before it asked'));
    await expect(verifier.verify('x', hash, { signal: late.signal })).rejects.toThrow('gone before it asked');
    expect(verifier.stats).toMatchObject({ scryptRuns: 1, abandoned: 5 });
  });

  it('makes room in a full queue for a newcomer by dropping the newest request of a source holding two more, or of failing sources', async () => {
    const verifier = new SecretVerifier({ concurrency: 1, maxPending: 4 });
    const hash = await hashOf('right');
    const ask = (sources: string[], demerits = 0) => verifier.verify('wrong', hash, { sources, demerits }).then(() => 'verified', (e: Error) => e.constructor.name);
    // One source holds all four places.
    const flood = [ask(['flooder']), ask(['flooder']), ask(['flooder']), ask(['flooder'])];
    expect(verifier.pendingFor('flooder')).toBe(4);
    const newcomer = ask(['newcomer']);
    expect(verifier.pendingFor('flooder')).toBe(3);
    const peers = [ask(['peer 1']), ask(['peer 2'])];
    // The flooder keeps the one place it is running in; newcomer and peers hold one each. Sources
    // of equal standing do not displace each other: a fourth one waits outside.
    expect(verifier.pendingFor('flooder')).toBe(1);
    expect(await ask(['peer 3'])).toBe(VerifierBusyError.name);
    expect(await Promise.all([...flood, newcomer, ...peers])).toEqual(['verified', VerifierBusyError.name, VerifierBusyError.name, VerifierBusyError.name, 'verified', 'verified', 'verified']);
    // Sources that keep failing give way to one that does not.
    const failing = [ask(['a'], 3), ask(['b'], 3), ask(['c'], 3), ask(['d'], 3)];
    const clean = ask(['e']);
    expect(await Promise.all([...failing, clean])).toEqual(['verified', 'verified', 'verified', VerifierBusyError.name, 'verified']);
    expect(verifier.stats.evicted).toBe(4);
  });
});

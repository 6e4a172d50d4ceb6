import { describe, expect, it } from 'vitest';
import { generateSecret, hashSecret, verifySecret } from '../../../services/broker/secrets.ts';

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
});

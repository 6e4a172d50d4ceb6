import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RegistryDb } from '../../../services/registry/db.ts';
import { RegistryError } from '../../../services/registry/devices.ts';
import { TokenStore } from '../../../services/registry/tokens.ts';
import { BACKENDS, registryLocations } from '../../helpers/registry-backends.ts';

describe.each(BACKENDS)('tokens on %s', (backend) => {
  const location = registryLocations(backend);
  let db: RegistryDb;
  let tokens: TokenStore;
  beforeEach(async () => {
    db = new RegistryDb(await location());
    db.open();
    const insert = db.statement("INSERT INTO jurisdictions (id, name, enforcement_unit, geometry, created_at, updated_at) VALUES (?, ?, '执法中队', '{}', 'x', 'x')");
    insert.run('jingang', '金港');
    insert.run('yangshe', '杨舍');
    tokens = new TokenStore(db);
  });
  afterEach(() => db.close());

  describe('TokenStore', () => {
    it('keeps only a hash and finds the identity behind a token', () => {
      const { id, token } = tokens.create({ name: 'officer app', role: 'enforcement', jurisdictions: ['jingang', 'yangshe', 'jingang'] });
      expect(token).toMatch(/^wt_[\w-]{43}$/);
      const stored = db.statement('SELECT token_hash FROM tokens WHERE id = ?').get(id) as { token_hash: string };
      expect(stored.token_hash).not.toContain(token.slice(3));
      expect(tokens.authenticate(token)).toEqual({ id, name: 'officer app', role: 'enforcement', jurisdictions: ['jingang', 'yangshe'] });
      expect(tokens.authenticate(token + 'x')).toBeNull();
      expect(tokens.authenticate('Bearer ' + token)).toBeNull();
    });

    it('stops a revoked token at once', () => {
      const { id, token } = tokens.create({ name: 'integrator', role: 'integrator' });
      tokens.revoke(id);
      expect(tokens.authenticate(token)).toBeNull();
      expect(() => tokens.revoke(id)).toThrow(RegistryError);
      expect(tokens.list()[0]).toMatchObject({ id, revoked_at: expect.any(String) });
    });

    it('scopes enforcement tokens, and only them, to existing jurisdictions', () => {
      expect(() => tokens.create({ name: 'x', role: 'enforcement' })).toThrow(/at least one jurisdiction/);
      expect(() => tokens.create({ name: 'x', role: 'operator', jurisdictions: ['jingang'] })).toThrow(/only enforcement/);
      expect(() => tokens.create({ name: 'x', role: 'enforcement', jurisdictions: ['nowhere'] })).toThrow(/no jurisdiction nowhere/);
      expect(() => tokens.create({ name: 'x', role: 'root' as never })).toThrow(/role must be one of/);
      expect(tokens.list()).toEqual([]);
    });
  });
});

// API bearer tokens. A token is 32 random bytes shown once at creation; the registry keeps only
// its SHA-256 (a fast hash is enough for a random 256-bit secret, and lets a request find its token
// by an indexed lookup). Roles:
//   admin        everything, including tokens
//   operator     reads everything
//   enforcement  reads only trucks, alerts and evidence inside its jurisdictions
//   integrator   writes the registry and provisions devices
import crypto from 'node:crypto';
import { isViolation, type RegistryDb } from './db.ts';
import { RegistryError } from './devices.ts';

export const ROLES = ['admin', 'operator', 'enforcement', 'integrator'] as const;
export type Role = (typeof ROLES)[number];

export interface TokenIdentity {
  id: string;
  name: string;
  role: Role;
  /** The jurisdictions an enforcement token is limited to; empty for other roles. */
  jurisdictions: string[];
}

export interface TokenInfo extends TokenIdentity {
  created_at: string;
  revoked_at: string | null;
}

const PREFIX = 'wt_';

function digest(token: string): string {
  return crypto.createHash('sha256').update(token).digest('hex');
}

export class TokenStore {
  constructor(
    private readonly db: RegistryDb,
    private readonly clock: () => Date = () => new Date(),
  ) {}

  /** Creates a token; returns its id and the token itself, which cannot be shown again. */
  create(input: { name: string; role: Role; jurisdictions?: string[] }): { id: string; token: string } {
    const jurisdictions = [...new Set(input.jurisdictions ?? [])];
    if (!(ROLES as readonly string[]).includes(input.role)) throw new RegistryError('invalid', `role must be one of ${ROLES.join(', ')}`);
    if (input.role === 'enforcement' && jurisdictions.length === 0) {
      throw new RegistryError('invalid', 'an enforcement token needs at least one jurisdiction');
    }
    if (input.role !== 'enforcement' && jurisdictions.length > 0) {
      throw new RegistryError('invalid', `only enforcement tokens are limited to jurisdictions, not ${input.role}`);
    }
    const id = crypto.randomUUID();
    const token = PREFIX + crypto.randomBytes(32).toString('base64url');
    const now = this.clock().toISOString();
    this.db.transaction(() => {
      this.db.statement('INSERT INTO tokens (id, name, role, token_hash, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)')
        .run(id, input.name, input.role, digest(token), now, now);
      const scope = this.db.statement('INSERT INTO token_jurisdictions (token_id, jurisdiction_id) VALUES (?, ?)');
      for (const jurisdiction of jurisdictions) {
        try {
          scope.run(id, jurisdiction);
        } catch (error) {
          if (isViolation(error, 'foreign_key')) throw new RegistryError('invalid', `no jurisdiction ${jurisdiction}`);
          throw error;
        }
      }
    });
    return { id, token };
  }

  /** The identity behind a bearer token, or null for an unknown or revoked one. */
  authenticate(token: string): TokenIdentity | null {
    if (!token.startsWith(PREFIX)) return null;
    const row = this.db.statement('SELECT id, name, role FROM tokens WHERE token_hash = ? AND revoked_at IS NULL')
      .get(digest(token)) as { id: string; name: string; role: Role } | undefined;
    return row ? { ...row, jurisdictions: this.jurisdictionsOf(row.id) } : null;
  }

  list(): TokenInfo[] {
    const rows = this.db.statement('SELECT id, name, role, created_at, revoked_at FROM tokens ORDER BY created_at, id').all() as Omit<TokenInfo, 'jurisdictions'>[];
    return rows.map((row) => ({ ...row, jurisdictions: this.jurisdictionsOf(row.id) }));
  }

  revoke(id: string): void {
    const result = this.db.statement('UPDATE tokens SET revoked_at = ?, updated_at = ? WHERE id = ? AND revoked_at IS NULL').run(this.clock().toISOString(), this.clock().toISOString(), id);
    if (result.changes === 0) throw new RegistryError('not_found', `no active token ${id}`);
  }

  private jurisdictionsOf(id: string): string[] {
    return (this.db.statement('SELECT jurisdiction_id FROM token_jurisdictions WHERE token_id = ? ORDER BY jurisdiction_id').all(id) as { jurisdiction_id: string }[]).map(
      (r) => r.jurisdiction_id,
    );
  }
}

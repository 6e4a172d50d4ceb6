// Devices and MQTT service accounts in the registry database. Implements the broker's
// CredentialDirectory, so the broker authenticates against the registry live; changes made by any
// process (the API, the CLI) are noticed within `pollMs` through SQLite's data_version, which
// changes whenever another connection commits (SQLite docs, "PRAGMA data_version").
import type { CredentialDirectory, DeviceRecord, ServiceRecord } from '../broker/credentials.ts';
import { z } from 'zod';
import { generateSecret, hashSecret, secretHashProblem } from '../broker/secrets.ts';
import { DEVICE_ID_PATTERN, type DeviceClass } from '../contract/topics.ts';
import type { RegistryDb } from './db.ts';

/**
 * A secret hash made elsewhere (a registry bundle, a provisioning file): refused with its reason
 * when the broker could not use it (malformed, or costlier than the service issues: an imported
 * p=64 once took 2.5 s a login attempt), before any login depends on it.
 */
export const importedSecretHash = z.string().superRefine((hash, ctx) => {
  const problem = secretHashProblem(hash);
  if (problem) ctx.addIssue({ code: 'custom', message: `${problem}; import the device without a hash and give it a new secret` });
});

export class RegistryError extends Error {
  constructor(
    readonly code: 'not_found' | 'conflict' | 'invalid',
    message: string,
  ) {
    super(message);
  }
}

interface DeviceRow {
  id: string;
  class: DeviceClass;
  secret_hash: string;
  enabled: number;
  created_at: string;
  updated_at: string;
}

export interface DeviceFilter {
  deviceClass?: DeviceClass;
  enabled?: boolean;
  limit?: number;
  offset?: number;
}

const toRecord = (row: DeviceRow): DeviceRecord & { updated_at: string } => ({
  id: row.id,
  class: row.class,
  secret_hash: row.secret_hash,
  enabled: row.enabled === 1,
  created_at: row.created_at,
  updated_at: row.updated_at,
});

export class DeviceStore implements CredentialDirectory {
  private timer: NodeJS.Timeout | null = null;
  private dataVersion = 0;
  private readonly listeners: (() => void)[] = [];

  constructor(
    private readonly db: RegistryDb,
    private readonly clock: () => Date = () => new Date(),
  ) {}

  device(id: string): DeviceRecord | undefined {
    const row = this.db.statement('SELECT * FROM devices WHERE id = ?').get(id) as DeviceRow | undefined;
    return row ? toRecord(row) : undefined;
  }

  service(name: string): ServiceRecord | undefined {
    return this.db.statement('SELECT name, secret_hash, created_at FROM service_accounts WHERE name = ?').get(name) as ServiceRecord | undefined;
  }

  list(filter: DeviceFilter = {}): { items: DeviceRecord[]; total: number } {
    const where: string[] = [];
    const params: Record<string, unknown> = { limit: filter.limit ?? 100, offset: filter.offset ?? 0 };
    if (filter.deviceClass) {
      where.push('class = @deviceClass');
      params.deviceClass = filter.deviceClass;
    }
    if (filter.enabled !== undefined) {
      where.push('enabled = @enabled');
      params.enabled = filter.enabled ? 1 : 0;
    }
    const clause = where.length ? `WHERE ${where.join(' AND ')}` : '';
    const rows = this.db.statement(`SELECT * FROM devices ${clause} ORDER BY id LIMIT @limit OFFSET @offset`).all(params) as DeviceRow[];
    const { total } = this.db.statement(`SELECT COUNT(*) AS total FROM devices ${clause}`).get(params) as { total: number };
    return { items: rows.map(toRecord), total };
  }

  /** Adds a device; returns its secret, which is stored only as a hash and cannot be shown again. */
  async add(id: string, deviceClass: DeviceClass): Promise<string> {
    if (!DEVICE_ID_PATTERN.test(id)) {
      throw new RegistryError('invalid', `device id "${id}" must be 1-64 letters, digits, '_', '.' or '-' and start with a letter or digit`);
    }
    const secret = generateSecret();
    const hash = await hashSecret(secret);
    const now = this.clock().toISOString();
    try {
      this.db.statement('INSERT INTO devices (id, class, secret_hash, enabled, created_at, updated_at) VALUES (?, ?, ?, 1, ?, ?)')
        .run(id, deviceClass, hash, now, now);
    } catch (error) {
      if ((error as { code?: string }).code === 'SQLITE_CONSTRAINT_PRIMARYKEY') throw new RegistryError('conflict', `device ${id} exists already`);
      throw error;
    }
    this.notify();
    return secret;
  }

  /** Gives a device a new secret; the old one stops working (and live connections are cut). */
  async rotate(id: string): Promise<string> {
    this.require(id);
    const secret = generateSecret();
    const hash = await hashSecret(secret);
    this.db.statement('UPDATE devices SET secret_hash = ?, updated_at = ? WHERE id = ?').run(hash, this.clock().toISOString(), id);
    this.notify();
    return secret;
  }

  setEnabled(id: string, enabled: boolean): void {
    this.require(id);
    this.db.statement('UPDATE devices SET enabled = ?, updated_at = ? WHERE id = ?').run(enabled ? 1 : 0, this.clock().toISOString(), id);
    this.notify();
  }

  remove(id: string): void {
    this.require(id);
    this.db.statement('DELETE FROM devices WHERE id = ?').run(id);
    this.notify();
  }

  /** The truck, bin or weighbridge a device is fitted to, if any. */
  assetOf(id: string): { type: 'truck' | 'bin' | 'weighbridge'; id: string } | null {
    for (const [type, table] of [['truck', 'trucks'], ['bin', 'bins'], ['weighbridge', 'weighbridges']] as const) {
      const row = this.db.statement(`SELECT id FROM ${table} WHERE device_id = ?`).get(id) as { id: string } | undefined;
      if (row) return { type, id: row.id };
    }
    return null;
  }

  /** Inserts a device whose secret was hashed already (bulk import, inside its transaction). */
  insertHashed(id: string, deviceClass: DeviceClass, secretHash: string): void {
    const now = this.clock().toISOString();
    this.db.statement('INSERT INTO devices (id, class, secret_hash, enabled, created_at, updated_at) VALUES (?, ?, ?, 1, ?, ?)').run(id, deviceClass, secretHash, now, now);
  }

  /** Calls the change listeners (after a bulk import that inserted devices). */
  announceChange(): void {
    this.notify();
  }

  /** Adds an MQTT service account (name starting with "waste-"); returns its secret once. */
  async addService(name: string): Promise<string> {
    if (!/^waste-[A-Za-z0-9_.-]{1,58}$/.test(name)) throw new RegistryError('invalid', `service account name "${name}" must start with "waste-"`);
    const secret = generateSecret();
    const hash = await hashSecret(secret);
    const now = this.clock().toISOString();
    try {
      this.db.statement('INSERT INTO service_accounts (name, secret_hash, created_at, updated_at) VALUES (?, ?, ?, ?)').run(name, hash, now, now);
    } catch (error) {
      if ((error as { code?: string }).code === 'SQLITE_CONSTRAINT_PRIMARYKEY') throw new RegistryError('conflict', `service account ${name} exists already`);
      throw error;
    }
    this.notify();
    return secret;
  }

  /**
   * Takes over a provisioning file's devices and service accounts (hashes as they are), in one
   * transaction; entries that exist already are left alone. Returns how many were added.
   */
  importCredentials(devices: DeviceRecord[], services: ServiceRecord[]): number {
    const now = this.clock().toISOString();
    const insertDevice = this.db.statement(
      'INSERT OR IGNORE INTO devices (id, class, secret_hash, enabled, created_at, updated_at) VALUES (@id, @class, @secret_hash, @enabled, @created_at, @updated_at)',
    );
    const insertService = this.db.statement(
      'INSERT OR IGNORE INTO service_accounts (name, secret_hash, created_at, updated_at) VALUES (@name, @secret_hash, @created_at, @updated_at)',
    );
    const added = this.db.transaction(() => {
      let count = 0;
      for (const d of devices) count += insertDevice.run({ ...d, enabled: d.enabled ? 1 : 0, updated_at: now }).changes;
      for (const s of services) count += insertService.run({ ...s, updated_at: now }).changes;
      return count;
    });
    if (added > 0) this.notify();
    return added;
  }

  /** Called after every change, from this process or another. */
  onChange(listener: () => void): void {
    this.listeners.push(listener);
  }

  /** Starts noticing commits by other processes. */
  watch(pollMs = 500): void {
    if (this.timer) return;
    this.dataVersion = this.readDataVersion();
    this.timer = setInterval(() => {
      const version = this.readDataVersion();
      if (version !== this.dataVersion) {
        this.dataVersion = version;
        this.notify();
      }
    }, pollMs);
    this.timer.unref();
  }

  unwatch(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  private require(id: string): void {
    if (!this.db.statement('SELECT 1 FROM devices WHERE id = ?').get(id)) throw new RegistryError('not_found', `no device ${id}`);
  }

  /** data_version does not change for this connection's own commits, so those notify directly. */
  private notify(): void {
    for (const listener of this.listeners) listener();
  }

  private readDataVersion(): number {
    return this.db.connection.pragma('data_version', { simple: true }) as number;
  }
}

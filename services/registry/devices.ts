// Devices and MQTT service accounts in the registry database. Implements the broker's
// CredentialDirectory, so the broker authenticates against the registry live; changes made by any
// process (the API, the CLI) are noticed within `pollMs` through SQLite's data_version, which
// changes whenever another connection commits (SQLite docs, "PRAGMA data_version"); on PostgreSQL
// they are told at once (LISTEN/NOTIFY, registry/postgres-backend.ts).
//
// A device of class trucks may also be a JT/T 808 terminal, reporting to the JT/T 808 gateway
// over TCP instead of MQTT: it then has a terminal phone number (the SIM number in every message
// header, JT/T 808-2013 §4.4.3), unique among devices, and an authentication code (§8.5) kept
// only as a hash, as device secrets are. The store is the gateway's TerminalDirectory.
//
// A device of class bins may be a LoRaWAN sensor, reporting through a network server to the
// LoRaWAN bridge instead of over MQTT: it then has a DevEUI, unique among devices, and a sensor
// model naming its payload decoder (lorawan/decoders/). The store is the bridge's LorawanDirectory.
import type { CredentialDirectory, DeviceRecord, ServiceRecord } from '../broker/credentials.ts';
import { z } from 'zod';
import { generateSecret, hashSecret, secretHashProblem } from '../broker/secrets.ts';
import { UNSTORABLE } from '../contract/payloads.ts';
import { DEVICE_ID_PATTERN, type DeviceClass } from '../contract/topics.ts';
import type { TerminalDirectory, TerminalRecord } from '../jt808/terminals.ts';
import { SENSOR_MODELS } from '../lorawan/decoders/index.ts';
import { devEuiProblem, normaliseDevEui } from '../lorawan/dev-eui.ts';
import type { LorawanDirectory, LorawanRecord } from '../lorawan/directory.ts';
import { isViolation, type RegistryDb } from './db.ts';

/**
 * A secret hash made elsewhere (a registry bundle, a provisioning file): refused with its reason
 * when the broker could not use it (malformed, or costlier than the service issues: an imported
 * p=64 once took 2.5 s a login attempt), before any login depends on it.
 */
export const importedSecretHash = z.string().superRefine((hash, ctx) => {
  const problem = secretHashProblem(hash);
  if (problem) ctx.addIssue({ code: 'custom', message: `${problem}; import the device without a hash and give it a new secret` });
});

/**
 * Digits of a terminal phone number: the 2013 edition's header holds BCD[6] (12 digits), the 2019
 * edition's BCD[10] (20 digits).
 */
export const MAX_TERMINAL_PHONE_DIGITS = 20;
/** Longest terminal model kept: the 2019 edition's registration carries BYTE[30], the 2013 edition's BYTE[20]. */
export const MAX_TERMINAL_MODEL = 64;
/** Longest authentication code an integrator may choose (the 2019 edition's length BYTE would allow 255). */
export const MAX_AUTH_CODE = 64;

const quoted = (value: string) => JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);

/** Why `phone` cannot be a terminal phone number, or null if it can. */
export function terminalPhoneProblem(phone: string): string | null {
  if (!/^\d+$/.test(phone) || phone.length > MAX_TERMINAL_PHONE_DIGITS) {
    return `terminal phone number ${quoted(phone)} must be 1-${MAX_TERMINAL_PHONE_DIGITS} decimal digits (the terminal's SIM number)`;
  }
  // All zeros is what a terminal sends before anyone set its number; as a registry entry it would
  // match every such terminal.
  if (/^0+$/.test(phone)) return `terminal phone number ${quoted(phone)} is zeros only, a terminal's unset default rather than a SIM number`;
  return null;
}

/**
 * The stored form of a terminal phone number: leading zeros removed, as the gateway reads the
 * header's BCD field (jt808/header.ts), so "013800138000" and "13800138000" are one terminal.
 */
export function normaliseTerminalPhone(phone: string): string {
  return phone.replace(/^0+(?=\d)/, '');
}

/** Why `model` cannot be stored as a terminal model, or null if it can. */
export function terminalModelProblem(model: string): string | null {
  if (model.length === 0) return 'terminal model must not be empty';
  if (model.length > MAX_TERMINAL_MODEL) return `terminal model of ${model.length} characters is longer than ${MAX_TERMINAL_MODEL}`;
  if (UNSTORABLE.test(model)) return `terminal model ${quoted(model)} contains control characters or unpaired surrogates`;
  return null;
}

/**
 * Why `code` cannot be a terminal's authentication code, or null if it can. JT/T 808-2013 §8.5
 * sends the code as a STRING filling the rest of the 0x0102 body, and the 2019 edition prefixes it
 * with its length as a BYTE: printable ASCII survives both, and every terminal's configuration tool.
 */
export function authCodeProblem(code: string): string | null {
  if (/^[\x21-\x7e]+$/.test(code) && code.length <= MAX_AUTH_CODE) return null;
  return `the authentication code must be 1-${MAX_AUTH_CODE} printable ASCII characters without spaces (JT/T 808 sends it as a STRING)`;
}

/** Why `model` names no sensor decoder, or null if it does. */
export function sensorModelProblem(model: string): string | null {
  if (SENSOR_MODELS.includes(model)) return null;
  return `sensor model ${quoted(model)} has no decoder; known models: ${SENSOR_MODELS.join(', ')} (or none, when the network server's codec sends the contract's fields)`;
}

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
  jt808_phone: string | null;
  jt808_auth_hash: string | null;
  jt808_model: string | null;
  lorawan_dev_eui: string | null;
  lorawan_sensor: string | null;
}

/** A device as stored; the terminal's code hash is not part of it, only whether there is one. */
export type StoredDevice = DeviceRecord & {
  updated_at: string;
  jt808_phone: string | null;
  jt808_model: string | null;
  jt808_registered: boolean;
  lorawan_dev_eui: string | null;
  lorawan_sensor: string | null;
};

/** What makes a new trucks device a JT/T 808 terminal (add()). */
export interface TerminalProvisioning {
  /** Terminal phone number, 1-20 digits; stored without leading zeros. */
  phone: string;
  model?: string | null;
  /** An authentication code the integrator chose (authCodeProblem()); stored only as a hash. */
  authCode?: string;
}

/** What makes a new bins device a LoRaWAN sensor (add()). */
export interface LorawanProvisioning {
  /** DevEUI, 16 hex digits; stored upper case without separators. */
  devEui: string;
  /** Sensor model, picking the payload decoder; none: the network server's codec sends the contract's fields. */
  sensor?: string | null;
}

/** Changes to an existing device, made together (update()). */
export interface DeviceUpdate {
  enabled?: boolean;
  /** The terminal phone number; null makes the device no terminal (phone, model and code removed). */
  jt808Phone?: string | null;
  /** The terminal model; null removes it. Needs a phone number, given here or stored. */
  jt808Model?: string | null;
  /** A new authentication code; the terminal's old one stops working. */
  jt808AuthCode?: string;
  /** The DevEUI; null makes the device no LoRaWAN sensor (DevEUI and sensor model removed). */
  lorawanDevEui?: string | null;
  /** The sensor model; null removes it. Needs a DevEUI, given here or stored. */
  lorawanSensor?: string | null;
}

/** A LoRaWAN sensor's columns as a bundle writes them (validated and normalised already). */
export interface LorawanColumns {
  devEui: string;
  sensor: string | null;
}

/** A terminal's columns as a bundle writes them (validated and normalised already). */
export interface TerminalColumns {
  phone: string;
  model: string | null;
  /** The code hash to store; undefined keeps the stored one. */
  authHash?: string | null;
}

/** Checked changes of the terminal columns and `enabled`: undefined keeps what is stored. */
interface Change {
  enabled?: boolean;
  phone?: string | null;
  model?: string | null;
  authHash?: string | null;
  devEui?: string | null;
  sensor?: string | null;
}

export interface DeviceFilter {
  deviceClass?: DeviceClass;
  enabled?: boolean;
  limit?: number;
  offset?: number;
}

const toRecord = (row: DeviceRow): StoredDevice => ({
  id: row.id,
  class: row.class,
  secret_hash: row.secret_hash,
  enabled: row.enabled === 1,
  created_at: row.created_at,
  updated_at: row.updated_at,
  jt808_phone: row.jt808_phone,
  jt808_model: row.jt808_model,
  jt808_registered: row.jt808_auth_hash !== null,
  lorawan_dev_eui: row.lorawan_dev_eui,
  lorawan_sensor: row.lorawan_sensor,
});

/** The phone number, checked and normalised, or a RegistryError saying why it is none. */
function checkedPhone(phone: string): string {
  const problem = terminalPhoneProblem(phone);
  if (problem) throw new RegistryError('invalid', problem);
  return normaliseTerminalPhone(phone);
}

function checkedModel(model: string | null | undefined): string | null | undefined {
  const problem = model === null || model === undefined ? null : terminalModelProblem(model);
  if (problem) throw new RegistryError('invalid', problem);
  return model;
}

function checkedDevEui(devEui: string): string {
  const problem = devEuiProblem(devEui);
  if (problem) throw new RegistryError('invalid', problem);
  return normaliseDevEui(devEui);
}

function checkedSensor(model: string | null | undefined): string | null | undefined {
  const problem = model === null || model === undefined ? null : sensorModelProblem(model);
  if (problem) throw new RegistryError('invalid', problem);
  return model;
}

function checkedAuthCode(code: string): string {
  const problem = authCodeProblem(code);
  if (problem) throw new RegistryError('invalid', problem);
  return code;
}

const TERMINAL_SELECT = 'SELECT d.id, d.jt808_phone, d.enabled, d.jt808_auth_hash, d.jt808_model, t.plate FROM devices d LEFT JOIN trucks t ON t.device_id = d.id';
interface TerminalRow {
  id: string;
  jt808_phone: string;
  enabled: number;
  jt808_auth_hash: string | null;
  jt808_model: string | null;
  plate: string | null;
}
const LORAWAN_SELECT = 'SELECT id, lorawan_dev_eui, lorawan_sensor, enabled FROM devices';
interface LorawanRow {
  id: string;
  lorawan_dev_eui: string;
  lorawan_sensor: string | null;
  enabled: number;
}
const toLorawan = (row: LorawanRow): LorawanRecord => ({ deviceId: row.id, devEui: row.lorawan_dev_eui, sensor: row.lorawan_sensor, enabled: row.enabled === 1 });
const toTerminal = (row: TerminalRow): TerminalRecord => ({ deviceId: row.id, phone: row.jt808_phone, enabled: row.enabled === 1, authCodeHash: row.jt808_auth_hash, model: row.jt808_model, plate: row.plate });

export class DeviceStore implements CredentialDirectory, TerminalDirectory, LorawanDirectory {
  private unwatchDb: (() => void) | null = null;
  private readonly listeners: (() => void)[] = [];

  constructor(
    private readonly db: RegistryDb,
    private readonly clock: () => Date = () => new Date(),
  ) {}

  device(id: string): StoredDevice | undefined {
    const row = this.row(id);
    return row ? toRecord(row) : undefined;
  }

  /** The JT/T 808 terminal with this phone number (leading zeros or not), or undefined. */
  terminal(phone: string): TerminalRecord | undefined {
    if (terminalPhoneProblem(phone)) return undefined;
    const row = this.db.statement(`${TERMINAL_SELECT} WHERE d.jt808_phone = ?`).get(normaliseTerminalPhone(phone)) as TerminalRow | undefined;
    return row ? toTerminal(row) : undefined;
  }

  /** Every JT/T 808 terminal, in one query. */
  terminals(): TerminalRecord[] {
    return (this.db.statement(`${TERMINAL_SELECT} WHERE d.jt808_phone IS NOT NULL`).all() as TerminalRow[]).map(toTerminal);
  }

  /** The device that has this terminal phone number, if any. */
  terminalHolder(phone: string): string | undefined {
    if (terminalPhoneProblem(phone)) return undefined;
    return (this.db.statement('SELECT id FROM devices WHERE jt808_phone = ?').get(normaliseTerminalPhone(phone)) as { id: string } | undefined)?.id;
  }

  /** The LoRaWAN sensor with this DevEUI (any of its written forms), or undefined. */
  lorawanDevice(devEui: string): LorawanRecord | undefined {
    if (devEuiProblem(devEui)) return undefined;
    const row = this.db.statement(`${LORAWAN_SELECT} WHERE lorawan_dev_eui = ?`).get(normaliseDevEui(devEui)) as LorawanRow | undefined;
    return row ? toLorawan(row) : undefined;
  }

  /** Every LoRaWAN sensor, in one query. */
  lorawanDevices(): LorawanRecord[] {
    return (this.db.statement(`${LORAWAN_SELECT} WHERE lorawan_dev_eui IS NOT NULL`).all() as LorawanRow[]).map(toLorawan);
  }

  /** The device that has this DevEUI, if any. */
  devEuiHolder(devEui: string): string | undefined {
    return this.lorawanDevice(devEui)?.deviceId;
  }

  /**
   * Records a terminal's registration (0x0100): the hash of the code issued, and the model it
   * reported (kept over a provisioned one; null keeps that). In one statement, so that of two
   * registrations at once only one issues the code. False, changing nothing, when the device has a
   * code already, is disabled, or is not (or no longer) a terminal. An unusable hash, or a model that cannot
   * be stored, is refused with a RegistryError.
   */
  register(deviceId: string, authCodeHash: string, model: string | null): boolean {
    const problem = secretHashProblem(authCodeHash);
    if (problem) throw new RegistryError('invalid', `authentication code hash refused: ${problem}`);
    // The registration's model field is fixed-length, filled up with 0x00 (JT/T 808-2013 §8.8):
    // the fill is no part of the model.
    const reported = model === null ? null : model.replace(/\0+$/, '');
    const stored = reported === '' ? null : checkedModel(reported);
    const { changes } = this.db
      .statement('UPDATE devices SET jt808_auth_hash = ?, jt808_model = COALESCE(?, jt808_model), updated_at = ? WHERE id = ? AND enabled = 1 AND jt808_phone IS NOT NULL AND jt808_auth_hash IS NULL')
      .run(authCodeHash, stored ?? null, this.clock().toISOString(), deviceId);
    if (changes === 0) return false;
    this.notify();
    return true;
  }

  service(name: string): ServiceRecord | undefined {
    return this.db.statement('SELECT name, secret_hash, created_at FROM service_accounts WHERE name = ?').get(name) as ServiceRecord | undefined;
  }

  list(filter: DeviceFilter = {}): { items: StoredDevice[]; total: number } {
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

  /**
   * Adds a device; returns its secret, which is stored only as a hash and cannot be shown again.
   * A trucks device given `terminal` is also a JT/T 808 terminal; a bins device given `lorawan`, a
   * LoRaWAN sensor.
   */
  async add(id: string, deviceClass: DeviceClass, terminal?: TerminalProvisioning, lorawan?: LorawanProvisioning): Promise<string> {
    if (!DEVICE_ID_PATTERN.test(id)) {
      throw new RegistryError('invalid', `device id "${id}" must be 1-64 letters, digits, '_', '.' or '-' and start with a letter or digit`);
    }
    // Everything is checked before the hashing, which takes 40-60 ms a secret.
    let phone: string | null = null;
    if (terminal) {
      this.requireTrucks(id, deviceClass);
      phone = checkedPhone(terminal.phone);
      checkedModel(terminal.model);
      if (terminal.authCode !== undefined) checkedAuthCode(terminal.authCode);
      this.requirePhoneFree(phone, id);
    }
    let devEui: string | null = null;
    if (lorawan) {
      this.requireBins(id, deviceClass);
      devEui = checkedDevEui(lorawan.devEui);
      checkedSensor(lorawan.sensor);
      this.requireDevEuiFree(devEui, id);
    }
    const secret = generateSecret();
    const hash = await hashSecret(secret);
    const authHash = terminal?.authCode === undefined ? null : await hashSecret(terminal.authCode);
    const now = this.clock().toISOString();
    try {
      this.db
        .statement('INSERT INTO devices (id, class, secret_hash, enabled, created_at, updated_at, jt808_phone, jt808_model, jt808_auth_hash, lorawan_dev_eui, lorawan_sensor) VALUES (?, ?, ?, 1, ?, ?, ?, ?, ?, ?, ?)')
        .run(id, deviceClass, hash, now, now, phone, terminal?.model ?? null, authHash, devEui, lorawan?.sensor ?? null);
    } catch (error) {
      if (isViolation(error, 'primary_key')) throw new RegistryError('conflict', `device ${id} exists already`);
      if (phone !== null && isViolation(error, 'unique')) this.requirePhoneFree(phone, id);
      if (devEui !== null && isViolation(error, 'unique')) this.requireDevEuiFree(devEui, id);
      throw error;
    }
    this.notify();
    return secret;
  }

  /**
   * Makes an existing trucks device a JT/T 808 terminal, or gives it another phone number (a new
   * SIM): its authentication code is kept. `model` undefined keeps the stored model, null removes it.
   */
  setTerminal(id: string, phone: string, model?: string | null): void {
    this.apply(id, { phone: checkedPhone(phone), model: checkedModel(model) });
  }

  /** Makes a device no terminal: phone number, model and authentication code are removed. */
  clearTerminal(id: string): void {
    this.apply(id, { phone: null });
  }

  /** Gives a terminal an authentication code the integrator chose; stored only as a hash. */
  async setAuthCode(id: string, code: string): Promise<void> {
    checkedAuthCode(code);
    this.requireTerminal(id);
    this.apply(id, { authHash: await hashSecret(code) });
  }

  /**
   * Removes a terminal's authentication code, so that it may register (0x0100) again: a terminal
   * that lost its code (a factory reset) cannot authenticate with the old one, and a registered
   * terminal is not given another.
   */
  resetTerminal(id: string): void {
    this.requireTerminal(id);
    this.apply(id, { authHash: null });
  }

  /**
   * Changes `enabled` and the terminal fields together: everything is checked first, and written
   * in one transaction or not at all.
   */
  async update(id: string, changes: DeviceUpdate): Promise<void> {
    const phone = changes.jt808Phone === undefined || changes.jt808Phone === null ? changes.jt808Phone : checkedPhone(changes.jt808Phone);
    const model = checkedModel(changes.jt808Model);
    if (changes.jt808AuthCode !== undefined) checkedAuthCode(changes.jt808AuthCode);
    const devEui = changes.lorawanDevEui === undefined || changes.lorawanDevEui === null ? changes.lorawanDevEui : checkedDevEui(changes.lorawanDevEui);
    const sensor = checkedSensor(changes.lorawanSensor);
    const change: Change = { phone, model, devEui, sensor, ...(changes.enabled === undefined ? {} : { enabled: changes.enabled }) };
    // Checked without writing before the hashing, so that a refused change costs no hash.
    this.apply(id, { ...change, ...(changes.jt808AuthCode === undefined ? {} : { authHash: 'to be hashed' }) }, { dryRun: true });
    if (changes.jt808AuthCode !== undefined) change.authHash = await hashSecret(changes.jt808AuthCode);
    this.apply(id, change);
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
  insertHashed(id: string, deviceClass: DeviceClass, secretHash: string, terminal?: TerminalColumns, lorawan?: LorawanColumns): void {
    const now = this.clock().toISOString();
    this.db
      .statement('INSERT INTO devices (id, class, secret_hash, enabled, created_at, updated_at, jt808_phone, jt808_model, jt808_auth_hash, lorawan_dev_eui, lorawan_sensor) VALUES (?, ?, ?, 1, ?, ?, ?, ?, ?, ?, ?)')
      .run(id, deviceClass, secretHash, now, now, terminal?.phone ?? null, terminal?.model ?? null, terminal?.authHash ?? null, lorawan?.devEui ?? null, lorawan?.sensor ?? null);
  }

  /**
   * Writes a bundle's terminal columns to a stored device (bulk import, inside its transaction),
   * if the device is as it was when the bundle was checked (`stamp`, its updated_at). False if not.
   */
  updateTerminalChecked(id: string, terminal: TerminalColumns, stamp: string): boolean {
    const { changes } = this.db
      .statement('UPDATE devices SET jt808_phone = ?, jt808_model = ?, jt808_auth_hash = COALESCE(?, jt808_auth_hash), updated_at = ? WHERE id = ? AND updated_at = ?')
      .run(terminal.phone, terminal.model, terminal.authHash ?? null, this.clock().toISOString(), id, stamp);
    return changes === 1;
  }

  /** As updateTerminalChecked, for a bundle's LoRaWAN columns. */
  updateLorawanChecked(id: string, lorawan: LorawanColumns, stamp: string): boolean {
    const { changes } = this.db
      .statement('UPDATE devices SET lorawan_dev_eui = ?, lorawan_sensor = ?, updated_at = ? WHERE id = ? AND updated_at = ?')
      .run(lorawan.devEui, lorawan.sensor, this.clock().toISOString(), id, stamp);
    return changes === 1;
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
      if (isViolation(error, 'primary_key')) throw new RegistryError('conflict', `service account ${name} exists already`);
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
      'INSERT INTO devices (id, class, secret_hash, enabled, created_at, updated_at) VALUES (@id, @class, @secret_hash, @enabled, @created_at, @updated_at) ON CONFLICT DO NOTHING',
    );
    const insertService = this.db.statement(
      'INSERT INTO service_accounts (name, secret_hash, created_at, updated_at) VALUES (@name, @secret_hash, @created_at, @updated_at) ON CONFLICT DO NOTHING',
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

  /** Starts noticing commits by other processes (db.ts watchDevices: polled on SQLite, told on PostgreSQL). */
  watch(pollMs = 500): void {
    this.unwatchDb ??= this.db.watchDevices(() => this.notify(), pollMs);
  }

  unwatch(): void {
    this.unwatchDb?.();
    this.unwatchDb = null;
  }

  private require(id: string): void {
    if (!this.db.statement('SELECT 1 FROM devices WHERE id = ?').get(id)) throw new RegistryError('not_found', `no device ${id}`);
  }

  private row(id: string): DeviceRow | undefined {
    return this.db.statement('SELECT * FROM devices WHERE id = ?').get(id) as DeviceRow | undefined;
  }

  private requireTrucks(id: string, deviceClass: DeviceClass): void {
    // JT/T 808 is the standard of road-transport vehicle terminals; bins and scales report over MQTT.
    if (deviceClass !== 'trucks') throw new RegistryError('invalid', `device ${id} is of class ${deviceClass}; only trucks devices can be JT/T 808 terminals`);
  }

  private requireBins(id: string, deviceClass: DeviceClass): void {
    // The LoRaWAN sensors the service decodes are bin sensors (lorawan/decoders/).
    if (deviceClass !== 'bins') throw new RegistryError('invalid', `device ${id} is of class ${deviceClass}; only bins devices can be LoRaWAN sensors`);
  }

  /** Refuses, naming the holder, a DevEUI that another device has. */
  private requireDevEuiFree(devEui: string, id: string): void {
    const holder = this.devEuiHolder(devEui);
    if (holder !== undefined && holder !== id) throw new RegistryError('conflict', `DevEUI ${devEui} belongs to device ${holder} already`);
  }

  private requireTerminal(id: string): DeviceRow {
    const row = this.row(id);
    if (!row) throw new RegistryError('not_found', `no device ${id}`);
    if (row.jt808_phone === null) throw new RegistryError('invalid', `device ${id} is no JT/T 808 terminal (it has no terminal phone number)`);
    return row;
  }

  /** Refuses, naming the holder, a phone number that another device has. */
  private requirePhoneFree(phone: string, id: string): void {
    const holder = this.terminalHolder(phone);
    if (holder !== undefined && holder !== id) throw new RegistryError('conflict', `terminal phone number ${phone} belongs to device ${holder} already`);
  }

  /**
   * Checks a change against the stored device and writes it in one transaction (not with
   * `dryRun`), then tells the listeners, so that the gateway drops a terminal whose number, code
   * or state changed at once.
   */
  private apply(id: string, change: Change, options: { dryRun?: boolean } = {}): void {
    this.db.transaction(() => {
      const row = this.row(id);
      if (!row) throw new RegistryError('not_found', `no device ${id}`);
      const phone = change.phone === undefined ? row.jt808_phone : change.phone;
      if (phone !== null) this.requireTrucks(id, row.class);
      // Without a phone number a device is no terminal: a model or a code would belong to nothing.
      if (phone === null && ((change.model ?? null) !== null || (change.authHash ?? null) !== null)) {
        throw new RegistryError('invalid', `device ${id} has no terminal phone number; give one with the model or authentication code`);
      }
      const model = phone === null ? null : change.model === undefined ? row.jt808_model : change.model;
      const authHash = phone === null ? null : change.authHash === undefined ? row.jt808_auth_hash : change.authHash;
      const enabled = change.enabled === undefined ? row.enabled : change.enabled ? 1 : 0;
      if (phone !== null && phone !== row.jt808_phone) this.requirePhoneFree(phone, id);
      const devEui = change.devEui === undefined ? row.lorawan_dev_eui : change.devEui;
      if (devEui !== null) this.requireBins(id, row.class);
      if (devEui === null && (change.sensor ?? null) !== null) {
        throw new RegistryError('invalid', `device ${id} has no DevEUI; give one with the sensor model`);
      }
      const sensor = devEui === null ? null : change.sensor === undefined ? row.lorawan_sensor : change.sensor;
      if (devEui !== null && devEui !== row.lorawan_dev_eui) this.requireDevEuiFree(devEui, id);
      if (options.dryRun) return;
      try {
        // A savepoint: after a refused statement PostgreSQL runs no other in its transaction, and
        // the checks below need to.
        this.db.transaction(() =>
          this.db
            .statement('UPDATE devices SET jt808_phone = ?, jt808_model = ?, jt808_auth_hash = ?, lorawan_dev_eui = ?, lorawan_sensor = ?, enabled = ?, updated_at = ? WHERE id = ?')
            .run(phone, model, authHash, devEui, sensor, enabled, this.clock().toISOString(), id),
        );
      } catch (error) {
        // Another connection took the number (or the DevEUI) between the check and the write.
        if (phone !== null && isViolation(error, 'unique')) this.requirePhoneFree(phone, id);
        if (devEui !== null && isViolation(error, 'unique')) this.requireDevEuiFree(devEui, id);
        throw error;
      }
    });
    if (!options.dryRun) this.notify();
  }

  /** SQLite's data_version does not change for this connection's own commits, so those notify directly. */
  private notify(): void {
    for (const listener of this.listeners) {
      try {
        listener();
      } catch {
        // A listener that could not read the registry (PostgreSQL restarting) looks again at the
        // next change, or when the connection that tells of changes is made again.
      }
    }
  }
}

// The provisioning file (docs/provisioning.md): devices and service accounts with hashed secrets.
// The broker reads it at start and again whenever it changes, so a device added with the CLI can
// connect at once. Writes are atomic (temp file + rename) so a reader never sees half a file.
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { DEVICE_CLASSES, DEVICE_ID_PATTERN, type DeviceClass } from '../contract/topics.ts';
import { generateSecret, hashSecret } from './secrets.ts';

const deviceRecordSchema = z.object({
  id: z.string().regex(DEVICE_ID_PATTERN),
  class: z.enum(DEVICE_CLASSES),
  secret_hash: z.string().startsWith('scrypt$'),
  enabled: z.boolean().default(true),
  created_at: z.string(),
});

const serviceRecordSchema = z.object({
  name: z.string().regex(/^waste-[A-Za-z0-9_.-]{1,58}$/),
  secret_hash: z.string().startsWith('scrypt$'),
  created_at: z.string(),
});

const fileSchema = z.object({
  version: z.literal(1).default(1),
  devices: z.array(deviceRecordSchema).default([]),
  services: z.array(serviceRecordSchema).default([]),
});

export type DeviceRecord = z.infer<typeof deviceRecordSchema>;
export type ServiceRecord = z.infer<typeof serviceRecordSchema>;
type ProvisioningData = z.infer<typeof fileSchema>;

/** What the broker needs to authenticate clients; the registry will provide the same. */
export interface CredentialDirectory {
  device(id: string): DeviceRecord | undefined;
  service(name: string): ServiceRecord | undefined;
}

export class ProvisioningError extends Error {}

export class DeviceFile implements CredentialDirectory {
  private data: ProvisioningData = { version: 1, devices: [], services: [] };
  private devices = new Map<string, DeviceRecord>();
  private services = new Map<string, ServiceRecord>();
  private watching = false;
  private readonly changeListeners: (() => void)[] = [];

  constructor(readonly file: string) {}

  device(id: string): DeviceRecord | undefined {
    return this.devices.get(id);
  }

  service(name: string): ServiceRecord | undefined {
    return this.services.get(name);
  }

  list(): ProvisioningData {
    return this.data;
  }

  /** Reads the file; a missing file is an empty one. */
  async load(): Promise<void> {
    let text: string;
    try {
      text = await fsp.readFile(this.file, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return this.replace({ version: 1, devices: [], services: [] });
      throw error;
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (error) {
      throw new ProvisioningError(`${this.file} is not valid JSON: ${(error as Error).message}`);
    }
    const parsed = fileSchema.safeParse(json);
    if (!parsed.success) {
      const problems = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
      throw new ProvisioningError(`${this.file} is not a valid provisioning file: ${problems}`);
    }
    this.replace(parsed.data);
  }

  /** Reloads on every change of the file; a broken edit is reported and the previous content kept. */
  watch(onError: (error: Error) => void): void {
    if (this.watching) return;
    this.watching = true;
    fs.watchFile(this.file, { interval: 500 }, () => {
      this.load().then(() => this.changeListeners.forEach((listener) => listener()), onError);
    });
  }

  /** Called after each reload caused by a change of the file. */
  onChange(listener: () => void): void {
    this.changeListeners.push(listener);
  }

  unwatch(): void {
    if (this.watching) fs.unwatchFile(this.file);
    this.watching = false;
  }

  /** Adds a device and returns its secret, which is not stored anywhere and cannot be shown again. */
  async addDevice(id: string, deviceClass: DeviceClass): Promise<string> {
    if (!DEVICE_ID_PATTERN.test(id)) {
      throw new ProvisioningError(`device id "${id}" must be 1-64 letters, digits, '_', '.' or '-' and start with a letter or digit`);
    }
    await this.load();
    if (this.devices.has(id)) throw new ProvisioningError(`device ${id} exists already; use "device rotate" for a new secret`);
    const secret = generateSecret();
    const record: DeviceRecord = { id, class: deviceClass, secret_hash: await hashSecret(secret), enabled: true, created_at: new Date().toISOString() };
    await this.save({ ...this.data, devices: [...this.data.devices, record] });
    return secret;
  }

  /** Gives a device a new secret; the old one stops working at its next connect. */
  async rotateDevice(id: string): Promise<string> {
    await this.load();
    const existing = this.devices.get(id);
    if (!existing) throw new ProvisioningError(`no device ${id}`);
    const secret = generateSecret();
    const hash = await hashSecret(secret);
    await this.save({ ...this.data, devices: this.data.devices.map((d) => (d.id === id ? { ...d, secret_hash: hash } : d)) });
    return secret;
  }

  async setEnabled(id: string, enabled: boolean): Promise<void> {
    await this.load();
    if (!this.devices.has(id)) throw new ProvisioningError(`no device ${id}`);
    await this.save({ ...this.data, devices: this.data.devices.map((d) => (d.id === id ? { ...d, enabled } : d)) });
  }

  /** Adds a service account (name must start with "waste-") and returns its secret once. */
  async addService(name: string): Promise<string> {
    await this.load();
    if (this.services.has(name)) throw new ProvisioningError(`service account ${name} exists already`);
    const parsedName = serviceRecordSchema.shape.name.safeParse(name);
    if (!parsedName.success) throw new ProvisioningError(`service account name "${name}" must start with "waste-"`);
    const secret = generateSecret();
    const record: ServiceRecord = { name, secret_hash: await hashSecret(secret), created_at: new Date().toISOString() };
    await this.save({ ...this.data, services: [...this.data.services, record] });
    return secret;
  }

  private async save(data: ProvisioningData): Promise<void> {
    await fsp.mkdir(path.dirname(this.file), { recursive: true });
    const tmp = `${this.file}.${process.pid}.tmp`;
    await fsp.writeFile(tmp, JSON.stringify(data, null, 2) + '\n', { mode: 0o600 });
    await fsp.rename(tmp, this.file);
    this.replace(data);
  }

  private replace(data: ProvisioningData): void {
    this.data = data;
    this.devices = new Map(data.devices.map((d) => [d.id, d]));
    this.services = new Map(data.services.map((s) => [s.name, s]));
  }
}

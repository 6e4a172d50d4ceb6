// Reads a provisioning file from before the registry existed (docs/provisioning.md, "Taking over a
// provisioning file"), so that its devices and service accounts, with their secret hashes, move
// into the registry without new secrets.
import fs from 'node:fs';
import { z } from 'zod';
import type { DeviceRecord, ServiceRecord } from '../broker/credentials.ts';
import { DEVICE_CLASSES, DEVICE_ID_PATTERN } from '../contract/topics.ts';
import { RegistryError, importedSecretHash } from './devices.ts';

const fileSchema = z.object({
  version: z.literal(1).default(1),
  devices: z
    .array(
      z.object({
        id: z.string().regex(DEVICE_ID_PATTERN),
        class: z.enum(DEVICE_CLASSES),
        secret_hash: importedSecretHash,
        enabled: z.boolean().default(true),
        created_at: z.string(),
      }),
    )
    .default([]),
  services: z.array(z.object({ name: z.string().regex(/^waste-[A-Za-z0-9_.-]{1,58}$/), secret_hash: importedSecretHash, created_at: z.string() })).default([]),
});

/** The file's devices and service accounts; null when there is no such file. */
export function readProvisioningFile(file: string): { devices: DeviceRecord[]; services: ServiceRecord[] } | null {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new RegistryError('invalid', `${file} is not valid JSON: ${(error as Error).message}`);
  }
  const parsed = fileSchema.safeParse(json);
  if (!parsed.success) {
    throw new RegistryError('invalid', `${file} is not a valid provisioning file: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  }
  return parsed.data;
}

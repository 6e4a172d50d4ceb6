// What the broker needs to know about who may connect. The registry's device store provides it.
import type { DeviceClass } from '../contract/topics.ts';

export interface DeviceRecord {
  id: string;
  class: DeviceClass;
  /** scrypt$N$r$p$salt$hash (secrets.ts). */
  secret_hash: string;
  enabled: boolean;
  created_at: string;
  /** JT/T 808 terminal phone number of a trucks device (registry/devices.ts), null if it has none. */
  jt808_phone?: string | null;
  /** JT/T 808 terminal model, as provisioned or reported at registration. */
  jt808_model?: string | null;
  /** Whether the terminal has an authentication code (its hash is never part of the record). */
  jt808_registered?: boolean;
}

/** An MQTT account of the service's own clients (rules, dashboards, tools); names start "waste-". */
export interface ServiceRecord {
  name: string;
  secret_hash: string;
  created_at: string;
}

export interface CredentialDirectory {
  device(id: string): DeviceRecord | undefined;
  service(name: string): ServiceRecord | undefined;
}

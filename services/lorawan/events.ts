// What the bridge takes from a network server's event, whichever network server sent it
// (chirpstack.ts, tts.ts): an uplink with its payload, a join, a device status. Everything else
// a network server publishes (acknowledgements, logs, locations) is counted and left.
import { z } from 'zod';
import { parseTimestamp } from '../contract/timestamps.ts';
import { isRecord } from './decoders/decoder.ts';
import { devEuiProblem, normaliseDevEui } from './dev-eui.ts';

export interface Uplink {
  kind: 'uplink';
  /** Stored form (dev-eui.ts). */
  devEui: string;
  /** Epoch ms when the network server received the uplink: the reading's time (sensors have no clock). */
  receivedAt: number;
  fCnt: number;
  /** 0 for MAC commands only; application data is on 1-223 (LoRaWAN 1.0.3 §4.3.2). */
  fPort: number;
  /** FRMPayload as the device sent it (decrypted by the network server). */
  payload: Buffer;
  /** What the network server's codec made of the payload, when the device profile has one. */
  object: Record<string, unknown> | null;
  /** The same for every delivery of this uplink, different for any other (ChirpStack's deduplicationId; The Things Stack's session and fCnt). */
  uplinkKey: string;
  /** Strongest signal among the gateways that heard it, dBm, rounded. */
  rssi: number | null;
}

export type NetworkEvent =
  | Uplink
  | { kind: 'join'; devEui: string }
  /** ChirpStack's answer to DevStatusReq (LoRaWAN 1.0.3 §5.5): battery in percent, null when the device cannot measure it or is mains-powered. */
  | { kind: 'status'; devEui: string; batteryPct: number | null; at: number }
  | { kind: 'other'; what: string }
  | { kind: 'invalid'; message: string };

export const invalid = (message: string): NetworkEvent => ({ kind: 'invalid', message });

export const devEuiField = z.string().refine((value) => devEuiProblem(value) === null, { error: 'must be 16 hex digits' }).transform(normaliseDevEui);
/** An unsigned 32-bit counter; proto3 JSON leaves out a field that is 0 (protobuf.dev, "ProtoJSON Format"). */
export const counter = z.number().int().min(0).max(0xffff_ffff).default(0);
/**
 * The frame port: 0 for MAC commands only, 1-223 application data, 224 the MAC layer test
 * protocol and 225-255 reserved (LoRaWAN 1.0.3 §4.3.2); neither of the last carries a sensor's data.
 */
export const fPortField = z.number().int().min(0).max(223, { error: 'must be 0-223 (224 and over are no application data)' }).default(0);
/** Standard or URL-safe, padded or not, as the Protobuf JSON mapping accepts bytes; no length base64 cannot have. */
export const base64 = z
  .string()
  .regex(/^[A-Za-z0-9+/_-]*={0,2}$/, { error: 'must be base64' })
  .refine((text) => text.replace(/=+$/, '').length % 4 !== 1, { error: 'must be base64 (its length is none base64 has)' })
  .default('')
  .transform((text) => Buffer.from(text, 'base64'));
const rssiField = z.number().finite().min(-200).max(0);

/** The network server's receive time in epoch ms, or the reason it is none. */
export function receiveTime(value: unknown): { ok: true; ms: number } | { ok: false; message: string } {
  const parsed = parseTimestamp(value);
  return parsed.ok ? parsed : { ok: false, message: `receive time: ${parsed.message}` };
}

/** The strongest RSSI among gateways' metadata, ignoring what is no RSSI. */
export function bestRssi(gateways: unknown[], key = 'rssi'): number | null {
  let best: number | null = null;
  for (const gateway of gateways) {
    const value = rssiField.safeParse((gateway as Record<string, unknown> | null)?.[key]);
    if (value.success && (best === null || value.data > best)) best = value.data;
  }
  return best === null ? null : Math.round(best);
}

/** The issues of a failed parse as one sentence. */
export function describe(error: z.ZodError): string {
  return error.issues
    .slice(0, 3)
    .map((issue) => `${issue.path.join('.') || 'event'} ${issue.message}`)
    .join('; ');
}

/** A JSON object's fields, or null for anything that is no object (arrays included). */
export function asObject(value: unknown): Record<string, unknown> | null {
  return isRecord(value) ? value : null;
}

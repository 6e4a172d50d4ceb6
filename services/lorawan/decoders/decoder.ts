// A sensor decoder turns one LoRaWAN uplink of one sensor model into bin fields of the MQTT
// contract (contract/payloads.ts, binReadingSchema): the bytes the device sent (FRMPayload, by
// fPort), from the vendor's published payload format; or the object the network server's codec
// made of them (the vendor's decoder script run in ChirpStack or The Things Stack), which is used
// when the network server gives one. The bridge (lorawan/bridge.ts) picks the decoder by the
// sensor model provisioned on the device; docs/lorawan.md says how to add one.

/** Bin fields in the contract's units, as a decoder finds them in one uplink. */
export interface BinFields {
  /** Distance from the sensor to the waste; becomes a fill level through the bin's depth. */
  distance_mm?: number;
  fill_pct?: number;
  temp_c?: number;
  tilt_deg?: number;
  /** Sensors that report only "tilted or not" (a position flag), not an angle. */
  tilted?: boolean;
  battery_v?: number;
  battery_pct?: number;
}

export type DecodeResult =
  /** A measurement: the fields found (at least a distance or a fill level). */
  | { kind: 'reading'; fields: BinFields }
  /** A well-formed frame that carries no measurement (device information, a configuration answer, a heartbeat without a distance). */
  | { kind: 'no_reading'; what: string }
  /** Not what the sensor sends: too short, an unknown channel, a value out of its range. */
  | { kind: 'invalid'; reason: string };

export interface SensorDecoder {
  /** The sensor model as provisioned on a device (lower case, e.g. "milesight-em310-udl"). */
  readonly model: string;
  /** Vendor and product, and the document the format is taken from. */
  readonly description: string;
  /** Decodes the FRMPayload the device sent on `fPort`. Never throws. */
  decode(fPort: number, payload: Buffer): DecodeResult;
  /** Maps the object the vendor's codec script produced in the network server. Never throws. */
  fromCodecObject(object: Record<string, unknown>): DecodeResult;
}

/** A value as a reason quotes it: a string cut short, a number as written, anything else by its type. */
export function describeValue(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.slice(0, 40));
  if (typeof value === 'number') return String(value);
  return value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value;
}

/** A JSON object (no array, no null): what a codec object must be. */
export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

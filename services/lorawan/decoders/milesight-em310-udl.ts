// Milesight EM310-UDL ultrasonic distance/level sensor. The uplink format and the codec's output
// follow Milesight's decoder repository (github.com/Milesight-IoT/SensorDecoders,
// em-series/em310-udl: README.md "Payload" and em310-udl-decoder.js). Milesight's EM series shares
// the channel format, so the channel parser here also serves the EM400-UDL (milesight-em400-udl.ts).
import { describeValue, isRecord, type BinFields, type DecodeResult, type SensorDecoder } from './decoder.ts';

/**
 * Milesight sensors uplink on fPort 85 by default (the port of the vendor's examples in The Things
 * Network's device repository, lorawan-devices vendor/milesight-iot/em310-udl-codec.yaml), which
 * the device's configuration may change; the channels describe themselves, so any application
 * port (1-223, LoRaWAN 1.0.3 §4.3.2) is read. fPort 0 carries MAC commands only.
 */
const APPLICATION_FPORTS = { min: 1, max: 223 };

/** The largest distance the contract takes (contract/payloads.ts binReadingSchema). */
const MAX_DISTANCE_MM = 10_000;

/** The bin fields of a value, or why it is not one. */
type Mapped = BinFields | string;

/**
 * One channel of an uplink. README "Payload": an uplink is a run of entries, each
 * [channel id, 1 byte][channel type, 1 byte][data, as long as the type says].
 */
export interface Channel {
  readonly name: string;
  readonly length: number;
  /** The bin fields in the data; channels without one (device information, answers) have none. */
  readonly read?: (data: Buffer) => Mapped;
}

export type ChannelEntry = readonly [id: number, type: number, channel: Channel];
export type ChannelTable = ReadonlyMap<number, Channel>;

const channelKey = (id: number, type: number) => (id << 8) | type;
const hex = (byte: number) => `0x${byte.toString(16).padStart(2, '0')}`;
const invalid = (reason: string): DecodeResult => ({ kind: 'invalid', reason });

export function channelTable(entries: readonly ChannelEntry[]): ChannelTable {
  return new Map(entries.map(([id, type, channel]) => [channelKey(id, type), channel]));
}

const information = (name: string, length: number): Channel => ({ name, length });

/** README "Attribute": the device information channels, sent after joining and when asked. */
export const ATTRIBUTE_CHANNELS: readonly ChannelEntry[] = [
  [0xff, 0x01, information('IPSO version', 1)],
  [0xff, 0x09, information('hardware version', 2)],
  [0xff, 0x0a, information('firmware version', 2)],
  [0xff, 0xff, information('TSL version', 2)],
  // The README's table gives length 2 and describes sn(8B); the decoder reads 8 bytes.
  [0xff, 0x16, information('serial number', 8)],
  [0xff, 0x0f, information('LoRaWAN class', 1)],
  [0xff, 0xfe, information('reset event', 1)],
  [0xff, 0x0b, information('device status', 1)],
];

/**
 * Answers to downlink commands: the decoder's handle_downlink_response takes them on channel 0xFE
 * or 0xFF (after the attribute types of 0xFF), the command type naming the data's length.
 */
export function downlinkAnswers(answers: readonly (readonly [type: number, name: string, length: number])[]): ChannelEntry[] {
  return answers.flatMap(([type, name, length]) => [0xfe, 0xff].map((id): ChannelEntry => [id, type, information(name, length)]));
}

/** A value of the codec object or of the payload that must be a finite number within [min, max]. */
function numberWithin(value: unknown, min: number, max: number, unit: string): number | string {
  if (typeof value !== 'number' || !Number.isFinite(value)) return `must be a number of ${unit}, got ${describeValue(value)}`;
  if (value < min || value > max) return `${value} ${unit} is outside ${min}..${max} ${unit}`;
  return value;
}

/** Battery, README "Telemetry": percent. */
export function batteryPct(value: unknown): Mapped {
  const pct = numberWithin(value, 0, 100, '%');
  return typeof pct === 'string' ? pct : { battery_pct: pct };
}

/** Distance, README "Telemetry": mm, here within the contract's range. */
export function distanceMm(value: unknown): Mapped {
  const mm = numberWithin(value, 0, MAX_DISTANCE_MM, 'mm');
  return typeof mm === 'string' ? mm : { distance_mm: mm };
}

/** Position, README "Telemetry": 0 normal, 1 tilt; the codec writes "normal" or "tilt" (0 or 1 with RAW_VALUE set). */
export function position(value: unknown): Mapped {
  if (value === 0 || value === 'normal') return { tilted: false };
  if (value === 1 || value === 'tilt') return { tilted: true };
  return `must be 0 or "normal", 1 or "tilt", got ${describeValue(value)}`;
}

export const BATTERY_CHANNEL: Channel = { name: 'battery', length: 1, read: (data) => batteryPct(data.readUInt8(0)) };
/** Distance is an unsigned 16-bit little-endian number (the decoder's readUInt16LE); `length` covers any status byte after it. */
export const distanceChannel = (name: string, length: number): Channel => ({
  name,
  length,
  read: (data) => distanceMm(data.readUInt16LE(0)),
});
export const POSITION_CHANNEL: Channel = { name: 'position', length: 1, read: (data) => position(data.readUInt8(0)) };

/** Walks the channels of a Milesight uplink; an unknown channel or a short one makes it invalid. */
export function decodeChannels(fPort: number, payload: Buffer, table: ChannelTable): DecodeResult {
  if (fPort < APPLICATION_FPORTS.min || fPort > APPLICATION_FPORTS.max) return invalid(`fPort ${fPort} is no application port (Milesight sensors send on 85 unless configured otherwise)`);
  if (payload.length === 0) return invalid('empty payload');
  const fields: BinFields = {};
  const found: string[] = [];
  for (let at = 0; at < payload.length; ) {
    const entry = readEntry(payload, at, table);
    if (typeof entry === 'string') return invalid(entry);
    Object.assign(fields, entry.fields);
    found.push(entry.name);
    at = entry.next;
  }
  return result(fields, found);
}

function readEntry(payload: Buffer, at: number, table: ChannelTable): { name: string; fields: BinFields; next: number } | string {
  if (at + 2 > payload.length) return `truncated: 1 byte left at byte ${at}, a channel needs an id and a type`;
  const id = payload.readUInt8(at);
  const type = payload.readUInt8(at + 1);
  const channel = table.get(channelKey(id, type));
  if (channel === undefined) return `unknown channel ${hex(id)} type ${hex(type)} at byte ${at}`;
  const start = at + 2;
  const next = start + channel.length;
  if (next > payload.length) return `truncated: ${channel.name} needs ${channel.length} bytes at byte ${start}, ${payload.length - start} left`;
  const fields = channel.read?.(payload.subarray(start, next)) ?? {};
  if (typeof fields === 'string') return `${channel.name} ${fields}`;
  return { name: channel.name, fields, next };
}

/** A reading needs a distance (decoder.ts); what else came is named. */
function result(fields: BinFields, found: readonly string[]): DecodeResult {
  if (fields.distance_mm !== undefined) return { kind: 'reading', fields };
  return { kind: 'no_reading', what: `no distance, only ${found.join(', ')}` };
}

export type CodecKeys = Readonly<Record<string, (value: unknown) => Mapped>>;

/**
 * Maps the object of Milesight's codec (the keys of its decoder script) with `keys`; other keys
 * (device information, alarm states, settings) carry no bin field.
 */
export function fromMilesightObject(object: unknown, keys: CodecKeys): DecodeResult {
  if (!isRecord(object)) return invalid(`the codec object must be an object, got ${describeValue(object)}`);
  const fields: BinFields = {};
  const found: string[] = [];
  for (const [key, map] of Object.entries(keys)) {
    if (!Object.hasOwn(object, key)) continue;
    const mapped = map(object[key]);
    if (typeof mapped === 'string') return invalid(`${key} ${mapped}`);
    Object.assign(fields, mapped);
    found.push(key);
  }
  const present = Object.keys(object);
  // The vendor's decoder stops without a word at a channel it does not know: an empty object.
  if (present.length === 0) return invalid('empty codec object: the codec decoded nothing');
  return result(fields, found.length > 0 ? found : present.slice(0, 8));
}

const EM310_CHANNELS = channelTable([
  ...ATTRIBUTE_CHANNELS,
  // em310-udl-decoder.js handle_downlink_response.
  ...downlinkAnswers([
    [0x10, 'reboot answer', 1],
    [0x02, 'collection interval', 2],
    [0x03, 'report interval', 2],
    [0x06, 'distance alarm settings', 9],
  ]),
  // README "Telemetry".
  [0x01, 0x75, BATTERY_CHANNEL],
  [0x03, 0x82, distanceChannel('distance', 2)],
  [0x04, 0x00, POSITION_CHANNEL],
]);

/** The keys em310-udl-decoder.js writes for the telemetry (README "Example"). */
const EM310_CODEC_KEYS: CodecKeys = { battery: batteryPct, distance: distanceMm, position };

export const milesightEm310Udl: SensorDecoder = {
  model: 'milesight-em310-udl',
  description: 'Milesight EM310-UDL ultrasonic distance/level sensor (Milesight-IoT/SensorDecoders em-series/em310-udl)',
  decode: (fPort, payload) => decodeChannels(fPort, payload, EM310_CHANNELS),
  fromCodecObject: (object) => fromMilesightObject(object, EM310_CODEC_KEYS),
};

// Dragino LDDS75 LoRaWAN distance detection sensor (ultrasonic). The uplink format and the codec's
// output follow Dragino's decoders (github.com/dragino/dragino-end-node-decoder, LDDS75/:
// LDDS75_Decoder_V1.1.4.js and its ChirpStack versions for firmware v1.1.4 on, "LDDS75
// decoder--TTN.txt" for earlier firmware), the fPort of The Things Network's device repository
// (lorawan-devices vendor/dragino/ldds75.js), and the range of the LDDS75 user manual (§1.2 Features).
import { describeValue, isRecord, type BinFields, type DecodeResult, type SensorDecoder } from './decoder.ts';

/** Measurements come on fPort 2; the TTN device repository's codec answers "unknown FPort" to any other. */
const MEASUREMENT_FPORT = 2;
/** The device status frame of Dragino's current nodes (DDS75-LB/DDS75-LB_ChirpstackV4_Decoder.txt, fPort 5). */
const STATUS_FPORT = 5;
const STATUS_LENGTH = 7;

/** User manual §1.2 Features: "Flat object range 280mm - 7500mm". */
const MIN_DISTANCE_MM = 280;
const MAX_DISTANCE_MM = 7500;
/** Dragino's LDDS75 decoder before v1.1.4 ("LDDS75 decoder--TTN.txt") calls a distance under 20 mm "Invalid Reading". */
const INVALID_BELOW_MM = 20;
/** The contract's battery range (contract/payloads.ts binReadingSchema). */
const MAX_BATTERY_V = 60;
/** The DS18B20 probe measures -55..125 °C; the contract takes -50 °C and up. */
const MIN_PROBE_C = -50;
const MAX_PROBE_C = 125;

/** The values of one measurement frame, from the payload or from the codec's object. */
interface Measurement {
  batteryV?: number;
  distanceMm: number;
  tempC?: number;
  /** Firmware v1.1.4 on, the manual's Sensor Flag: 1 the ultrasonic sensor is detected, 0 it is not. */
  sensorFlag?: number;
}

const invalid = (reason: string): DecodeResult => ({ kind: 'invalid', reason });

function decode(fPort: number, payload: Buffer): DecodeResult {
  if (fPort === STATUS_FPORT) return deviceStatus(payload);
  if (fPort !== MEASUREMENT_FPORT) return invalid(`fPort ${fPort}: the LDDS75 sends measurements on fPort ${MEASUREMENT_FPORT}`);
  // LDDS75_Decoder_V1.1.4.js: 8 bytes; the earlier decoder reads 5 and calls any other length "No Sensor".
  if (payload.length === 8) return fromMeasurement(readFrame(payload));
  if (payload.length === 5) return fromMeasurement(readEarlyFrame(payload));
  return invalid(`${payload.length}-byte frame: the LDDS75 measures in 8 bytes (5 before firmware v1.1.4); Dragino's decoder reads this as "No Sensor"`);
}

/**
 * Battery in mV, big-endian, masked with 0x3FFF as Dragino's decoders do: the two top bits are
 * flags, not voltage (on the LDDS04 of the same family bit 15 marks an interrupt uplink, LDDS04
 * user manual §2.4.2).
 */
const batteryV = (payload: Buffer) => (payload.readUInt16BE(0) & 0x3fff) / 1000;

/** Firmware v1.1.4 on: battery(2) distance mm(2) interrupt flag(1) DS18B20 0.1 °C signed(2) sensor flag(1), big-endian. */
function readFrame(payload: Buffer): Measurement {
  return {
    batteryV: batteryV(payload),
    distanceMm: payload.readUInt16BE(2),
    tempC: payload.readInt16BE(5) / 10,
    sensorFlag: payload.readUInt8(7),
  };
}

/** Before firmware v1.1.4 ("LDDS75 decoder--TTN.txt"): battery(2) distance mm(2) interrupt flag(1). */
function readEarlyFrame(payload: Buffer): Measurement {
  return { batteryV: batteryV(payload), distanceMm: payload.readUInt16BE(2) };
}

/** The range checks shared by both paths: a value that is no measurement never becomes a distance. */
function fromMeasurement(values: Measurement): DecodeResult {
  const problem = sensorProblem(values) ?? distanceProblem(values.distanceMm) ?? batteryProblem(values.batteryV);
  if (problem !== undefined) return invalid(problem);
  // Waste inside the blind zone (closer than the range starts) is as near as the sensor can tell:
  // in a bin, nearly full. Reported at the range's edge, a distance the waste is at least as close
  // as, so that an overflowing bin is seen as one rather than refused.
  const fields: BinFields = { distance_mm: Math.max(values.distanceMm, MIN_DISTANCE_MM) };
  if (values.batteryV !== undefined) fields.battery_v = values.batteryV;
  // The probe is optional: a value it cannot measure is its absence, not a reason to drop the distance.
  if (values.tempC !== undefined && values.tempC >= MIN_PROBE_C && values.tempC <= MAX_PROBE_C) fields.temp_c = values.tempC;
  return { kind: 'reading', fields };
}

function sensorProblem({ sensorFlag }: Measurement): string | undefined {
  if (sensorFlag === undefined || sensorFlag === 1) return undefined;
  if (sensorFlag === 0) return 'no ultrasonic sensor detected (sensor flag 0)';
  return `sensor flag ${sensorFlag} is neither 0 (no ultrasonic sensor) nor 1 (detected)`;
}

function distanceProblem(mm: number): string | undefined {
  // The frame carries whole millimetres; a codec's fraction or negative number is none of them.
  if (!Number.isInteger(mm) || mm < 0) return `distance ${mm} mm is not a whole number of millimetres the sensor sends`;
  if (mm === 0) return 'distance 0 mm: the sensor measured nothing (no probe, or no echo)';
  // Dragino's earlier decoder calls values under 20 "Invalid Reading"; from 20 to the range's
  // start is an echo from inside the blind zone.
  if (mm < INVALID_BELOW_MM) return `distance ${mm} mm is under ${INVALID_BELOW_MM}: Dragino's "Invalid Reading"`;
  if (mm > MAX_DISTANCE_MM) return `distance ${mm} mm is beyond the ${MAX_DISTANCE_MM} mm the sensor measures`;
  return undefined;
}

function batteryProblem(volts: number | undefined): string | undefined {
  if (volts === undefined || (volts >= 0 && volts <= MAX_BATTERY_V)) return undefined;
  return `battery ${volts} V is outside 0..${MAX_BATTERY_V} V`;
}

/**
 * The device status frame (fPort 5), as DDS75-LB_ChirpstackV4_Decoder.txt reads it: sensor model(1)
 * firmware version(2) frequency band(1) sub-band(1) battery mV(2). It carries no measurement.
 */
function deviceStatus(payload: Buffer): DecodeResult {
  if (payload.length !== STATUS_LENGTH) return invalid(`device status frame of ${payload.length} bytes, not ${STATUS_LENGTH}`);
  const version = payload.readUInt8(2);
  const firmware = `${payload.readUInt8(1) & 0x0f}.${version >> 4}.${version & 0x0f}`;
  return { kind: 'no_reading', what: `device status: firmware ${firmware}, battery ${payload.readUInt16BE(5) / 1000} V` };
}

/**
 * A number from the codec, which writes some as numbers and some as text with a unit:
 * LDDS75_Decoder_V1.1.4.js `Distance: 2799`, `TempC_DS18B20: "0.00"`; the ChirpStack decoders (and
 * the LDDS45's copy) `Distance: "2799 mm"`, `Bat: "3.387 V"`, `TempC_DS18B20: "0.00 °C"`.
 */
function quantity(value: unknown, unit: string): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) ? value : undefined;
  if (typeof value !== 'string') return undefined;
  const match = new RegExp(`^\\s*(-?\\d+(?:\\.\\d+)?)\\s*(?:${unit})?\\s*$`).exec(value);
  return match === null ? undefined : Number(match[1]);
}

/** The codec's words for "no distance" (the earlier decoder and TTN's device repository codec). */
const NO_DISTANCE = ['No Sensor', 'Invalid Reading'];

function fromCodecObject(object: unknown): DecodeResult {
  if (!isRecord(object)) return invalid(`the codec object must be an object, got ${describeValue(object)}`);
  if (!Object.hasOwn(object, 'Distance')) return withoutDistance(object);
  const distance = object.Distance;
  if (typeof distance === 'string' && NO_DISTANCE.includes(distance.trim())) return invalid(`the codec reports ${JSON.stringify(distance.trim())}`);
  const values = codecValues(object);
  return typeof values === 'string' ? invalid(values) : fromMeasurement(values);
}

/** The codec's object as a measurement, or what in it is not a number of its unit. */
function codecValues(object: Record<string, unknown>): Measurement | string {
  const distanceMm = quantity(object.Distance, 'mm');
  if (distanceMm === undefined) return `Distance must be a number of mm, got ${describeValue(object.Distance)}`;
  const values: Measurement = { distanceMm };
  const optional = [
    ['Bat', 'V', 'batteryV'],
    ['TempC_DS18B20', '°C', 'tempC'],
    ['Sensor_flag', '', 'sensorFlag'],
  ] as const;
  for (const [key, unit, field] of optional) {
    if (!Object.hasOwn(object, key)) continue;
    const value = quantity(object[key], unit);
    if (value === undefined) return `${key} must be a number${unit === '' ? '' : ` of ${unit}`}, got ${describeValue(object[key])}`;
    values[field] = value;
  }
  return values;
}

function withoutDistance(object: Record<string, unknown>): DecodeResult {
  // The fPort 5 status as Dragino's current decoders name it.
  if (Object.hasOwn(object, 'FIRMWARE_VERSION')) return { kind: 'no_reading', what: `device status: firmware ${describeValue(object.FIRMWARE_VERSION)}` };
  // lorawan-devices vendor/dragino/ldds75.js puts the distance in `value` and the battery word in `distance`.
  if (Object.hasOwn(object, 'distance')) {
    return invalid(`the codec object has "distance", not "Distance": The Things Network device repository's ldds75.js, whose "distance" holds the battery word (${describeValue(object.distance)}); use Dragino's decoder`);
  }
  return invalid('the codec object has no Distance');
}

export const draginoLdds75: SensorDecoder = {
  model: 'dragino-ldds75',
  description: 'Dragino LDDS75 LoRaWAN distance detection sensor (dragino/dragino-end-node-decoder LDDS75, LDDS75 user manual)',
  decode,
  fromCodecObject,
};

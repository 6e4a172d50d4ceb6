// Milesight EM400-UDL ultrasonic distance/level sensor. The uplink format and the codec's output
// follow Milesight's decoder repository (github.com/Milesight-IoT/SensorDecoders,
// em-series/em400-udl: README.md "Payload" and em400-udl-decoder.js): the EM310-UDL's channel
// format (milesight-em310-udl.ts) with a temperature and alarm channels, on other channel ids.
import { describeValue, type SensorDecoder } from './decoder.ts';
import {
  ATTRIBUTE_CHANNELS,
  BATTERY_CHANNEL,
  POSITION_CHANNEL,
  batteryPct,
  channelTable,
  decodeChannels,
  distanceChannel,
  distanceMm,
  downlinkAnswers,
  fromMilesightObject,
  position,
  type Channel,
  type CodecKeys,
} from './milesight-em310-udl.ts';

/** The temperature range the contract takes (contract/payloads.ts binReadingSchema). */
const MIN_TEMP_C = -50;
const MAX_TEMP_C = 150;

/** Temperature, README "Telemetry": °C; the decoder divides the signed 16-bit value by 10. */
function temperatureC(value: unknown) {
  if (typeof value !== 'number' || !Number.isFinite(value)) return `must be a number of °C, got ${describeValue(value)}`;
  if (value < MIN_TEMP_C || value > MAX_TEMP_C) return `${value} °C is outside ${MIN_TEMP_C}..${MAX_TEMP_C} °C`;
  return { temp_c: value };
}

/** README "Telemetry": the temperature is a signed 16-bit little-endian number of 0.1 °C; `length` covers a status byte after it. */
const temperatureChannel = (name: string, length: number): Channel => ({
  name,
  length,
  read: (data) => temperatureC(data.readInt16LE(0) / 10),
});

const EM400_CHANNELS = channelTable([
  ...ATTRIBUTE_CHANNELS,
  // em400-udl-decoder.js handle_downlink_response.
  ...downlinkAnswers([
    [0x02, 'collection interval', 2],
    [0x03, 'report interval', 2],
    [0x06, 'alarm settings', 9],
    [0x10, 'reboot answer', 1],
    [0x13, 'install height setting', 1],
    [0x1c, 'recollection settings', 2],
    [0x28, 'device status query answer', 1],
    [0x3e, 'tilt linkage setting', 1],
    [0x4a, 'time sync answer', 1],
    [0x56, 'ToF detection setting', 1],
    [0x70, 'people existing height', 2],
    [0x71, 'working mode', 1],
  ]),
  // README "Telemetry".
  [0x01, 0x75, BATTERY_CHANNEL],
  [0x03, 0x67, temperatureChannel('temperature', 2)],
  [0x04, 0x82, distanceChannel('distance', 2)],
  [0x05, 0x00, POSITION_CHANNEL],
  // Location is sent by the NB-IoT model only: longitude(4B) + latitude(4B) + motion status(1B).
  [0x06, 0x88, { name: 'location', length: 9 }],
  // The alarm channels: the value, then a status byte (0 alarm released, 1 threshold alarm).
  [0x83, 0x67, temperatureChannel('temperature alarm', 3)],
  [0x84, 0x82, distanceChannel('distance alarm', 3)],
]);

/** The keys em400-udl-decoder.js writes for the telemetry (README "Example"); the alarm channels write the same keys. */
const EM400_CODEC_KEYS: CodecKeys = { battery: batteryPct, temperature: temperatureC, distance: distanceMm, position };

export const milesightEm400Udl: SensorDecoder = {
  model: 'milesight-em400-udl',
  description: 'Milesight EM400-UDL ultrasonic distance/level sensor (Milesight-IoT/SensorDecoders em-series/em400-udl)',
  decode: (fPort, payload) => decodeChannels(fPort, payload, EM400_CHANNELS),
  fromCodecObject: (object) => fromMilesightObject(object, EM400_CODEC_KEYS),
};

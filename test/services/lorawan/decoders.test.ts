import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { binReadingSchema } from '../../../services/contract/payloads.ts';
import type { DecodeResult, SensorDecoder } from '../../../services/lorawan/decoders/decoder.ts';
import { SENSOR_DECODERS, SENSOR_MODELS, decoderFor } from '../../../services/lorawan/decoders/index.ts';

const bytes = (hex: string) => Buffer.from(hex.replace(/\s+/g, ''), 'hex');

function decoder(model: string): SensorDecoder {
  const found = decoderFor(model);
  if (found === undefined) throw new Error(`no decoder for ${model}`);
  return found;
}

const em310 = decoder('milesight-em310-udl');
const em400 = decoder('milesight-em400-udl');
const ldds75 = decoder('dragino-ldds75');

const invalid = (reason: RegExp) => ({ kind: 'invalid', reason: expect.stringMatching(reason) });

/** A reading must pass the contract's own schema, battery_pct and tilted included. */
function expectContract(result: DecodeResult) {
  expect(['reading', 'no_reading', 'invalid']).toContain(result.kind);
  if (result.kind === 'invalid') expect(result.reason.length).toBeGreaterThan(0);
  if (result.kind !== 'reading') return;
  const parsed = binReadingSchema.safeParse({ ts: 0, ...result.fields });
  expect(parsed.success, JSON.stringify(result.fields)).toBe(true);
  expect(Object.keys(parsed.data ?? {}).sort()).toEqual(['ts', ...Object.keys(result.fields)].sort());
}

describe('the decoder index', () => {
  it('keys every decoder by its model, and knows no other', () => {
    expect(SENSOR_MODELS).toEqual(['milesight-em310-udl', 'milesight-em400-udl', 'dragino-ldds75']);
    for (const [model, found] of SENSOR_DECODERS) expect(found.model).toBe(model);
    expect(decoderFor('milesight-em300-th')).toBeUndefined();
    expect(decoderFor('Milesight-EM310-UDL')).toBeUndefined();
  });
});

describe('Milesight EM310-UDL', () => {
  // Milesight-IoT/SensorDecoders em-series/em310-udl/README.md, "Example": 01755C 03824408 040001 gives
  // { battery: 92, distance: 2116, position: "tilt" } (the same bytes are em310-udl-codec.json's "bytes",
  // and The Things Network's lorawan-devices vendor/milesight-iot/em310-udl-codec.yaml sends them on fPort 85).
  const example = bytes('01755C 03824408 040001');
  const exampleFields = { battery_pct: 92, distance_mm: 2116, tilted: true };

  it("decodes the vendor's example uplink to the values the README states", () => {
    expect(em310.decode(85, example)).toEqual({ kind: 'reading', fields: exampleFields });
  });

  it("maps the vendor codec's object for that example to the same fields", () => {
    expect(em310.fromCodecObject({ battery: 92, distance: 2116, position: 'tilt' })).toEqual({ kind: 'reading', fields: exampleFields });
    // em310-udl-decoder.js with RAW_VALUE set writes the position as its number.
    expect(em310.fromCodecObject({ battery: 92, distance: 2116, position: 0 })).toEqual({ kind: 'reading', fields: { ...exampleFields, tilted: false } });
  });

  it('reads any application port (85 unless the device was configured otherwise), and refuses MAC-only fPort 0 and 224 on', () => {
    expect(em310.decode(10, example)).toEqual({ kind: 'reading', fields: exampleFields });
    expect(em310.decode(0, example)).toEqual(invalid(/fPort 0 is no application port/));
    expect(em310.decode(224, example)).toEqual(invalid(/fPort 224 is no application port/));
  });

  it('refuses a truncated uplink, naming the channel cut short', () => {
    // Constructed: the README example cut at each length short of a whole entry.
    expect(em310.decode(85, bytes('0175'))).toEqual(invalid(/truncated: battery needs 1 bytes at byte 2, 0 left/));
    expect(em310.decode(85, bytes('01755C 038244'))).toEqual(invalid(/truncated: distance needs 2 bytes/));
    expect(em310.decode(85, bytes('01755C 03824408 04'))).toEqual(invalid(/truncated: 1 byte left at byte 7/));
    expect(em310.decode(85, Buffer.alloc(0))).toEqual(invalid(/empty payload/));
  });

  it('refuses an unknown channel, and a channel of another EM model', () => {
    expect(em310.decode(85, bytes('01755C 0599 00'))).toEqual(invalid(/unknown channel 0x05 type 0x99 at byte 3/));
    // 0x04 0x82 is the EM400-UDL's distance (em400-udl README "Telemetry"), not the EM310-UDL's.
    expect(em310.decode(85, bytes('04824408'))).toEqual(invalid(/unknown channel 0x04 type 0x82/));
    expect(em310.decode(85, bytes('deadbeef'))).toEqual(invalid(/unknown channel 0xde type 0xad/));
  });

  it('refuses values out of their range instead of passing them on', () => {
    // Constructed from the README's channel table: battery 101 %, distance 10001 mm, position 2.
    expect(em310.decode(85, bytes('017565 03824408'))).toEqual(invalid(/battery 101 % is outside 0..100 %/));
    expect(em310.decode(85, bytes('03821127'))).toEqual(invalid(/distance 10001 mm is outside 0..10000 mm/));
    expect(em310.decode(85, bytes('03824408 040002'))).toEqual(invalid(/position must be 0 or "normal", 1 or "tilt", got 2/));
  });

  it('reads device information and downlink answers as frames without a measurement', () => {
    // Constructed from the README's "Attribute" table (a serial number is 8 bytes, as the decoder reads it)
    // and the decoder's downlink answers (0xFE 0x03: report interval, 2 bytes).
    const information = bytes('ff0101 ff090140 ff0a0114 ff16 6136b46097890001 ff0f00 ff0b01 fe03b004');
    expect(em310.decode(85, information)).toEqual({ kind: 'no_reading', what: expect.stringMatching(/no distance.*serial number.*report interval/) });
    expect(em310.decode(85, bytes('01755C 040000'))).toEqual({ kind: 'no_reading', what: 'no distance, only battery, position' });
  });

  it("refuses codec objects that are not the vendor codec's, and never throws", () => {
    const garbage: unknown[] = [null, undefined, [], [1, 2], 'tilt', 42, true];
    for (const object of garbage) expect(em310.fromCodecObject(object as Record<string, unknown>)).toEqual(invalid(/must be an object/));
    expect(em310.fromCodecObject({})).toEqual(invalid(/empty codec object/));
    expect(em310.fromCodecObject({ distance: Number.NaN })).toEqual(invalid(/distance must be a number of mm, got NaN/));
    expect(em310.fromCodecObject({ distance: Number.POSITIVE_INFINITY })).toEqual(invalid(/distance must be a number/));
    expect(em310.fromCodecObject({ distance: Number.MAX_VALUE })).toEqual(invalid(/outside 0..10000 mm/));
    expect(em310.fromCodecObject({ distance: '2116' })).toEqual(invalid(/distance must be a number of mm, got "2116"/));
    expect(em310.fromCodecObject({ distance: 2116, battery: -1 })).toEqual(invalid(/battery -1 %/));
    // The vendor codec writes "unknown" for a position value it has no name for.
    expect(em310.fromCodecObject({ distance: 2116, position: 'unknown' })).toEqual(invalid(/position must be/));
    expect(em310.fromCodecObject({ ipso_version: 'v0.1', sn: '6136b46097890001' })).toEqual({ kind: 'no_reading', what: 'no distance, only ipso_version, sn' });
  });
});

describe('Milesight EM400-UDL', () => {
  it("decodes the vendor's example uplinks to the values the README states", () => {
    // Milesight-IoT/SensorDecoders em-series/em400-udl/README.md, "Example (Sensor Payload Data)", first
    // example: { battery: 92, temperature: 25.7, distance: 2116, position: "tilt" } (also The Things Network's
    // lorawan-devices vendor/milesight-iot/em400-udl-codec.yaml, fPort 85).
    expect(em400.decode(85, bytes('01755C 03670101 04824408 050001'))).toEqual({
      kind: 'reading',
      fields: { battery_pct: 92, temp_c: 25.7, distance_mm: 2116, tilted: true },
    });
    // Same README, second example, the alarm channels: { temperature: 23.2, temperature_alarm: "threshold_alarm",
    // distance: 1601, distance_alarm: "threshold_alarm" }.
    expect(em400.decode(85, bytes('8367e80001 8482410601'))).toEqual({ kind: 'reading', fields: { temp_c: 23.2, distance_mm: 1601 } });
    // Same README, "NB-IoT Data Frame" sample: its sensor payload 01756403670b0104823b01050001 gives
    // { battery: 100, temperature: 26.7, distance: 315, position: 'tilt' }.
    expect(em400.decode(85, bytes('01756403670b0104823b01050001'))).toEqual({
      kind: 'reading',
      fields: { battery_pct: 100, temp_c: 26.7, distance_mm: 315, tilted: true },
    });
  });

  it("maps the vendor codec's objects of those examples to the same fields", () => {
    expect(em400.fromCodecObject({ battery: 92, temperature: 25.7, distance: 2116, position: 'tilt' })).toEqual({
      kind: 'reading',
      fields: { battery_pct: 92, temp_c: 25.7, distance_mm: 2116, tilted: true },
    });
    expect(
      em400.fromCodecObject({ temperature: 23.2, temperature_alarm: 'threshold_alarm', distance: 1601, distance_alarm: 'threshold_alarm' }),
    ).toEqual({ kind: 'reading', fields: { temp_c: 23.2, distance_mm: 1601 } });
  });

  it('refuses the EM310-UDL distance channel, truncated alarms and temperatures out of range', () => {
    // 0x03 0x82 is the EM310-UDL's distance (em310-udl README "Telemetry"); the EM400-UDL's 0x03 is a temperature.
    expect(em400.decode(85, bytes('03824408'))).toEqual(invalid(/unknown channel 0x03 type 0x82/));
    // Constructed: the README's distance alarm without its status byte, and a temperature of -100.0 °C.
    expect(em400.decode(85, bytes('84824106'))).toEqual(invalid(/truncated: distance alarm needs 3 bytes/));
    expect(em400.decode(85, bytes('036718fc 04824408'))).toEqual(invalid(/temperature -100 °C is outside -50..150 °C/));
    expect(em400.fromCodecObject({ distance: 2116, temperature: '25.7' })).toEqual(invalid(/temperature must be a number of °C/));
  });
});

describe('Dragino LDDS75', () => {
  // The Things Network's lorawan-devices vendor/dragino/ldds45-codec.yaml, example "Distance Detection": fPort 2,
  // 0D 3B 0A EF 00 00 00 01 gives { Bat: 3.387, Distance: "2799 mm", Interrupt_flag: 0, Sensor_flag: 1,
  // TempC_DS18B20: "0.00" }. The LDDS45 sends the LDDS75's format: Dragino's dragino-end-node-decoder ships
  // the LDDS75 decoders in its LDDS45/ folder.
  const example = bytes('0D3B 0AEF 00 0000 01');
  const exampleFields = { battery_v: 3.387, distance_mm: 2799, temp_c: 0 };

  it("decodes the vendor's example uplink to the values the example states", () => {
    expect(ldds75.decode(2, example)).toEqual({ kind: 'reading', fields: exampleFields });
  });

  it("maps the vendor codecs' objects for that example to the same fields", () => {
    const stated = { Bat: 3.387, Distance: '2799 mm', Interrupt_flag: 0, Sensor_flag: 1, TempC_DS18B20: '0.00' };
    expect(ldds75.fromCodecObject(stated)).toEqual({ kind: 'reading', fields: exampleFields });
    // The same frame through LDDS75_Decoder_V1.1.4.js (numbers) and LDDS751.1.4_ChirpstackV4_Decoder.txt (text with units).
    const ttn = { Node_type: 'LDDS75', Bat: 3.387, Distance: 2799, Interrupt_flag: 0, TempC_DS18B20: '0.00', Sensor_flag: 1 };
    const chirpstack = { Node_type: 'LDDS75', Bat: '3.387 V', Distance: '2799 mm', Interrupt_flag: 0, TempC_DS18B20: '0.00 °C', Sensor_flag: 1 };
    expect(ldds75.fromCodecObject(ttn)).toEqual({ kind: 'reading', fields: exampleFields });
    expect(ldds75.fromCodecObject(chirpstack)).toEqual({ kind: 'reading', fields: exampleFields });
  });

  it("gives no distance for the device repository's 'No Sensor' example, on either path", () => {
    // The Things Network's lorawan-devices vendor/dragino/ldds75-codec.yaml, example "Distance Detection":
    // fPort 2, 0E 1C 0B 05 gives { distance: 'No Sensor' }; and on fPort 42 "unknown FPort".
    expect(ldds75.decode(2, bytes('0E1C0B05'))).toEqual(invalid(/4-byte frame.*"No Sensor"/));
    expect(ldds75.fromCodecObject({ distance: 'No Sensor' })).toEqual(invalid(/"distance", not "Distance".*ldds75\.js/));
    expect(ldds75.decode(42, bytes('0E1C0B05'))).toEqual(invalid(/fPort 42: the LDDS75 sends measurements on fPort 2/));
  });

  it('reports waste inside the blind zone (under 280 mm) at the range\'s edge: a nearly full bin, not a refusal', () => {
    // Constructed from the vendor example: 20 mm (the least that is no "Invalid Reading") and 279 mm.
    expect(ldds75.decode(2, bytes('0D3B 0014 00 0000 01'))).toMatchObject({ kind: 'reading', fields: { distance_mm: 280 } });
    expect(ldds75.decode(2, bytes('0D3B 0117 00 0000 01'))).toMatchObject({ kind: 'reading', fields: { distance_mm: 280 } });
    expect(ldds75.fromCodecObject({ Distance: '20 mm' })).toMatchObject({ kind: 'reading', fields: { distance_mm: 280 } });
  });

  it('refuses what no LDDS75 frame can carry rather than lift it to the blind zone: under 20 mm, negative, fractions', () => {
    expect(ldds75.decode(2, bytes('0D3B 0013 00 0000 01'))).toEqual(invalid(/distance 19 mm is under 20/));
    for (const distance of [-5, '-5 mm', 0.4, 1e-300, 19]) expect(ldds75.fromCodecObject({ Distance: distance }).kind).toBe('invalid');
  });

  it("never reports a distance the sensor did not measure", () => {
    // Constructed from the vendor example: distances 0 and 7501 mm (beyond the manual's 280-7500 mm), and
    // sensor flag 0 (no ultrasonic sensor).
    expect(ldds75.decode(2, bytes('0D3B 0000 00 0000 01'))).toEqual(invalid(/distance 0 mm: the sensor measured nothing/));
    expect(ldds75.decode(2, bytes('0D3B 1D4D 00 0000 01'))).toEqual(invalid(/distance 7501 mm is beyond the 7500 mm/));
    expect(ldds75.decode(2, bytes('0D3B 0AEF 00 0000 00'))).toEqual(invalid(/no ultrasonic sensor detected \(sensor flag 0\)/));
    expect(ldds75.decode(2, bytes('0D3B 0AEF 00 0000 07'))).toEqual(invalid(/sensor flag 7 is neither/));
    expect(ldds75.fromCodecObject({ Bat: 3.387, Distance: 'Invalid Reading', Interrupt_status: 0 })).toEqual(invalid(/"Invalid Reading"/));
    expect(ldds75.fromCodecObject({ Bat: 3.387, Distance: 'No Sensor', Interrupt_status: 0 })).toEqual(invalid(/"No Sensor"/));
  });

  it('reads the frame of firmware before v1.1.4, the battery without its flag bits, and a probe below zero', () => {
    // Constructed from the vendor example and the layouts of Dragino's decoders: the 5-byte frame of
    // "LDDS75 decoder--TTN.txt"; the battery word with its two flag bits set (masked with 0x3FFF); -19.3 °C.
    expect(ldds75.decode(2, bytes('0D3B 0AEF 01'))).toEqual({ kind: 'reading', fields: { battery_v: 3.387, distance_mm: 2799 } });
    expect(ldds75.decode(2, bytes('CD3B 0AEF 01 0000 01'))).toEqual({ kind: 'reading', fields: exampleFields });
    expect(ldds75.decode(2, bytes('0D3B 0AEF 00 FF3F 01'))).toEqual({ kind: 'reading', fields: { ...exampleFields, temp_c: -19.3 } });
  });

  it('keeps the distance and drops a temperature the DS18B20 probe cannot have measured', () => {
    expect(ldds75.decode(2, bytes('0D3B 0AEF 00 7FFF 01'))).toEqual({ kind: 'reading', fields: { battery_v: 3.387, distance_mm: 2799 } });
    expect(ldds75.fromCodecObject({ Bat: 3.387, Distance: 2799, TempC_DS18B20: '3276.70' })).toEqual({
      kind: 'reading',
      fields: { battery_v: 3.387, distance_mm: 2799 },
    });
  });

  it('reads the fPort 5 device status as a frame without a measurement', () => {
    // Constructed from the layout in DDS75-LB/DDS75-LB_ChirpstackV4_Decoder.txt: model, firmware 1.1.4,
    // band CN470 (0x0B), no sub-band (0xFF), battery 3387 mV.
    expect(ldds75.decode(5, bytes('27 0114 0B FF 0D3B'))).toEqual({ kind: 'no_reading', what: 'device status: firmware 1.1.4, battery 3.387 V' });
    expect(ldds75.decode(5, bytes('27 01'))).toEqual(invalid(/device status frame of 2 bytes, not 7/));
    expect(ldds75.fromCodecObject({ SENSOR_MODEL: 'DDS75-LB', FIRMWARE_VERSION: '1.1.4', BAT: 3.387 })).toEqual({
      kind: 'no_reading',
      what: 'device status: firmware "1.1.4"',
    });
  });

  it('refuses truncated and garbage frames and codec objects, and never throws', () => {
    expect(ldds75.decode(2, Buffer.alloc(0))).toEqual(invalid(/0-byte frame/));
    expect(ldds75.decode(2, bytes('0D3B0A'))).toEqual(invalid(/3-byte frame/));
    expect(ldds75.decode(2, bytes('0D3B 0AEF 00 0000 01 FF'))).toEqual(invalid(/9-byte frame/));
    const garbage: unknown[] = [null, undefined, [], 'Distance', 2799, false];
    for (const object of garbage) expect(ldds75.fromCodecObject(object as Record<string, unknown>)).toEqual(invalid(/must be an object/));
    expect(ldds75.fromCodecObject({})).toEqual(invalid(/no Distance/));
    expect(ldds75.fromCodecObject({ Distance: Number.NaN })).toEqual(invalid(/Distance must be a number of mm, got NaN/));
    expect(ldds75.fromCodecObject({ Distance: '12 furlongs' })).toEqual(invalid(/Distance must be a number of mm/));
    expect(ldds75.fromCodecObject({ Distance: 2799, Bat: 'low' })).toEqual(invalid(/Bat must be a number of V, got "low"/));
    expect(ldds75.fromCodecObject({ Distance: 2799, Bat: 1e300 })).toEqual(invalid(/battery 1e\+300 V is outside 0..60 V/));
    expect(ldds75.fromCodecObject({ Distance: 2799, Sensor_flag: 'yes' })).toEqual(invalid(/Sensor_flag must be a number, got "yes"/));
  });
});

describe('every decoder, on any input', () => {
  const decoders = [...SENSOR_DECODERS.values()];

  it('never throws on random frames on any fPort, and any reading respects the contract', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 255 }), fc.uint8Array({ maxLength: 64 }), (fPort, frame) => {
        for (const found of decoders) expectContract(found.decode(fPort, Buffer.from(frame)));
      }),
      { numRuns: 2000 },
    );
  });

  it('never throws on random frames on their own fPorts', () => {
    const ports = [85, 2, 5];
    fc.assert(
      fc.property(fc.constantFrom(...ports), fc.uint8Array({ maxLength: 24 }), (fPort, frame) => {
        for (const found of decoders) expectContract(found.decode(fPort, Buffer.from(frame)));
      }),
      { numRuns: 3000 },
    );
  });

  it('reads well-formed EM310-UDL frames of in-range values, the last distance counting', () => {
    const entry = fc.oneof(
      fc.integer({ min: 0, max: 100 }).map((pct) => ({ bytes: [0x01, 0x75, pct], distance: undefined })),
      fc.integer({ min: 0, max: 10_000 }).map((mm) => ({ bytes: [0x03, 0x82, mm & 0xff, mm >> 8], distance: mm })),
      fc.integer({ min: 0, max: 1 }).map((tilt) => ({ bytes: [0x04, 0x00, tilt], distance: undefined })),
      fc.uint8Array({ minLength: 8, maxLength: 8 }).map((sn) => ({ bytes: [0xff, 0x16, ...sn], distance: undefined })),
    );
    fc.assert(
      fc.property(fc.array(entry, { minLength: 1, maxLength: 6 }), (entries) => {
        const result = em310.decode(85, Buffer.from(entries.flatMap((e) => e.bytes)));
        expectContract(result);
        const distances = entries.flatMap((e) => (e.distance === undefined ? [] : [e.distance]));
        if (distances.length === 0) expect(result.kind).toBe('no_reading');
        else expect(result).toMatchObject({ kind: 'reading', fields: { distance_mm: distances.at(-1) } });
      }),
    );
  });

  it('gives the LDDS75 distance as sent within the sensor range, the blind zone at its edge, and nothing else', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 8, maxLength: 8 }), (frame) => {
        const payload = Buffer.from(frame);
        const result = ldds75.decode(2, payload);
        expectContract(result);
        const mm = payload.readUInt16BE(2);
        if (result.kind === 'reading') expect(result.fields.distance_mm).toBe(Math.max(mm, 280));
        if (mm < 20 || mm > 7500 || payload[7] !== 1) expect(result.kind).toBe('invalid');
      }),
      { numRuns: 2000 },
    );
  });

  it('never throws on any codec object, and any reading respects the contract', () => {
    const value = fc.oneof(
      fc.double(),
      fc.integer(),
      fc.constantFrom(Number.NaN, Number.POSITIVE_INFINITY, -0, Number.MAX_VALUE, 'No Sensor', 'Invalid Reading', 'tilt', 'normal', '2799 mm', '3.387 V', '0.00 °C'),
      fc.string(),
      fc.anything(),
    );
    const keys = ['battery', 'distance', 'position', 'temperature', 'Bat', 'Distance', 'TempC_DS18B20', 'Sensor_flag', 'FIRMWARE_VERSION'];
    const object = fc.oneof(fc.dictionary(fc.constantFrom(...keys), value), fc.anything());
    fc.assert(
      fc.property(object, (candidate) => {
        for (const found of decoders) expectContract(found.fromCodecObject(candidate as Record<string, unknown>));
      }),
      { numRuns: 2000 },
    );
  });
});

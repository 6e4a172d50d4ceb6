import { describe, expect, it } from 'vitest';
import { ingestSchema } from '../../../services/config/schema.ts';
import type { DeviceClass } from '../../../services/contract/topics.ts';
import { parseDeviceTopic, topics } from '../../../services/contract/topics.ts';
import { validateMessage } from '../../../services/ingest/validate.ts';

const limits = ingestSchema.parse({});
const NOW = Date.UTC(2026, 10, 1, 12, 0, 0);

function validate(deviceClass: DeviceClass, body: unknown, raw?: string) {
  const topic = topics.data(deviceClass, 'DEV-1');
  const payload = Buffer.from(raw ?? JSON.stringify(body));
  return validateMessage(parseDeviceTopic(topic)!, topic, payload, NOW, limits);
}

const fix = { ts: NOW - 1000, lat: 31.3, lon: 120.6, speed_kmh: 42.5, heading: 359.5, cover_closed: false, unknown_field: 'ignored' };
const ticket = { ticket_id: 'T-1', ts: NOW, plate: '苏E·12345', gross_kg: 31200, tare_kg: 12700, net_kg: 18500, category: 'construction', direction: 'out' };

describe('validateMessage', () => {
  it('accepts a truck fix, timestamps it in ms and drops unknown fields', () => {
    const { readings, rejections } = validate('trucks', fix);
    expect(rejections).toEqual([]);
    expect(readings).toEqual([{ kind: 'truck', deviceId: 'DEV-1', ts: NOW - 1000, lat: 31.3, lon: 120.6, speed_kmh: 42.5, heading: 359.5, cover_closed: false }]);
  });

  it('accepts a bin reading with only distance_mm, and a ticket within the net tolerance', () => {
    expect(validate('bins', { ts: NOW, distance_mm: 420 }).readings).toHaveLength(1);
    expect(validate('scales', { ...ticket, net_kg: 18510 }).readings).toHaveLength(1);
  });

  it('judges a back-fill batch reading by reading, keeping the good ones', () => {
    const batch = [fix, { ...fix, lat: 91 }, { ...fix, ts: NOW - 2000 }];
    const { readings, rejections } = validate('trucks', batch);
    expect(readings.map((r) => r.ts)).toEqual([NOW - 1000, NOW - 2000]);
    expect(rejections).toHaveLength(1);
    expect(rejections[0]).toMatchObject({ reason: 'out_of_range', index: 1, deviceId: 'DEV-1' });
    expect(rejections[0]!.message).toBe('lat must be between -90 and 90 degrees, got 91');
  });

  const cases: [string, DeviceClass, unknown, string | undefined, RegExp][] = [
    ['invalid_json', 'trucks', null, '{"ts":', /not valid JSON/],
    ['invalid_payload', 'trucks', { ...fix, lat: undefined }, undefined, /lat is required/],
    ['invalid_payload', 'trucks', { ...fix, speed_kmh: 'fast' }, undefined, /speed_kmh must be a number/],
    ['invalid_payload', 'bins', { ts: NOW, temp_c: 20 }, undefined, /fill_pct or distance_mm/],
    ['invalid_payload', 'scales', { ...ticket, plate: undefined }, undefined, /plate or truck_device_id/],
    ['invalid_payload', 'scales', { ...ticket, category: 'glass' }, undefined, /category must be one of/],
    ['invalid_payload', 'trucks', 42, undefined, /JSON object/],
    ['out_of_range', 'bins', { ts: NOW, fill_pct: 100.5 }, undefined, /fill_pct must be between 0 and 100/],
    ['out_of_range', 'trucks', { ...fix, speed_kmh: 251 }, undefined, /speed_kmh/],
    ['out_of_range', 'trucks', { ...fix, heading: 360 }, undefined, /heading/],
    ['out_of_range', 'trucks', { ...fix, lon: -181 }, undefined, /lon/],
    ['out_of_range', 'scales', { ...ticket, gross_kg: 100_001, net_kg: 87_301 }, undefined, /gross_kg must be between 0 and 100000 kg/],
    ['invalid_timestamp', 'trucks', { ...fix, ts: '2026-11-01 12:00:00' }, undefined, /offset/],
    ['timestamp_in_future', 'trucks', { ...fix, ts: NOW + 5 * 60_000 + 1 }, undefined, /ahead of the server clock/],
    ['timestamp_too_old', 'trucks', { ...fix, ts: NOW - 7 * 86_400_000 - 1 }, undefined, /h old/],
    ['weights_inconsistent', 'scales', { ...ticket, net_kg: 18_000 }, undefined, /net_kg 18000 != gross_kg 31200 - tare_kg 12700/],
    ['weights_inconsistent', 'scales', { ...ticket, gross_kg: 1000, tare_kg: 2000, net_kg: 0 }, undefined, /net_kg/],
    ['empty_batch', 'trucks', [], undefined, /empty array/],
    ['batch_too_large', 'trucks', Array.from({ length: 1001 }, () => fix), undefined, /1001 readings/],
    ['payload_too_large', 'trucks', { ...fix, pad: 'x'.repeat(262_144) }, undefined, /bytes; at most 262144/],
    // new Date(1e20).toISOString() throws a RangeError: such a ts once cost the whole message.
    ['invalid_timestamp', 'trucks', { ...fix, ts: 1e20 }, undefined, /outside the years 1678-2262/],
    ['invalid_timestamp', 'trucks', { ...fix, ts: -1e20 }, undefined, /outside the years/],
    ['invalid_timestamp', 'trucks', { ...fix, ts: '+275760-09-13T00:00:00+08:00' }, undefined, /not epoch ms or ISO-8601/],
    // A raw newline in a string field could end a line-protocol record inside the string.
    ['invalid_payload', 'scales', { ...ticket, origin: 'C-1\ntruck_position,device_id=T-9 lat=1 1' }, undefined, /origin must not contain control characters/],
    ['invalid_payload', 'scales', { ...ticket, plate: '苏E\r12345' }, undefined, /plate must not contain control characters/],
    ['invalid_payload', 'scales', { ...ticket, ticket_id: 'T\u0000' }, undefined, /control characters/],
    ['invalid_payload', 'scales', { ...ticket, ticket_id: 'T\ud800' }, undefined, /unpaired surrogates/],
  ];
  it.each(cases)('rejects %s (%s %#)', (reason, deviceClass, body, raw, message) => {
    const { readings, rejections } = validate(deviceClass, body, raw);
    expect(readings).toEqual([]);
    expect(rejections).toHaveLength(1);
    expect(rejections[0]!.reason).toBe(reason);
    expect(rejections[0]!.message).toMatch(message);
  });

  it('accepts the edges of every window', () => {
    expect(validate('trucks', { ...fix, ts: NOW + 5 * 60_000 }).readings).toHaveLength(1);
    expect(validate('trucks', { ...fix, ts: NOW - 7 * 86_400_000 }).readings).toHaveLength(1);
    expect(validate('trucks', { ...fix, speed_kmh: 250, heading: 0, lat: -90, lon: 180 }).readings).toHaveLength(1);
    expect(validate('trucks', Array.from({ length: 1000 }, () => fix)).readings).toHaveLength(1000);
  });

  it('refuses a 10,000-deep array in a field on its own, keeping the batch\'s valid readings, with a short message', () => {
    const deep = '['.repeat(10_000) + ']'.repeat(10_000);
    const raw = `[${JSON.stringify(fix)},{"ts":${NOW},"lat":${deep},"lon":120.6,"speed_kmh":1,"heading":1},${JSON.stringify({ ...fix, ts: NOW - 5 })}]`;
    const { readings, rejections, forward } = validate('trucks', null, raw);
    expect(readings.map((r) => r.ts)).toEqual([NOW - 1000, NOW - 5]);
    expect(rejections).toHaveLength(1);
    expect(rejections[0]).toMatchObject({ reason: 'invalid_payload', index: 1 });
    expect(rejections[0]!.message).toBe('lat must be a number, got an array of 1');
    // Subscribers see the two accepted fixes, not the refused one.
    expect(JSON.parse(forward!.toString()).map((f: { ts: number }) => f.ts)).toEqual([NOW - 1000, NOW - 5]);
  });

  it('keeps a partly refused batch\'s valid readings when an ignored field is nested too deep to write again', () => {
    const deep = '['.repeat(20_000) + ']'.repeat(20_000);
    const raw = `[{"ts":${NOW},"lat":31.3,"lon":120.6,"speed_kmh":1,"heading":1,"x":${deep}},${JSON.stringify({ ...fix, lat: 91 })}]`;
    const { readings, rejections, forward } = validate('trucks', null, raw);
    expect(readings.map((r) => r.ts)).toEqual([NOW]);
    expect(rejections).toHaveLength(1);
    expect(forward).toBeNull();
  });

  it('forwards a wholly accepted payload as sent and a wholly refused one not at all', () => {
    const raw = JSON.stringify([fix, fix]);
    expect(validate('trucks', null, raw).forward?.toString()).toBe(raw);
    expect(validate('trucks', [{ ...fix, lat: 91 }]).forward).toBeNull();
  });

  it('quotes at most a short piece of a refused value and names at most five issues', () => {
    const { rejections } = validate('trucks', { ts: 'x'.repeat(10_000), lat: 'a', lon: 'b', speed_kmh: 'c', heading: 'd', ignition: 'e', tipper_up: 'f', cover_closed: 'g' });
    expect(rejections[0]!.message.length).toBeLessThan(400);
    expect(rejections[0]!.message).toMatch(/; and 2 more$/);
  });

  it('reads a status message with the arrival time', () => {
    const topic = topics.status('bins', 'B-1');
    const { readings } = validateMessage(parseDeviceTopic(topic)!, topic, Buffer.from('{"online":false}'), NOW, limits);
    expect(readings).toEqual([{ kind: 'status', deviceId: 'B-1', deviceClass: 'bins', ts: NOW, online: false }]);
  });
});

describe('parseDeviceTopic', () => {
  it('parses the contract topics and nothing else', () => {
    expect(parseDeviceTopic('waste/trucks/T-1/position')).toEqual({ deviceClass: 'trucks', deviceId: 'T-1', channel: 'position' });
    expect(parseDeviceTopic('waste/bins/B-1/status')).toEqual({ deviceClass: 'bins', deviceId: 'B-1', channel: 'status' });
    expect(parseDeviceTopic('waste/bins/B-1/position')).toBeNull();
    expect(parseDeviceTopic('waste/cars/C-1/position')).toBeNull();
    expect(parseDeviceTopic('waste/trucks/T-1/position/extra')).toBeNull();
    expect(parseDeviceTopic('waste/trucks/$bad/position')).toBeNull();
  });
});

describe('validateMessage on arbitrary input', () => {
  // A seeded generator, so a failure can be replayed.
  let seed = 20261122;
  const random = (): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const pick = <T,>(items: T[]): T => items[Math.floor(random() * items.length)]!;
  const value = (depth: number): unknown => {
    const kinds = depth > 3 ? ['number', 'string', 'bool', 'null'] : ['number', 'string', 'bool', 'null', 'array', 'object', 'fix'];
    switch (pick(kinds)) {
      case 'number': return pick([0, -1, Number.POSITIVE_INFINITY, -0, 3.5, NOW, NOW / 1000, 2 ** 53, Number.MAX_VALUE, 359.99, 360]);
      case 'string': return pick(['', 'x', '2026-11-01T12:00:00+08:00', '1e3', '\u0000', '苏E·12345', 'a'.repeat(100), '__proto__']);
      case 'bool': return random() < 0.5;
      case 'null': return null;
      case 'array': return Array.from({ length: Math.floor(random() * 4) }, () => value(depth + 1));
      case 'fix': return { ...fix, [pick(Object.keys(fix))]: value(depth + 1) };
      default: return Object.fromEntries(Array.from({ length: Math.floor(random() * 5) }, () => [pick(['ts', 'lat', 'lon', 'fill_pct', 'gross_kg', 'constructor', '__proto__', 'x']), value(depth + 1)]));
    }
  };

  it('never throws, and accounts for every message as readings or rejections', () => {
    for (let i = 0; i < 3000; i++) {
      const deviceClass = pick<DeviceClass>(['bins', 'trucks', 'scales']);
      const raw = random() < 0.1 ? Buffer.from(Array.from({ length: Math.floor(random() * 64) }, () => Math.floor(random() * 256))).toString('latin1') : undefined;
      const body = value(0);
      const { readings, rejections } = validate(deviceClass, body, raw);
      expect(readings.length + rejections.length).toBeGreaterThan(0);
      for (const reading of readings) expect(Number.isFinite(reading.ts)).toBe(true);
      for (const rejection of rejections) expect(rejection.message.length).toBeGreaterThan(5);
    }
  });
});

import { describe, expect, it } from 'vitest';
import { Point } from '@influxdata/influxdb-client';
import { readingToLine } from '../../../services/ingest/points.ts';

describe('readingToLine', () => {
  it('writes a truck fix as truck_position tagged by device, with ms time and typed fields', () => {
    const line = readingToLine({ kind: 'truck', deviceId: 'T 1', ts: 1714521600123, lat: 31.3, lon: 120.6, speed_kmh: 40, heading: 90, cover_closed: false });
    expect(line).toBe('truck_position,device_id=T\\ 1 cover_closed=F,heading=90,lat=31.3,lon=120.6,speed_kmh=40 1714521600123');
  });

  it('writes integers with the i suffix and skips missing optional fields', () => {
    const line = readingToLine({ kind: 'bin', deviceId: 'B1', ts: 1, fill_pct: 55.5, rssi: -90, lid_opens: 3 });
    expect(line).toBe('bin_level,device_id=B1 fill_pct=55.5,lid_opens=3i,rssi=-90i 1');
  });

  it('escapes string fields (plates in Chinese, quotes) and tags the ticket by category and direction', () => {
    const line = readingToLine({
      kind: 'ticket', deviceId: 'S1', ts: 5, ticket_id: 'A"1', plate: '苏E·12345', gross_kg: 3, tare_kg: 1, net_kg: 2, category: 'kitchen', direction: 'in',
    });
    expect(line).toBe('weigh_ticket,category=kitchen,device_id=S1,direction=in gross_kg=3,net_kg=2,plate="苏E·12345",tare_kg=1,ticket_id="A\\"1" 5');
  });
});

describe('readingToLine against the official client', () => {
  // The official Point builds the same line; it is the reference for escaping and number format.
  const reference = (measurement: string, tags: Record<string, string>, fields: Record<string, number | boolean | string>, ts: number, ints: string[] = []) => {
    const point = new Point(measurement);
    for (const [k, v] of Object.entries(tags)) point.tag(k, v);
    for (const [k, v] of Object.entries(fields)) {
      if (typeof v === 'boolean') point.booleanField(k, v);
      else if (typeof v === 'string') point.stringField(k, v);
      else if (ints.includes(k)) point.intField(k, v);
      else point.floatField(k, v);
    }
    return point.timestamp(ts).toLineProtocol({ convertTime: (t) => String(t) });
  };

  it('writes what Point writes, for awkward ids, strings and numbers', () => {
    const ids = ['T1', 'a b', 'x,y', 'k=v', 'ü-汉字'];
    const strings = ['plain', 'quote"inside', 'back\\slash', '苏E·12345', 'comma, space=eq'];
    const numbers = [0, -0.5, 1e-7, 123456789.123, 31.29891, 1e21];
    ids.forEach((deviceId, i) => {
      const fields = { gross_kg: numbers[i]!, net_kg: numbers[(i + 1) % 6]!, plate: strings[i]!, tare_kg: 0, ticket_id: strings[(i + 2) % 5]! };
      const line = readingToLine({ kind: 'ticket', deviceId, ts: 1714521600000 + i, category: 'other', direction: 'out', ...fields });
      expect(line).toBe(reference('weigh_ticket', { category: 'other', device_id: deviceId, direction: 'out' }, fields, 1714521600000 + i));
      const fix = { cover_closed: i % 2 === 0, heading: 359.5, lat: numbers[i]!, lon: 120.6, speed_kmh: 0 };
      expect(readingToLine({ kind: 'truck', deviceId, ts: 7, ...fix })).toBe(reference('truck_position', { device_id: deviceId }, fix, 7));
      const bin = { fill_pct: 55.5, lid_opens: i, rssi: -90 };
      expect(readingToLine({ kind: 'bin', deviceId, ts: 9, ...bin })).toBe(reference('bin_level', { device_id: deviceId }, bin, 9, ['lid_opens', 'rssi']));
    });
  });
});

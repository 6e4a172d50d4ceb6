// Readings to InfluxDB line protocol, per docs/schema.md. One point per reading, timestamped with
// the device's time in ms and tagged only with identities, so a duplicate delivery overwrites the
// same point instead of counting twice. Escaping is the official client's (Point).
import { Point } from '@influxdata/influxdb-client';
import type { Reading } from '../contract/payloads.ts';

export const MEASUREMENTS = {
  bin: 'bin_level',
  truck: 'truck_position',
  ticket: 'weigh_ticket',
  status: 'device_status',
  ingestStats: 'ingest_stats',
} as const;

/** Line-protocol settings: timestamps are epoch milliseconds (precision=ms on the write). */
const MS = { convertTime: (value: string | number | Date | undefined) => String(value) };

type FieldType = 'float' | 'int' | 'boolean' | 'string';

/** The field types of docs/schema.md. A field keeps its type for ever in InfluxDB. */
const FIELDS = {
  bin: { fill_pct: 'float', distance_mm: 'float', temp_c: 'float', tilt_deg: 'float', battery_v: 'float', rssi: 'int', lid_opens: 'int' },
  truck: { lat: 'float', lon: 'float', speed_kmh: 'float', heading: 'float', load_kg: 'float', ignition: 'boolean', tipper_up: 'boolean', cover_closed: 'boolean' },
  ticket: { ticket_id: 'string', plate: 'string', truck_device_id: 'string', origin: 'string', gross_kg: 'float', tare_kg: 'float', net_kg: 'float' },
} as const satisfies Record<string, Record<string, FieldType>>;

/** Adds the fields a reading carries; absent optional fields are left out. */
function addFields(point: Point, reading: object, fields: Record<string, FieldType>): Point {
  for (const [name, type] of Object.entries(fields)) {
    const value = (reading as Record<string, unknown>)[name];
    if (value === undefined) continue;
    if (type === 'float') point.floatField(name, value);
    else if (type === 'int') point.intField(name, value);
    else if (type === 'boolean') point.booleanField(name, value);
    else point.stringField(name, value);
  }
  return point;
}

export function readingToPoint(reading: Reading): Point {
  switch (reading.kind) {
    case 'bin':
      return addFields(new Point(MEASUREMENTS.bin).tag('device_id', reading.deviceId), reading, FIELDS.bin).timestamp(reading.ts);
    case 'truck':
      return addFields(new Point(MEASUREMENTS.truck).tag('device_id', reading.deviceId), reading, FIELDS.truck).timestamp(reading.ts);
    case 'ticket': {
      const point = new Point(MEASUREMENTS.ticket)
        .tag('device_id', reading.deviceId)
        .tag('category', reading.category)
        .tag('direction', reading.direction);
      return addFields(point, reading, FIELDS.ticket).timestamp(reading.ts);
    }
    case 'status':
      return new Point(MEASUREMENTS.status)
        .tag('device_id', reading.deviceId)
        .tag('device_class', reading.deviceClass)
        .booleanField('online', reading.online)
        .timestamp(reading.ts);
  }
}

export function toLine(point: Point): string {
  const line = point.toLineProtocol(MS);
  if (line === undefined) throw new Error('point without fields');
  return line;
}

export function readingToLine(reading: Reading): string {
  return toLine(readingToPoint(reading));
}

// Readings to InfluxDB line protocol, per docs/schema.md. One point per reading, timestamped with
// the device's time in ms and tagged only with identities, so a duplicate delivery overwrites the
// same point instead of counting twice. Lines are built directly (this runs for every reading, and
// a Point object per reading cost a tenth of the ingest CPU); escaping is contract/line-protocol.ts's,
// which never lets a raw line break into a line.
import { escape } from '../contract/line-protocol.ts';
import type { Reading } from '../contract/payloads.ts';
import { MEASUREMENTS } from '../contract/timeseries.ts';


type FieldType = 'float' | 'int' | 'boolean' | 'string';

/**
 * The field types of docs/schema.md, in line-protocol order. A field keeps its type for ever in
 * InfluxDB. Values were range-checked by the validator, so numbers are finite.
 */
const FIELDS = {
  bin: { battery_pct: 'float', battery_v: 'float', distance_mm: 'float', fill_pct: 'float', lid_opens: 'int', rssi: 'int', temp_c: 'float', tilt_deg: 'float', tilted: 'boolean' },
  truck: { alarm_flags: 'int', cover_closed: 'boolean', heading: 'float', ignition: 'boolean', lat: 'float', load_kg: 'float', loaded: 'boolean', lon: 'float', mileage_km: 'float', satellites: 'int', signal: 'int', speed_kmh: 'float', tachograph_kmh: 'float', tipper_up: 'boolean' },
  ticket: { gross_kg: 'float', net_kg: 'float', origin: 'string', plate: 'string', tare_kg: 'float', ticket_id: 'string', truck_device_id: 'string' },
} as const satisfies Record<string, Record<string, FieldType>>;

function fieldValue(type: FieldType, value: unknown): string {
  switch (type) {
    case 'float':
      return String(value);
    case 'int':
      return `${value as number}i`;
    case 'boolean':
      return value ? 'T' : 'F';
    case 'string':
      return escape.quoted(value as string);
  }
}

/** `measurement,tag=value,... field=value,... ts`; tags are given in sorted key order. */
function line(measurement: string, tags: string, reading: object, fields: Record<string, FieldType>, ts: number): string {
  let text = `${measurement}${tags}`;
  let separator = ' ';
  for (const name in fields) {
    const value = (reading as Record<string, unknown>)[name];
    if (value === undefined) continue;
    text += `${separator}${name}=${fieldValue(fields[name]!, value)}`;
    separator = ',';
  }
  return `${text} ${ts}`;
}

export function readingToLine(reading: Reading): string {
  const device = escape.tag(reading.deviceId);
  switch (reading.kind) {
    case 'bin':
      return line(MEASUREMENTS.bin, `,device_id=${device}`, reading, FIELDS.bin, reading.ts);
    case 'truck':
      return line(MEASUREMENTS.truck, `,device_id=${device}`, reading, FIELDS.truck, reading.ts);
    case 'ticket':
      return line(MEASUREMENTS.ticket, `,category=${escape.tag(reading.category)},device_id=${device},direction=${escape.tag(reading.direction)}`, reading, FIELDS.ticket, reading.ts);
    case 'status':
      return `${MEASUREMENTS.status},device_class=${escape.tag(reading.deviceClass)},device_id=${device} online=${reading.online ? 'T' : 'F'} ${reading.ts}`;
  }
}


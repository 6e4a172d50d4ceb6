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

function addFloats(point: Point, reading: object, names: readonly string[]): void {
  for (const name of names) {
    const value = (reading as Record<string, unknown>)[name];
    if (typeof value === 'number') point.floatField(name, value);
  }
}

function addInts(point: Point, reading: object, names: readonly string[]): void {
  for (const name of names) {
    const value = (reading as Record<string, unknown>)[name];
    if (typeof value === 'number') point.intField(name, value);
  }
}

function addBooleans(point: Point, reading: object, names: readonly string[]): void {
  for (const name of names) {
    const value = (reading as Record<string, unknown>)[name];
    if (typeof value === 'boolean') point.booleanField(name, value);
  }
}

function addStrings(point: Point, reading: object, names: readonly string[]): void {
  for (const name of names) {
    const value = (reading as Record<string, unknown>)[name];
    if (typeof value === 'string') point.stringField(name, value);
  }
}

export function readingToPoint(reading: Reading): Point {
  switch (reading.kind) {
    case 'bin': {
      const point = new Point(MEASUREMENTS.bin).tag('device_id', reading.deviceId);
      addFloats(point, reading, ['fill_pct', 'distance_mm', 'temp_c', 'tilt_deg', 'battery_v']);
      addInts(point, reading, ['rssi', 'lid_opens']);
      return point.timestamp(reading.ts);
    }
    case 'truck': {
      const point = new Point(MEASUREMENTS.truck).tag('device_id', reading.deviceId);
      addFloats(point, reading, ['lat', 'lon', 'speed_kmh', 'heading', 'load_kg']);
      addBooleans(point, reading, ['ignition', 'tipper_up', 'cover_closed']);
      return point.timestamp(reading.ts);
    }
    case 'ticket': {
      const point = new Point(MEASUREMENTS.ticket)
        .tag('device_id', reading.deviceId)
        .tag('category', reading.category)
        .tag('direction', reading.direction);
      addStrings(point, reading, ['ticket_id', 'plate', 'truck_device_id', 'origin']);
      addFloats(point, reading, ['gross_kg', 'tare_kg', 'net_kg']);
      return point.timestamp(reading.ts);
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

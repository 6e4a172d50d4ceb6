// A location report as a truck fix of the MQTT contract (docs/mqtt.md "Truck fix"), so that a
// JT/T 808 truck's fixes are validated, stored and judged exactly as an MQTT truck's are. The
// translation keeps every value the terminal sent that the contract has a field for; the bounds
// are checked afterwards by the pipeline's validation, not here.
import type { ExtensionLayout } from '../config/schema.ts';
import { readExtensions } from './extensions.ts';
import type { LocationReport } from './location.ts';

/** The contract's truck fix (contract/payloads.ts truckFixSchema), as JSON-ready values. */
export type FixPayload = Record<string, number | boolean>;


export function fixOf(report: LocationReport, layout: ExtensionLayout | null): FixPayload {
  const fix: FixPayload = {
    ts: report.ts,
    lat: report.lat,
    lon: report.lon,
    speed_kmh: report.speedKmh,
    heading: report.heading,
    ignition: report.ignition,
    alarm_flags: report.alarm,
  };
  // Status bits 8-9 (table 25): 00 empty, 01 half loaded, 11 fully loaded; 10 is reserved. Only
  // a load is taken as said: terminals without a load sensor leave the bits 00 as well, so "empty"
  // is no more than "not known", and kept as such it would hide a loaded truck's uncovered
  // transport that its weighing tickets show.
  if (report.loadState === 1 || report.loadState === 3) fix.loaded = true;
  if (report.mileageKm !== undefined) fix.mileage_km = report.mileageKm;
  if (report.tachographKmh !== undefined) fix.tachograph_kmh = report.tachographKmh;
  if (report.signal !== undefined) fix.signal = report.signal;
  if (report.satellites !== undefined) fix.satellites = report.satellites;
  Object.assign(fix, readExtensions(report.items, layout));
  return fix;
}

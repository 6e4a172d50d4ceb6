// Sample payloads per device class: valid ones, and one invalid one per rejection reason, named by
// the reason the service must give. Used by the publishing CLI, the tests and the benchmark.
import { DATA_CHANNEL, ROOT, type DeviceClass } from '../services/contract/topics.ts';

export interface Sample {
  /** The topic, relative to the device: 'data' (its data channel), 'status', or an absolute topic. */
  topic: string;
  payload: string | Buffer;
}

let sequence = 0;

export function validReading(deviceClass: DeviceClass, ts: number = Date.now(), deviceId = 'X'): Record<string, unknown> {
  sequence++;
  switch (deviceClass) {
    case 'bins':
      return { ts, fill_pct: 40 + (sequence % 50), temp_c: 21.5, battery_v: 3.6, rssi: -87, lid_opens: sequence % 7 };
    case 'trucks':
      return {
        ts,
        lat: 31.2989 + (sequence % 100) * 1e-4,
        lon: 120.5853 + (sequence % 100) * 1e-4,
        speed_kmh: 35 + (sequence % 20),
        heading: (sequence * 7) % 360,
        ignition: true,
        tipper_up: false,
        cover_closed: true,
        load_kg: 18_500,
      };
    case 'scales':
      return {
        ticket_id: `${deviceId}-${ts}-${sequence}`,
        ts,
        plate: '苏E·12345',
        gross_kg: 31_200,
        tare_kg: 12_700,
        net_kg: 18_500,
        category: 'construction',
        direction: 'out',
      };
  }
}

const INVALID_BUILDERS = {
  invalid_json: () => ({ topic: 'data', payload: `{"ts": ${Date.now()}, "oops"` }),
  invalid_payload: (c: DeviceClass, id: string) => {
    const reading = validReading(c, Date.now(), id);
    delete reading[c === 'bins' ? 'fill_pct' : c === 'trucks' ? 'lat' : 'gross_kg'];
    return { topic: 'data', payload: JSON.stringify(reading) };
  },
  out_of_range: (c: DeviceClass, id: string) => {
    const reading = validReading(c, Date.now(), id);
    if (c === 'bins') reading.fill_pct = 140;
    else if (c === 'trucks') reading.speed_kmh = 400;
    else Object.assign(reading, { gross_kg: 250_000, tare_kg: 12_000, net_kg: 238_000 });
    return { topic: 'data', payload: JSON.stringify(reading) };
  },
  invalid_timestamp: (c: DeviceClass, id: string) => ({ topic: 'data', payload: JSON.stringify({ ...validReading(c, 0, id), ts: '2024-05-01 08:00:00' }) }),
  timestamp_in_future: (c: DeviceClass, id: string) => ({ topic: 'data', payload: JSON.stringify(validReading(c, Date.now() + 3_600_000, id)) }),
  timestamp_too_old: (c: DeviceClass, id: string) => ({ topic: 'data', payload: JSON.stringify(validReading(c, Date.now() - 30 * 86_400_000, id)) }),
  weights_inconsistent: (c: DeviceClass, id: string) => ({ topic: 'data', payload: JSON.stringify({ ...validReading(c, Date.now(), id), net_kg: 9_000 }) }),
  empty_batch: () => ({ topic: 'data', payload: '[]' }),
  batch_too_large: (c: DeviceClass, id: string) => ({
    topic: 'data',
    payload: JSON.stringify(Array.from({ length: 1001 }, (_, i) => validReading(c, Date.now() - i * 1000, id))),
  }),
  payload_too_large: (c: DeviceClass, id: string) => ({
    topic: 'data',
    payload: JSON.stringify({ ...validReading(c, Date.now(), id), padding: 'x'.repeat(300_000) }),
  }),
  unknown_topic: (c: DeviceClass, id: string) => ({ topic: `${ROOT}/${c}/${id}/diagnostics`, payload: '{}' }),
  unauthorised_topic: (c: DeviceClass, id: string) => ({
    topic: `${ROOT}/${c}/${id === 'OTHER-DEVICE' ? 'ANOTHER-DEVICE' : 'OTHER-DEVICE'}/${DATA_CHANNEL[c]}`,
    payload: JSON.stringify(validReading(c, Date.now(), id)),
  }),
} satisfies Record<string, (c: DeviceClass, id: string) => Sample>;

export type InvalidSampleName = keyof typeof INVALID_BUILDERS;
export const INVALID_SAMPLES = Object.keys(INVALID_BUILDERS) as InvalidSampleName[];

/** The invalid samples that apply to a class (only weighbridges have weights to get wrong). */
export function invalidSamplesFor(deviceClass: DeviceClass): InvalidSampleName[] {
  return INVALID_SAMPLES.filter((name) => name !== 'weights_inconsistent' || deviceClass === 'scales');
}

/** An invalid sample, named by the rejection reason the service must give for it. */
export function invalidSample(name: InvalidSampleName, deviceClass: DeviceClass, deviceId: string): Sample {
  return INVALID_BUILDERS[name](deviceClass, deviceId);
}

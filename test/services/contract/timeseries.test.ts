import { describe, expect, it } from 'vitest';
import { MEASUREMENTS, int, line } from '../../../services/contract/timeseries.ts';

describe('line', () => {
  it('sorts tags, leaves out what is missing, marks integers and escapes strings, never with a raw line break', () => {
    const text = line(MEASUREMENTS.truckState, { truck_id: 'T 1', company: 'C,1', fleet: undefined, jurisdiction: '' }, { plate: '苏E"1\n', speed_kmh: 36.5, fix_at: int(1714521600123), moving: true, load_kg: undefined, nan: Number.NaN }, 1714521600123);
    expect(text).toBe('truck_state,company=C\\,1,truck_id=T\\ 1 plate="苏E\\"1\\n",speed_kmh=36.5,fix_at=1714521600123i,moving=true 1714521600123\n');
  });

  it('refuses a point without a field, which InfluxDB would refuse with the whole batch', () => {
    expect(() => line(MEASUREMENTS.alert, { type: 'x' }, { a: undefined, b: Number.POSITIVE_INFINITY }, 1)).toThrow(/needs at least one field/);
  });
});

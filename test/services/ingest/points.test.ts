import { describe, expect, it } from 'vitest';
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

// Plates as typed or read, and which weighing a plate with no weighing named goes to.
import { describe, expect, it } from 'vitest';
import { PlateDesk } from '../../weighbridge/weighing/desk.ts';
import { parsePlate } from '../../weighbridge/weighing/plates.ts';

describe('parsePlate', () => {
  it('accepts plates as printed, typed or read, and keeps them compact', () => {
    expect(parsePlate('苏E·12345')).toEqual({ ok: true, plate: '苏E12345' });
    expect(parsePlate(' 苏e 12345 ')).toEqual({ ok: true, plate: '苏E12345' });
    expect(parsePlate('苏ＡＤ１２３４５')).toEqual({ ok: true, plate: '苏AD12345' });
    expect(parsePlate('苏E1234挂')).toEqual({ ok: true, plate: '苏E1234挂' });
    expect(parsePlate('京A-F0236')).toEqual({ ok: true, plate: '京AF0236' });
  });

  it('refuses what is not a plate, with a reason in Chinese and English', () => {
    for (const bad of ['', 'A12345', '苏12345', '苏E123', '苏E12345678', 'x'.repeat(40), 42, null]) {
      const result = parsePlate(bad);
      expect(result.ok).toBe(false);
      if (!result.ok) expect(result.message).toMatch(/\//);
    }
    expect(parsePlate('_无_')).toMatchObject({ ok: false, message: expect.stringContaining('no plate read') });
  });
});

describe('PlateDesk', () => {
  const WINDOW = 60_000;

  it('gives a plate that comes before the truck to the next truck within the window', () => {
    const desk = new PlateDesk(WINDOW);
    expect(desk.offer('苏E12345', 'camera', 1_000)).toEqual({ to: 'next', until: 61_000 });
    expect(desk.arrived(30_000).plate?.plate).toBe('苏E12345');
    expect(desk.waiting(30_000)).toBeNull();
  });

  it('lets a waiting plate lapse after the window', () => {
    const desk = new PlateDesk(WINDOW);
    desk.offer('苏E12345', 'camera', 1_000);
    expect(desk.arrived(62_000).plate).toBeNull();
  });

  it('gives a plate to the truck on the bridge that has none, weighed or not', () => {
    const desk = new PlateDesk(WINDOW);
    desk.arrived(0);
    expect(desk.offer('苏E12345', 'operator', 1_000)).toEqual({ to: 'pass' });
    const other = new PlateDesk(WINDOW);
    other.arrived(0);
    other.weighed(7);
    expect(other.offer('苏E12345', 'operator', 1_000)).toEqual({ to: 'weighing', weighingId: 7 });
  });

  it('keeps a second plate for the next truck when the one on the bridge has its plate', () => {
    const desk = new PlateDesk(WINDOW);
    desk.offer('苏E11111', 'camera', 0);
    desk.arrived(1_000);
    expect(desk.offer('苏E22222', 'camera', 2_000)).toEqual({ to: 'next', until: 62_000 });
    desk.left(3_000);
    expect(desk.arrived(4_000).plate?.plate).toBe('苏E22222');
  });

  it('does not overwrite a plate the operator set on the weighing of the truck on the bridge', () => {
    const desk = new PlateDesk(WINDOW);
    desk.arrived(0);
    desk.weighed(7);
    desk.plated(7, '苏E11111', 'operator', 1_000);
    expect(desk.offer('苏E22222', 'camera', 2_000)).toEqual({ to: 'next', until: 62_000 });
  });

  it('hands the plate back when its truck drives off before it was weighed', () => {
    const desk = new PlateDesk(WINDOW);
    desk.offer('苏E12345', 'camera', 0);
    desk.arrived(1_000);
    desk.left(5_000);
    expect(desk.arrived(10_000).plate?.plate).toBe('苏E12345');
  });
});

// Plates as typed or read, and which weighing a plate with no weighing named goes to.
import { describe, expect, it } from 'vitest';
import { MAX_WAITING, PlateDesk } from '../../weighbridge/weighing/desk.ts';
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
    // Weighed, its weighing not saved yet (or voided): still this truck's plate, not the next one's.
    const unsaved = new PlateDesk(WINDOW);
    unsaved.arrived(0);
    unsaved.weighed(null);
    expect(unsaved.offer('苏E12345', 'operator', 1_000)).toEqual({ to: 'pass' });
    expect(unsaved.queued(1_000)).toEqual([]);
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

  it('does not hand the plate of a truck that drove off unweighed to the next truck, which may be another', () => {
    const desk = new PlateDesk(WINDOW);
    desk.offer('苏E12345', 'camera', 0);
    desk.arrived(1_000);
    expect(desk.left(5_000)).toMatchObject({ plate: '苏E12345' });
    expect(desk.waiting(5_000)).toBeNull();
    expect(desk.arrived(10_000).plate).toBeNull();
  });

  it('ignores a plate received twice: it is not kept for the next truck, another one', () => {
    // The camera repeats its push, or the operator clicks twice, while the truck is on the bridge.
    const desk = new PlateDesk(WINDOW);
    expect(desk.offer('苏E11111', 'camera', 0)).toMatchObject({ to: 'next' });
    desk.arrived(1_000);
    expect(desk.offer('苏E11111', 'camera', 1_500)).toMatchObject({ to: 'ignored', reason: expect.stringContaining('truck on the bridge') });
    desk.weighed(7);
    expect(desk.offer('苏E11111', 'operator', 2_000)).toMatchObject({ to: 'ignored' });
    // It reads the truck again as it drives off, and once more after it left.
    desk.left(3_000);
    expect(desk.offer('苏E11111', 'camera', 4_000)).toMatchObject({ to: 'ignored', reason: expect.stringContaining('just left') });
    expect(desk.arrived(5_000).plate).toBeNull();
    // Before the truck, twice: one plate waits.
    const before = new PlateDesk(WINDOW);
    before.offer('苏E22222', 'camera', 0);
    expect(before.offer('苏E22222', 'camera', 500)).toMatchObject({ to: 'ignored', reason: expect.stringContaining('waiting') });
    expect(before.queued(500)).toHaveLength(1);
    before.arrived(1_000);
    before.left(2_000);
    expect(before.arrived(3_000).plate).toBeNull();
  });

  it('takes a truck\'s own plate again once it has been gone sameTruckMs: its second weighing', () => {
    const desk = new PlateDesk(WINDOW, 120_000);
    desk.offer('苏E11111', 'camera', 0);
    desk.arrived(1_000);
    desk.weighed(7);
    desk.left(10_000);
    expect(desk.offer('苏E11111', 'camera', 129_000)).toMatchObject({ to: 'ignored' });
    expect(desk.offer('苏E11111', 'camera', 131_000)).toEqual({ to: 'next', until: 191_000 });
    expect(desk.arrived(140_000).plate?.plate).toBe('苏E11111');
    const soon = new PlateDesk(WINDOW, 0);
    soon.offer('苏E11111', 'camera', 0);
    soon.arrived(1_000);
    soon.left(2_000);
    expect(soon.offer('苏E11111', 'camera', 2_001)).toMatchObject({ to: 'next' });
  });

  it('gives waiting plates to the trucks first in, first out, each within its own window', () => {
    const desk = new PlateDesk(WINDOW);
    desk.offer('苏E11111', 'camera', 0);
    expect(desk.offer('苏E22222', 'camera', 10_000)).toEqual({ to: 'next', until: 70_000 });
    desk.offer('苏E33333', 'camera', 20_000);
    expect(desk.queued(20_000).map((h) => h.plate)).toEqual(['苏E11111', '苏E22222', '苏E33333']);
    expect(desk.arrived(30_000).plate?.plate).toBe('苏E11111');
    desk.left(40_000);
    // 苏E22222's window closed at 70 s: the truck at 75 s takes 苏E33333.
    expect(desk.arrived(75_000).plate?.plate).toBe('苏E33333');
    desk.left(76_000);
    expect(desk.arrived(77_000).plate).toBeNull();
  });

  it('refuses more than MAX_WAITING waiting plates, and takes one back', () => {
    const desk = new PlateDesk(WINDOW);
    for (let i = 0; i < MAX_WAITING; i++) expect(desk.offer(`苏E1000${i}`, 'camera', i)).toMatchObject({ to: 'next' });
    expect(desk.offer('苏E99999', 'camera', 100)).toMatchObject({ to: 'refused', reason: expect.stringContaining('waiting') });
    expect(desk.withdraw('苏E10000')).toBe(true);
    expect(desk.withdraw('苏E10000')).toBe(false);
    expect(desk.waiting(200)?.plate).toBe('苏E10001');
    expect(desk.offer('苏E99999', 'camera', 200)).toMatchObject({ to: 'next' });
  });

  it('starts a new pass when the next truck arrives without the bridge emptying', () => {
    const desk = new PlateDesk(WINDOW);
    desk.offer('苏E11111', 'camera', 0);
    desk.arrived(1_000);
    desk.weighed(7);
    desk.offer('苏E22222', 'camera', 2_000);
    expect(desk.arrived(3_000)).toEqual({ plate: { plate: '苏E22222', source: 'camera', until: 62_000 }, weighingId: null, weighed: false });
    // The first truck has left: its plate again is a repeat.
    expect(desk.offer('苏E11111', 'camera', 4_000)).toMatchObject({ to: 'ignored' });
  });
});

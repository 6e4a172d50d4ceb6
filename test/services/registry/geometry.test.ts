import kinks from '@turf/kinks';
import seedrandom from 'seedrandom';
import { describe, expect, it } from 'vitest';
import { GeometryError, checkGeometry, crossingWork, fromWgs84, importGeometry, selfCrossing, toWgs84, type Position } from '../../../services/registry/geometry.ts';

// Published WGS-84 -> GCJ-02 pairs (googollee/eviltransform test suite): [wgsLat, wgsLng, gcjLat, gcjLng].
const PAIRS = [
  [31.1774276, 121.5272106, 31.17530398364597, 121.531541859215], // Shanghai
  [22.543847, 113.912316, 22.540796131694766, 113.9171764808363], // Shenzhen
  [39.911954, 116.377817, 39.91334545536069, 116.38404722455657], // Beijing
] as const;

const point = (lng: number, lat: number) => ({ type: 'Point' as const, coordinates: [lng, lat] as Position });

describe('GCJ-02', () => {
  it('converts the published pairs both ways', () => {
    for (const [wgsLat, wgsLng, gcjLat, gcjLng] of PAIRS) {
      const gcj = fromWgs84(point(wgsLng, wgsLat), 'GCJ-02').coordinates;
      expect(gcj[0]).toBeCloseTo(gcjLng, 9);
      expect(gcj[1]).toBeCloseTo(gcjLat, 9);
      // GCJ-02 has no closed-form inverse; the iterative one is good to well under a metre (1e-6 deg ~ 0.1 m).
      const wgs = toWgs84(point(gcjLng, gcjLat), 'GCJ-02').coordinates;
      expect(Math.abs(wgs[0] - wgsLng)).toBeLessThan(1e-6);
      expect(Math.abs(wgs[1] - wgsLat)).toBeLessThan(1e-6);
    }
  });

  it('converts every vertex of an imported polygon and keeps the ring closed', () => {
    const ring: Position[] = [[120.58, 31.29], [120.6, 31.29], [120.6, 31.31], [120.58, 31.29]];
    const imported = importGeometry({ type: 'Polygon', coordinates: [ring] }, ['Polygon'], 'GCJ-02');
    expect(imported.type).toBe('Polygon');
    const converted = (imported as { coordinates: Position[][] }).coordinates[0]!;
    expect(converted).toHaveLength(4);
    expect(converted[0]).toEqual(converted[3]);
    // Around Suzhou and Shanghai, GCJ-02 sits about 0.0045 deg east and 0.0022 deg south of WGS-84
    // (compare the Shanghai pair above).
    expect(ring[0]![0] - converted[0]![0]).toBeCloseTo(0.0045, 3);
    expect(ring[0]![1] - converted[0]![1]).toBeCloseTo(-0.0022, 3);
  });

  it('leaves WGS-84 input untouched', () => {
    const line = { type: 'LineString' as const, coordinates: [[120.1, 31.1], [120.2, 31.2]] as Position[] };
    expect(importGeometry(line, ['LineString'])).toEqual(line);
  });
});

describe('checkGeometry', () => {
  const refused = (value: unknown, allowed: Parameters<typeof checkGeometry>[1] = ['Polygon', 'LineString', 'Point', 'MultiPolygon']) => {
    try {
      checkGeometry(value, allowed);
    } catch (error) {
      if (error instanceof GeometryError) return { message: error.message, path: error.path };
      throw error;
    }
    return null;
  };

  it('refuses a self-intersecting polygon, naming where', () => {
    const bowtie = { type: 'Polygon', coordinates: [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]] };
    expect(refused(bowtie)).toEqual({ message: 'the polygon crosses itself near [0.5, 0.5]', path: ['coordinates'] });
  });

  it('refuses open and degenerate rings, one-point routes and out-of-range coordinates', () => {
    expect(refused({ type: 'Polygon', coordinates: [[[0, 0], [1, 0], [1, 1]]] })?.message).toMatch(/end where it starts/);
    expect(refused({ type: 'Polygon', coordinates: [[[0, 0], [1, 0], [0, 0]]] })?.message).toMatch(/at least four/);
    expect(refused({ type: 'LineString', coordinates: [[120, 31]] })?.message).toMatch(/two distinct/);
    expect(refused({ type: 'LineString', coordinates: [[120, 31], [120, 31]] })?.message).toMatch(/two distinct/);
    expect(refused({ type: 'Point', coordinates: [31.3, 120.6] })).toEqual({ message: 'latitude 120.6 is outside -90..90 (is it [lon, lat]?)', path: ['coordinates'] });
    expect(refused({ type: 'LineString', coordinates: [[120, 31], [181, 31]] })).toEqual({ message: 'longitude 181 is outside -180..180', path: ['coordinates', 1] });
    expect(refused({ type: 'Polygon', coordinates: [] })?.message).toMatch(/array of rings/);
    expect(refused({ type: 'Circle', coordinates: [0, 0] })?.path).toEqual(['type']);
    expect(refused({ type: 'Point', coordinates: [0, 0] }, ['Polygon'])?.message).toMatch(/must be Polygon/);
    expect(refused(null)?.message).toMatch(/GeoJSON object/);
  });

  it('takes a Feature for its geometry', () => {
    const feature = { type: 'Feature', properties: { name: '平江路' }, geometry: { type: 'LineString', coordinates: [[120.63, 31.31], [120.64, 31.32]] } };
    expect(checkGeometry(feature, ['LineString'])).toEqual(feature.geometry);
  });

  it('accepts valid geometry, dropping foreign members', () => {
    const square = { type: 'Polygon', coordinates: [[[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]], bbox: [0, 0, 1, 1], extra: true };
    expect(checkGeometry(square, ['Polygon'])).toEqual({ type: 'Polygon', coordinates: square.coordinates });
    const multi = { type: 'MultiPolygon', coordinates: [square.coordinates, [[[2, 2], [3, 2], [3, 3], [2, 2]]]] };
    expect(checkGeometry(multi, ['MultiPolygon']).type).toBe('MultiPolygon');
  });
});

describe('a Feature in a Feature', () => {
  it('is refused with the reason, however deep, instead of overflowing the stack', () => {
    let value: unknown = { type: 'Point', coordinates: [120.6, 31.3] };
    for (let i = 0; i < 20_000; i++) value = { type: 'Feature', geometry: value };
    expect(() => checkGeometry(value, ['Point'])).toThrow(GeometryError);
    expect(() => checkGeometry(value, ['Point'])).toThrow(/not another Feature/);
    expect(checkGeometry({ type: 'Feature', geometry: { type: 'Point', coordinates: [120.6, 31.3] } }, ['Point'])).toMatchObject({ type: 'Point' });
  });
});

describe('the cost of a geometry', () => {
  const ring = (n: number, at: (i: number) => Position): Position[] => {
    const corners = Array.from({ length: n }, (_, i) => at(i));
    return [...corners, corners[0]!];
  };
  const circle = (n: number) => ring(n, (i) => [120 + 0.1 * Math.cos((2 * Math.PI * i) / n), 31 + 0.1 * Math.sin((2 * Math.PI * i) / n)]);

  it('refuses more positions than the cap before checking them, counting every ring and polygon', () => {
    const square = [[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]];
    expect(checkGeometry({ type: 'MultiPolygon', coordinates: [[square], [square]] }, ['MultiPolygon'], { maxVertices: 10 }).type).toBe('MultiPolygon');
    expect(() => checkGeometry({ type: 'MultiPolygon', coordinates: [[square], [square, [[0.2, 0.2], [0.4, 0.2], [0.4, 0.4], [0.2, 0.2]]]] }, ['MultiPolygon'], { maxVertices: 10 }))
      .toThrow('the MultiPolygon has 14 positions, more than the 10 accepted (registry.maxGeometryVertices)');
    // Not even looked at: 'x' is no position, but the count alone refuses it.
    expect(() => checkGeometry({ type: 'LineString', coordinates: Array(11).fill('x') }, ['LineString'], { maxVertices: 10 })).toThrow(/has 11 positions/);
  });

  it('checks a drawn boundary of 20,000 positions looking at a few boxes per segment', () => {
    // kinks compared all 200 million pairs (2.2 s).
    expect(checkGeometry({ type: 'Polygon', coordinates: [circle(20_000)] }, ['Polygon']).type).toBe('Polygon');
    expect(crossingWork.visits).toBeLessThan(4 * 20_000);
  });

  it('refuses, within its budget, a shape whose segments all lie across one another', () => {
    // A comb of 2,500 long parallel teeth: simple, but every box overlaps every other.
    const teeth: Position[] = [];
    for (let i = 0; i < 2500; i++) teeth.push([120 + i * 1e-5, 31], [120.1 + i * 1e-5, 31.1]);
    const comb = [...teeth, [120.2, 30.9] as Position, teeth[0]!];
    expect(() => checkGeometry({ type: 'Polygon', coordinates: [comb] }, ['Polygon'])).toThrow('the polygon is too intricate to check for self-crossings');
    expect(crossingWork.visits).toBeLessThanOrEqual(10_000 + 32 * comb.length + 1);
  });

  it('finds the crossings @turf/kinks finds, on random polygons', () => {
    const random = seedrandom('crossings');
    const verdicts = { crossing: 0, simple: 0 };
    for (let trial = 0; trial < 300; trial++) {
      const n = 4 + Math.floor(random() * 12);
      // Half of them corners in random order (mostly crossing), half around a centre by angle
      // (mostly simple; on a grid, with touching and collinear cases).
      const star = (i: number): Position => {
        const angle = ((i + random() * 0.8) / n) * 2 * Math.PI;
        const radius = 3 + random() * 7;
        return [Math.round(10 + radius * Math.cos(angle)), Math.round(10 + radius * Math.sin(angle))];
      };
      const outer = ring(n, trial % 2 === 0 ? star : () => [Math.round(random() * 20), Math.round(random() * 20)]);
      const rings = random() < 0.3 ? [outer, ring(3 + Math.floor(random() * 3), () => [Math.round(random() * 20), Math.round(random() * 20)])] : [outer];
      const expected = kinks({ type: 'Polygon', coordinates: rings }).features.map((f) => f.geometry.coordinates);
      const found = selfCrossing(rings);
      expect(found !== null, JSON.stringify(rings)).toBe(expected.length > 0);
      // One of kinks's points (computed from the other segment of the pair, it may differ in the last bits).
      if (found) expect(expected.some(([x, y]) => Math.abs(x! - found[0]) < 1e-9 && Math.abs(y! - found[1]) < 1e-9), JSON.stringify(rings)).toBe(true);
      verdicts[found ? 'crossing' : 'simple']++;
    }
    // Both kinds were tried.
    expect(Math.min(verdicts.crossing, verdicts.simple)).toBeGreaterThan(20);
  });
});

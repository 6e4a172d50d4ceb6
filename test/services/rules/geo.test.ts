// The route distance the corridor check uses and the distance along the route, against cheap-ruler's
// own pointOnLine over every segment: the same nearest point, wherever the fix is.
import CheapRuler from 'cheap-ruler';
import seedrandom from 'seedrandom';
import { describe, expect, it } from 'vitest';
import { Route, rulerAt, type LonLat } from '../../../services/geo.ts';

function bruteForce(ruler: CheapRuler, line: LonLat[], p: LonLat): number {
  return line.length === 1 ? ruler.distance(p, line[0]!) : ruler.distance(p, ruler.pointOnLine(line, p).point);
}

function alongBruteForce(ruler: CheapRuler, line: LonLat[], p: LonLat): number {
  if (line.length === 1) return 0;
  const { point, index } = ruler.pointOnLine(line, p);
  return ruler.lineDistance(line.slice(0, index + 1)) + ruler.distance(line[index]!, point);
}

describe('route distance', () => {
  it('equals the distance to the nearest point over every segment, and how far along the route it lies, for winding routes of any length', () => {
    const random = seedrandom('routes');
    let checked = 0;
    for (let r = 0; r < 200; r++) {
      const line: LonLat[] = [];
      let [lon, lat] = [120.5 + random() * 0.2, 31.2 + random() * 0.2];
      const vertices = 1 + Math.floor(random() * 300);
      for (let v = 0; v < vertices; v++) {
        line.push([lon, lat]);
        // Now and then a repeated vertex (a zero-length segment), and turns back on itself.
        if (random() < 0.05) continue;
        lon += (random() - 0.3) * 0.003;
        lat += (random() - 0.4) * 0.003;
      }
      const route = new Route({ type: 'LineString', coordinates: line });
      const ruler = rulerAt(line[0]![1]);
      for (let q = 0; q < 100; q++) {
        const near = line[Math.floor(random() * line.length)]!;
        const spread = random() < 0.5 ? 0.0005 : 0.05;
        const p: LonLat = [near[0] + (random() - 0.5) * spread, near[1] + (random() - 0.5) * spread];
        expect(route.distanceTo(p)).toBeCloseTo(bruteForce(ruler, line, p), 6);
        expect(route.alongM(p)).toBeCloseTo(alongBruteForce(ruler, line, p), 3);
        checked++;
      }
    }
    expect(checked).toBe(20_000);
  });

  it('is 0 on the line and the perpendicular distance beside a straight segment', () => {
    const route = new Route({ type: 'LineString', coordinates: [[120.6, 31.3], [120.61, 31.3]] });
    expect(route.distanceTo([120.605, 31.3])).toBeCloseTo(0, 6);
    // 0.001° of latitude at 31.3° N is about 110.9 m.
    expect(route.distanceTo([120.605, 31.301])).toBeCloseTo(rulerAt(31.3).distance([120.605, 31.3], [120.605, 31.301]), 6);
    expect(route.distanceTo([120.605, 31.301])).toBeGreaterThan(110);
    expect(route.distanceTo([120.605, 31.301])).toBeLessThan(112);
  });
});

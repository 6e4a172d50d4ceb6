// The simulated city's road network: a graph of intersections and road segments (not straight
// lines between places), laid as a jittered grid like the ring-and-grid plan of a Chinese city
// district. Routes are shortest paths on it (A* over segment lengths).
import CheapRuler from 'cheap-ruler';
import createGraph, { type Graph } from 'ngraph.graph';
import ngraphPath from 'ngraph.path';
import type { Random } from './random.ts';

export interface RoadNode {
  id: string;
  lon: number;
  lat: number;
  /** Grid position, for laying out places. */
  col: number;
  row: number;
}

export interface RoadNetworkData {
  nodes: RoadNode[];
  /** [from node id, to node id, length in metres]; roads run both ways. */
  edges: [string, string, number][];
}

export interface RoadLayout {
  /** South-west corner of the grid, [lon, lat]. */
  origin: [number, number];
  cols: number;
  rows: number;
  spacingM: number;
}

export class RoadNetwork {
  readonly ruler: CheapRuler;
  private readonly byId: Map<string, RoadNode>;
  private readonly graph: Graph<RoadNode, number>;

  constructor(readonly data: RoadNetworkData) {
    this.byId = new Map(data.nodes.map((n) => [n.id, n]));
    this.ruler = new CheapRuler(data.nodes[0]?.lat ?? 31.3, 'meters');
    this.graph = createGraph<RoadNode, number>();
    for (const node of data.nodes) this.graph.addNode(node.id, node);
    for (const [a, b, length] of data.edges) this.graph.addLink(a, b, length);
  }

  /** A jittered grid: every intersection joined to its neighbours, a few blocks without a road. */
  static generate(random: Random, layout: RoadLayout): RoadNetwork {
    const ruler = new CheapRuler(layout.origin[1], 'meters');
    const nodes: RoadNode[] = [];
    for (let row = 0; row < layout.rows; row++) {
      for (let col = 0; col < layout.cols; col++) {
        const east = col * layout.spacingM + random.between(-0.15, 0.15) * layout.spacingM;
        const north = row * layout.spacingM + random.between(-0.15, 0.15) * layout.spacingM;
        const [lon, lat] = ruler.offset(layout.origin, east, north);
        nodes.push({ id: `n${col}-${row}`, lon: round(lon), lat: round(lat), col, row });
      }
    }
    const at = (col: number, row: number) => nodes[row * layout.cols + col]!;
    const edges: [string, string, number][] = [];
    const join = (a: RoadNode, b: RoadNode) => edges.push([a.id, b.id, Math.round(ruler.distance([a.lon, a.lat], [b.lon, b.lat]))]);
    for (let row = 0; row < layout.rows; row++) {
      for (let col = 0; col < layout.cols; col++) {
        // Every third road is an arterial that always runs through; other segments may be missing.
        const arterialRow = row % 3 === 0;
        const arterialCol = col % 3 === 0;
        if (col + 1 < layout.cols && (arterialRow || random.chance(0.9))) join(at(col, row), at(col + 1, row));
        if (row + 1 < layout.rows && (arterialCol || random.chance(0.9))) join(at(col, row), at(col, row + 1));
      }
    }
    return new RoadNetwork({ nodes, edges });
  }

  node(id: string): RoadNode {
    const node = this.byId.get(id);
    if (!node) throw new Error(`no road node ${id}`);
    return node;
  }

  /** The intersection nearest to a position. */
  nearest(lon: number, lat: number): RoadNode {
    let best = this.data.nodes[0]!;
    let bestDistance = Infinity;
    for (const node of this.data.nodes) {
      const d = this.ruler.distance([lon, lat], [node.lon, node.lat]);
      if (d < bestDistance) {
        best = node;
        bestDistance = d;
      }
    }
    return best;
  }

  /** Whether two intersections are joined by a road segment. */
  adjacent(a: string, b: string): boolean {
    return this.graph.hasLink(a, b) !== undefined || this.graph.hasLink(b, a) !== undefined;
  }

  /** The shortest route along the roads, as intersections from `from` to `to`, avoiding `blocked` ones. */
  route(from: string, to: string, blocked: ReadonlySet<string> = new Set()): RoadNode[] {
    const finder = ngraphPath.aStar(this.graph, {
      blocked: (a, b) => blocked.has(a.id as string) || blocked.has(b.id as string),
      distance: (_a, _b, link) => link.data,
      heuristic: (a, b) => this.ruler.distance([a.data.lon, a.data.lat], [b.data.lon, b.data.lat]),
    });
    // ngraph.path returns the path from the end to the start.
    const path = finder.find(from, to).map((n) => n.data).reverse();
    if (path.length === 0) throw new Error(`no road from ${from} to ${to}`);
    return path;
  }

  lengthM(path: readonly RoadNode[]): number {
    return this.ruler.lineDistance(path.map((n) => [n.lon, n.lat]));
  }
}

/** Positions to 1e-6 degrees (about 0.1 m), so generated files stay readable. */
export function round(value: number): number {
  return Math.round(value * 1e6) / 1e6;
}

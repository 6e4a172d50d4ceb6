// Ground-truth labels: one per violation, as a correct rule set would report it. Written as JSON
// Lines (docs/simulator.md), with times as ISO-8601 strings.
import type { AlertType } from '../../services/contract/alerts.ts';
import type { LonLat } from '../engine/path.ts';
import type { Violation } from './violations.ts';

export interface LabelSubject {
  kind: 'truck' | 'bin';
  id: string;
  device_id: string;
  plate?: string;
}

export interface Label {
  /** Stable: type, subject and start. */
  id: string;
  type: AlertType;
  /** The injected violation that caused it, or "natural" (a bin filling past the line on its own). */
  cause: Violation | 'natural';
  subject: LabelSubject;
  jurisdictions: string[];
  start: number;
  /** null: still going on when the run stopped. */
  end: number | null;
  /** When a rule with the catalogue's defaults (thresholds.ts) has enough evidence to raise it. */
  detectableAt: number;
  location: LonLat | null;
  detail?: Record<string, unknown>;
}

export type LabelSink = (label: Label) => void;

export function makeLabel(fields: Omit<Label, 'id'>): Label {
  return { id: `${fields.type}:${fields.subject.id}:${fields.start}`, ...fields };
}

const iso = (ms: number) => new Date(ms).toISOString();

/** The JSON Lines form of a label. */
export function labelJson(label: Label): string {
  const { start, end, detectableAt, location, ...rest } = label;
  return JSON.stringify({
    ...rest,
    start: iso(start),
    end: end === null ? null : iso(end),
    detectable_at: iso(detectableAt),
    location: location ? { type: 'Point', coordinates: location.map((v) => Math.round(v * 1e6) / 1e6) } : null,
  });
}

export interface LabelRecord {
  id: string;
  type: AlertType;
  cause: string;
  subject: LabelSubject;
  jurisdictions: string[];
  start: string;
  end: string | null;
  detectable_at: string;
  location: { type: 'Point'; coordinates: LonLat } | null;
  detail?: Record<string, unknown>;
}

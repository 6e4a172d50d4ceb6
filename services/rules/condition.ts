// A bin condition that holds on some readings and not others (tilted, hot, battery low). It opens
// at the first reading with the condition and ends at the last one with it, once a reading without
// it comes; each reading while it holds adds to the alert's evidence. A reading that does not carry
// the sensor value (holds === null) changes nothing.
import { binEvidence, reportBin, type BinContext, type Finding } from './types.ts';

export interface ConditionState {
  start: number | null;
  last: number;
}

export function newConditionState(): ConditionState {
  return { start: null, last: 0 };
}

export function condition(ctx: BinContext, state: ConditionState, holds: boolean | null, severity: Finding['severity'], detail: Record<string, unknown> = {}): void {
  if (holds === null) return;
  const { sample } = ctx;
  if (holds) {
    state.start ??= sample.ts;
    state.last = sample.ts;
    reportBin(ctx, { type: ctx.rule, severity, startedAt: state.start, endedAt: null, evidence: [binEvidence(sample)], detail });
  } else if (state.start !== null) {
    reportBin(ctx, { type: ctx.rule, severity, startedAt: state.start, endedAt: state.last, evidence: [] });
    state.start = null;
  }
}

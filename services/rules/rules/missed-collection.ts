// Missed collection: a bin still overflowing rules.missedCollectionH after its overflow was raised.
// It starts at that moment and ends with the overflow.
import { newLevelState, stepLevel, type LevelState } from '../level.ts';
import { binEvidence, reportBin, type BinRule } from '../types.ts';

interface State {
  level: LevelState;
  due: number | null;
}

export const missedCollection: BinRule<State> = {
  type: 'missed_collection',
  initialState: () => ({ level: newLevelState(), due: null }),
  onReading(ctx, state) {
    const change = stepLevel(ctx, state.level);
    if (change === 'raised') state.due = state.level.raisedAt! + ctx.config.missedCollectionH * 3_600_000;
    const due = state.due;
    if (due === null) return;
    if (change === 'cleared' || change === 'emptied') {
      state.due = null;
      if (state.level.last >= due) reportBin(ctx, { type: 'missed_collection', severity: 'warning', startedAt: due, endedAt: state.level.last, evidence: [binEvidence(ctx.sample)] });
    } else if (ctx.sample.ts >= due) {
      reportBin(ctx, {
        type: 'missed_collection',
        severity: 'warning',
        startedAt: due,
        endedAt: null,
        evidence: [binEvidence(ctx.sample)],
        detail: { overflowing_since: new Date(state.level.start).toISOString() },
      });
    }
  },
};

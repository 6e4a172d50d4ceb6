// Overflow: the bin's fill level with hysteresis (level.ts). The alert runs from the first high
// reading to the last reading before the bin was emptied or fell to the clear level.
import { newLevelState, stepLevel, type LevelState } from '../level.ts';
import { binEvidence, reportBin, type BinRule } from '../types.ts';

export const overflow: BinRule<LevelState> = {
  type: 'overflow',
  initialState: newLevelState,
  onReading(ctx, state) {
    const change = stepLevel(ctx, state);
    if (change === 'raised' || change === 'overflowing') {
      // On raising, the reading before is evidence too (the first high one, or the one in between).
      const evidence = change === 'raised' && ctx.previous ? [binEvidence(ctx.previous), binEvidence(ctx.sample)] : [binEvidence(ctx.sample)];
      reportBin(ctx, { type: 'overflow', severity: 'warning', startedAt: state.start, endedAt: null, evidence, detail: { fill_pct: Math.round(ctx.sample.fillPct) } });
    } else if (change === 'cleared' || change === 'emptied') {
      reportBin(ctx, { type: 'overflow', severity: 'warning', startedAt: state.start, endedAt: state.last, evidence: [binEvidence(ctx.sample)], detail: { ended_by: change === 'emptied' ? 'emptying' : 'level' } });
    }
  },
};

// Out-of-window drop-off: lid openings reported for an interval that lies wholly outside the
// community's drop-off windows (定时投放). An interval that overlaps a window raises nothing: the
// openings may all have been inside it. A community without windows allows drop-off at any time.
import { windowIntervals } from '../../contract/local-time.ts';
import { binEvidence, reportBin, type BinRule } from '../types.ts';

export const outOfWindowDropoff: BinRule<null> = {
  type: 'out_of_window_dropoff',
  initialState: () => null,
  onReading(ctx) {
    const { previous, sample, bin } = ctx;
    if (!previous || !sample.lidOpens || bin.dropoffWindows.length === 0) return;
    if (windowIntervals(bin.dropoffWindows, previous.ts, sample.ts).length > 0) return;
    reportBin(ctx, {
      type: 'out_of_window_dropoff',
      severity: 'info',
      startedAt: previous.ts,
      endedAt: sample.ts,
      evidence: [binEvidence(sample)],
      detail: { lid_opens: sample.lidOpens, dropoff_windows: bin.dropoffWindows.map((w) => `${w.from}-${w.to}`) },
    });
  },
};

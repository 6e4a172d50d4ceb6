// Device offline: no reading for rules.offlineIntervals report intervals. Raised while the sensor is
// silent, by the engine's look at every bin (onSilence), and ended by its next reading ("back
// online"); a silence seen only afterwards (a replay, a restart) is raised and ended at once. The
// sensor is taken to have gone silent at the first report that did not come.
import { binEvidence, reportBin, type BinRule } from '../types.ts';

interface State {
  /** Time of the last reading before a silence already raised. */
  raisedAfter: number | null;
}

export const deviceOffline: BinRule<State> = {
  type: 'device_offline',
  initialState: () => ({ raisedAfter: null }),
  onReading(ctx, state) {
    const { previous, sample, intervalMs } = ctx;
    state.raisedAfter = null;
    if (!previous || sample.ts - previous.ts <= ctx.config.offlineIntervals * intervalMs) return;
    reportBin(ctx, {
      type: 'device_offline',
      severity: 'info',
      startedAt: previous.ts + intervalMs,
      endedAt: sample.ts,
      evidence: [binEvidence(previous), binEvidence(sample)],
      detail: { silent_s: Math.round((sample.ts - previous.ts) / 1000), report_interval_s: Math.round(intervalMs / 1000), back_online_at: new Date(sample.ts).toISOString() },
    });
  },
  onSilence(ctx, state) {
    const { last, intervalMs, now } = ctx;
    if (state.raisedAfter === last.ts || now - last.ts <= ctx.config.offlineIntervals * intervalMs) return;
    state.raisedAfter = last.ts;
    reportBin(ctx, {
      type: 'device_offline',
      severity: 'info',
      startedAt: last.ts + intervalMs,
      endedAt: null,
      evidence: [binEvidence(last)],
      detail: { last_reading_at: new Date(last.ts).toISOString(), report_interval_s: Math.round(intervalMs / 1000) },
    });
  },
};

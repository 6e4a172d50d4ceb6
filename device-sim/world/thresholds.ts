// Where a violation begins, as the ground-truth labels see it. These are the defaults of the rule
// catalogue (docs/architecture.md §4); a label's detectable_at is when a rule with these settings has seen
// enough evidence to raise it, so detection delay is measured from there.
export const TRUTH = {
  /** Outside the permit's corridor for this long or this far before it is a deviation. */
  routeGraceS: 60,
  routeGraceM: 300,
  speedLimitKmh: 60,
  /** Over the limit for at least this long. */
  speedingMinS: 30,
  /** Moving loaded with the cover open for at least this long. */
  uncoveredMinS: 60,
  /** A vehicle moves when faster than this. */
  movingKmh: 5,
  /** Disposal-entry net below the site-exit net by at least this fraction. */
  loadLossFraction: 0.1,
  overflowRaisePct: 90,
  overflowClearPct: 70,
  /** Readings at or over the raise level before an overflow is raised. */
  overflowReadings: 2,
  missedCollectionH: 4,
  fireC: 60,
  tiltDeg: 45,
  lowBatteryV: 3.3,
  /** Missing reports before a bin sensor is offline. */
  offlineIntervals: 3,
} as const;

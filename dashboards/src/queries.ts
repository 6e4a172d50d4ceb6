// InfluxQL shared by the dashboards. The state measurements (truck_state, bin_state, open_alerts)
// are snapshots timestamped at multiples of their interval: a panel reads the latest one through
// last() per subject within a window a little longer than the snapshot interval (snapshots.intervalS, 60 s, and snapshots.binIntervalS, 300 s,
// by default: change the windows here if you lengthen those).

/** Window holding the latest truck_state and open_alerts snapshot. */
export const LIVE = 'now() - 3m';
/** Window holding the latest bin_state snapshot. */
export const BINS_LIVE = 'now() - 15m';
/** snapshots.binIntervalS: bin_state points are timestamped at its multiples. */
export const BIN_SNAPSHOT_STEP = '5m';

export const MUCK_TYPES = ['route_deviation', 'illegal_dump', 'uncovered_transport', 'load_loss', 'out_of_hours', 'no_permit', 'speeding', 'overload'];
export const BIN_TYPES = ['overflow', 'missed_collection', 'fire_risk', 'tilt', 'low_battery', 'device_offline', 'out_of_window_dropoff'];

/** `AND "tag" =~ /^$variable$/` for each pair: a variable narrows, its All (.*) lets everything through. */
export function matching(...pairs: [tag: string, variable: string][]): string {
  return pairs.map(([tag, variable]) => ` AND "${tag}" =~ /^$${variable}$/`).join('');
}

export const typeIn = (types: string[]) => ` AND "type" =~ /^(${types.join('|')})$/`;

/** Open alerts now: the latest count per group, summed per the given tags. */
export function openAlerts(filters: string, groupBy: string[] = []): string {
  const inner = `SELECT last("count") AS "open" FROM "open_alerts" WHERE time > ${LIVE}${filters} GROUP BY "type", "jurisdiction", "severity", "status"`;
  return `SELECT sum("open") AS "open" FROM (${inner})${groupBy.length ? ` GROUP BY ${groupBy.map((t) => `"${t}"`).join(', ')}` : ''}`;
}

// Bins and collection: fill map, overflowing bins and for how long, predicted time to full, missed
// collections, offline sensors and batteries.
import { dashboard, DISTRICT, geomap, JURISDICTION, markers, row, table, timeseries } from './grafana.ts';
import { BIN_SNAPSHOT_STEP, BIN_TYPES, BINS_LIVE, matching, typeIn } from './queries.ts';

const inDistrict = matching(['district', 'district']);
/** The latest bin_state of each bin, with the given columns. */
const BIN_TAGS = 'GROUP BY "bin_id", "community", "district"';
const latestBins = (columns: string[]) => `SELECT ${columns.map((c) => `last("${c}") AS "${c}"`).join(', ')} FROM "bin_state" WHERE time > ${BINS_LIVE}${inDistrict} ${BIN_TAGS}`;
/** Those columns of the latest bin_state of each bin meeting the condition, one row per bin. */
const latestBinsWhere = (columns: string[], read: string[], condition: string) => `SELECT ${columns.map((c) => `"${c}"`).join(', ')} FROM (${latestBins(read)}) WHERE ${condition} ${BIN_TAGS}`;
/** Bins meeting a condition per snapshot (one per BIN_SNAPSHOT_STEP), the most in each interval. */
const binsOverTime = (alias: string, condition: string) =>
  `SELECT max("n") AS "${alias}" FROM (SELECT count("fill_pct") AS "n" FROM "bin_state" WHERE $timeFilter AND ${condition}${inDistrict} GROUP BY time(${BIN_SNAPSHOT_STEP})) GROUP BY time($__interval) fill(none)`;

export const bins = dashboard({
  uid: 'waste-bins',
  title: 'Bins and collection',
  description: 'Fill levels on the map, overflowing bins and for how long, predicted time to full, missed collections, offline sensors and batteries.',
  tags: ['bins'],
  from: 'now-24h',
  refresh: '1m',
  variables: [DISTRICT, JURISDICTION],
  annotationFilter: inDistrict + typeIn(BIN_TYPES) + matching(['jurisdiction', 'jurisdiction']),
  panels: [
    row('Now'),
    geomap({
      title: 'Fill level',
      description: 'Latest fill level of every bin that has reported (green below 70 %, orange to 90 %, red from 90 %).',
      queries: [{ query: latestBins(['lat', 'lon', 'fill_pct']), format: 'table' }],
      w: 14,
      h: 14,
      unit: 'percent',
      thresholds: [['green'], ['orange', 70], ['red', 90]],
      layers: [markers('Bins', 'A', { colorField: 'fill_pct', size: 5 })],
    }),
    table({
      title: 'Overflowing now',
      description: 'Bins with an overflow going on, longest first.',
      queries: [{ query: latestBinsWhere(['fill_pct', 'overflow_h', 'overflow_since'], ['overflowing', 'fill_pct', 'overflow_h', 'overflow_since'], '"overflowing" = true'), format: 'table' }],
      w: 10,
      h: 7,
      overrides: [
        { matcher: { id: 'byName', options: 'overflow_h' }, properties: [{ id: 'unit', value: 'h' }, { id: 'decimals', value: 1 }, { id: 'displayName', value: 'overflowing for' }] },
        { matcher: { id: 'byName', options: 'overflow_since' }, properties: [{ id: 'unit', value: 'dateTimeAsLocal' }, { id: 'displayName', value: 'since' }] },
        { matcher: { id: 'byName', options: 'fill_pct' }, properties: [{ id: 'unit', value: 'percent' }] },
      ],
      sortBy: { displayName: 'overflowing for', desc: true },
    }),
    table({
      title: 'Soonest to full',
      description: 'Predicted hours until each filling bin is full, from its readings since the last emptying (GET /api/v1/bins/forecast).',
      queries: [{ query: latestBinsWhere(['hours_to_full', 'fill_pct'], ['hours_to_full', 'fill_pct'], '"hours_to_full" >= 0'), format: 'table' }],
      w: 10,
      h: 7,
      transformations: [{ id: 'sortBy', options: { sort: [{ field: 'hours_to_full', desc: false }] } }, { id: 'limit', options: { limitField: 20 } }],
      overrides: [
        { matcher: { id: 'byName', options: 'hours_to_full' }, properties: [{ id: 'unit', value: 'h' }, { id: 'decimals', value: 1 }, { id: 'displayName', value: 'full in' }] },
        { matcher: { id: 'byName', options: 'fill_pct' }, properties: [{ id: 'unit', value: 'percent' }] },
      ],
    }),
    row('Sensors'),
    table({
      title: 'Offline sensors',
      description: 'Sensors silent for longer than rules.offlineIntervals report intervals.',
      queries: [{ query: latestBinsWhere(['reading_at', 'battery_v'], ['online', 'reading_at', 'battery_v'], '"online" = false'), format: 'table' }],
      w: 12,
      h: 8,
      overrides: [
        { matcher: { id: 'byName', options: 'reading_at' }, properties: [{ id: 'unit', value: 'dateTimeFromNow' }, { id: 'displayName', value: 'last reading' }] },
        { matcher: { id: 'byName', options: 'battery_v' }, properties: [{ id: 'unit', value: 'volt' }] },
      ],
    }),
    table({
      title: 'Lowest batteries',
      queries: [{ query: latestBinsWhere(['battery_v', 'reading_at'], ['battery_v', 'reading_at'], '"battery_v" > 0'), format: 'table' }],
      w: 12,
      h: 8,
      transformations: [{ id: 'sortBy', options: { sort: [{ field: 'battery_v', desc: false }] } }, { id: 'limit', options: { limitField: 20 } }],
      overrides: [
        { matcher: { id: 'byName', options: 'battery_v' }, properties: [{ id: 'unit', value: 'volt' }, { id: 'decimals', value: 2 }, { id: 'custom.cellOptions', value: { type: 'color-text' } }] },
        { matcher: { id: 'byName', options: 'reading_at' }, properties: [{ id: 'unit', value: 'dateTimeFromNow' }, { id: 'displayName', value: 'last reading' }] },
      ],
      thresholds: [['red'], ['orange', 3.3], ['green', 3.5]],
    }),
    row('Over the selected time'),
    timeseries({
      title: 'Overflows and missed collections raised',
      queries: [{ query: `SELECT count("alert_id") FROM "alert" WHERE $timeFilter AND "change" = 'raised' AND "type" =~ /^(overflow|missed_collection)$/${inDistrict} GROUP BY time($__interval), "type" fill(none)`, alias: '$tag_type' }],
      w: 12,
      h: 8,
      bars: true,
      stacked: true,
      interval: '30m',
    }),
    timeseries({
      title: 'Bins overflowing, offline, and with a low battery',
      queries: [
        { query: binsOverTime('overflowing', '"overflowing" = true') },
        { query: binsOverTime('offline', '"online" = false') },
        { query: binsOverTime('battery below 3.3 V', '"battery_v" < 3.3') },
      ],
      w: 12,
      h: 8,
      description: 'From the bin_state snapshots (snapshots.binIntervalS, every 5 minutes by default): the most bins at once in each interval.',
    }),
  ],
});

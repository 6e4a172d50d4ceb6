// Sorting performance: the kitchen-waste separation rate against its targets, household tonnage,
// the 三增一减 trend and the community ranking (docs/bins-and-sorting.md).
import { barGauge, dashboard, DISTRICT, JURISDICTION, row, stat, table, timeseries } from './grafana.ts';
import { matching } from './queries.ts';

const inDistrict = matching(['scope_id', 'district']);
const rateThresholds: [string, number?][] = [['red'], ['orange', 0.25], ['green', 0.3]];
const categories = ['kitchen', 'recyclable', 'hazardous', 'other'];

export const sorting = dashboard({
  uid: 'waste-sorting',
  title: 'Sorting performance',
  description: 'Kitchen-waste separation rate against target per district and community, household tonnage by category, the 三增一减 trend and the ranking.',
  tags: ['sorting'],
  from: 'now-30d',
  refresh: '15m',
  variables: [{ ...DISTRICT, query: 'SHOW TAG VALUES FROM "separation_rate" WITH KEY = "district_id"' }, JURISDICTION],
  annotationFilter: ` AND "type" = 'separation_below_target'${matching(['jurisdiction', 'jurisdiction'])}`,
  panels: [
    row('Separation rate'),
    stat({
      title: 'City, 7 days',
      description: 'Kitchen waste over kitchen + other (or all four, sorting.denominator), the 7 days ending with the latest counted day.',
      queries: [{ query: 'SELECT last("rate") AS "rate", last("target") AS "target" FROM "separation_rate" WHERE $timeFilter AND "scope" = \'city\' AND "window" = \'7d\'' }],
      w: 6,
      h: 8,
      unit: 'percentunit',
      decimals: 1,
      thresholds: rateThresholds,
    }),
    timeseries({
      title: 'Districts, 7-day rate against target',
      queries: [
        { query: `SELECT last("rate") AS "rate" FROM "separation_rate" WHERE $timeFilter AND "scope" = 'district' AND "window" = '7d'${inDistrict} GROUP BY time(1d), "scope_id" fill(none)`, alias: '$tag_scope_id' },
        { query: `SELECT last("target") AS "target" FROM "separation_rate" WHERE $timeFilter AND "scope" = 'district' AND "window" = '7d'${inDistrict} GROUP BY time(1d), "scope_id" fill(none)`, alias: '$tag_scope_id target' },
      ],
      w: 18,
      h: 8,
      unit: 'percentunit',
      min: 0,
      overrides: [{ matcher: { id: 'byRegexp', options: '.* target$' }, properties: [{ id: 'custom.lineStyle', value: { fill: 'dash', dash: [10, 10] } }, { id: 'custom.fillOpacity', value: 0 }] }],
    }),
    timeseries({
      title: 'Communities, daily rate',
      queries: [{ query: `SELECT last("rate") FROM "separation_rate" WHERE $timeFilter AND "scope" = 'community' AND "window" = 'day'${matching(['district_id', 'district'])} GROUP BY time(1d), "scope_id" fill(none)`, alias: '$tag_scope_id' }],
      w: 12,
      h: 9,
      unit: 'percentunit',
      min: 0,
    }),
    barGauge({
      title: 'Ranking: communities by 7-day rate',
      description: 'Latest 7-day separation rate, highest first. GET /api/v1/sorting/rankings ranks by overflow hours and missed collections too, and exports CSV.',
      queries: [{ query: `SELECT last("rate") AS "rate" FROM "separation_rate" WHERE $timeFilter AND "scope" = 'community' AND "window" = '7d'${matching(['district_id', 'district'])} GROUP BY "scope_id"`, alias: '$tag_scope_id' }],
      w: 12,
      h: 9,
      unit: 'percentunit',
      decimals: 1,
      min: 0,
      max: 1,
      thresholds: rateThresholds,
      transformations: [
        { id: 'reduce', options: { reducers: ['lastNotNull'], mode: 'seriesToRows' } },
        { id: 'sortBy', options: { sort: [{ field: 'Last *', desc: true }] } },
      ],
      rows: true,
    }),
    row('Tonnage'),
    timeseries({
      title: 'Household tonnage by category, per day',
      queries: [{ query: `SELECT ${categories.map((c) => `sum("${c}_kg") / 1000 AS "${c}"`).join(', ')} FROM "separation_rate" WHERE $timeFilter AND "scope" = 'district' AND "window" = 'day'${inDistrict} GROUP BY time(1d) fill(none)` }],
      w: 24,
      h: 9,
      unit: 'masst',
      bars: true,
      stacked: true,
    }),
    table({
      title: '三增一减: month over month and year over year',
      description: 'Per month: tonnage per category and its change against the month before (mom) and a year before (yoy). 三增一减 holds when kitchen, recyclable and hazardous waste rise and other waste falls.',
      queries: [
        {
          query: `SELECT ${categories.flatMap((c) => [`"${c}_kg"`, `"${c}_mom"`, `"${c}_yoy"`]).join(', ')}, "three_up_one_down_mom", "three_up_one_down_yoy", "days_counted" FROM "sorting_trend" WHERE time > now() - 400d AND "scope_id" =~ /^(city|$district)$/ GROUP BY "scope", "scope_id"`,
          format: 'table',
        },
      ],
      w: 24,
      h: 9,
      decimals: 1,
      overrides: [
        { matcher: { id: 'byRegexp', options: '_kg$' }, properties: [{ id: 'unit', value: 'masskg' }, { id: 'decimals', value: 0 }] },
        { matcher: { id: 'byRegexp', options: '_(mom|yoy)$' }, properties: [{ id: 'unit', value: 'percentunit' }] },
        { matcher: { id: 'byName', options: 'Time' }, properties: [{ id: 'unit', value: 'time:YYYY-MM' }, { id: 'displayName', value: 'Month' }] },
      ],
      sortBy: { displayName: 'Month', desc: true },
    }),
  ],
});

// Muck-truck enforcement: where the trucks are, what they did, where the roads get dirty, and the
// open cases with links to their evidence.
import { API_URL, barGauge, COMPANY, dashboard, geomap, heatmapLayer, JURISDICTION, markers, row, table, timeseries } from './grafana.ts';
import { LIVE, matching, MUCK_TYPES, typeIn } from './queries.ts';

const filters = matching(['jurisdiction', 'jurisdiction'], ['company', 'company']) + typeIn(MUCK_TYPES);
const raised = `FROM "alert" WHERE $timeFilter AND "change" = 'raised'${filters}`;

/** Each alert's latest change (rows arrive oldest first), without those resolved. */
const openAlertTransformations = [
  {
    id: 'groupBy',
    options: {
      fields: Object.fromEntries([
        ['alert_id', { operation: 'groupby', aggregations: [] }],
        ...['Time', 'status', 'type', 'plate', 'company', 'jurisdiction', 'started_at'].map((f) => [f, { operation: 'aggregate', aggregations: ['last'] }]),
      ]),
    },
  },
  { id: 'filterByValue', options: { type: 'exclude', match: 'any', filters: [{ fieldName: 'status (last)', config: { id: 'equal', options: { value: 'resolved' } } }] } },
  {
    id: 'organize',
    options: {
      indexByName: { 'started_at (last)': 0, 'type (last)': 1, 'plate (last)': 2, 'company (last)': 3, 'jurisdiction (last)': 4, 'status (last)': 5, 'Time (last)': 6, alert_id: 7 },
      renameByName: { 'started_at (last)': 'Started', 'type (last)': 'Type', 'plate (last)': 'Plate', 'company (last)': 'Company', 'jurisdiction (last)': 'Jurisdiction', 'status (last)': 'Status', 'Time (last)': 'Last change', alert_id: 'Alert' },
    },
  },
];

export const muckEnforcement = dashboard({
  uid: 'waste-muck-enforcement',
  title: 'Muck-truck enforcement',
  description: 'Live muck-truck map, violations by type, company and jurisdiction, violation locations, spillage-route hotspots and the open cases.',
  tags: ['enforcement'],
  from: 'now-24h',
  refresh: '1m',
  variables: [JURISDICTION, COMPANY, API_URL],
  annotationFilter: matching(['jurisdiction', 'jurisdiction']) + typeIn(MUCK_TYPES),
  panels: [
    row('Live'),
    geomap({
      title: 'Muck trucks on the road',
      description: 'Latest position of every muck truck with a fix in the last 10 minutes, coloured by speed.',
      queries: [
        {
          query: `SELECT last("lat") AS "lat", last("lon") AS "lon", last("speed_kmh") AS "speed_kmh", last("plate") AS "plate" FROM "truck_state" WHERE time > ${LIVE} AND "fleet" = 'muck'${matching(['jurisdiction', 'jurisdiction'], ['company', 'company'])} GROUP BY "truck_id", "company"`,
          format: 'table',
        },
      ],
      w: 14,
      h: 14,
      unit: 'velocitykmh',
      thresholds: [['blue'], ['green', 5], ['red', 60]],
      layers: [markers('Trucks', 'A', { colorField: 'speed_kmh', size: 6 })],
    }),
    table({
      title: 'Open cases',
      description: 'Muck-truck alerts not yet resolved; the alert id links to the alert and its evidence in the API (with an API token).',
      queries: [{ query: `SELECT "alert_id", "status", "type", "plate", "company", "jurisdiction", "started_at" FROM "alert" WHERE time > now() - 30d${filters}`, format: 'table' }],
      w: 10,
      h: 14,
      transformations: openAlertTransformations,
      overrides: [
        { matcher: { id: 'byName', options: 'Started' }, properties: [{ id: 'unit', value: 'dateTimeAsLocal' }] },
        { matcher: { id: 'byName', options: 'Alert' }, properties: [{ id: 'links', value: [{ title: 'Alert and evidence (API)', url: '${api}/api/v1/alerts/${__value.raw}', targetBlank: true }] }] },
      ],
      sortBy: { displayName: 'Started', desc: true },
    }),
    row('Violations over the selected time'),
    timeseries({ title: 'Violations by type', queries: [{ query: `SELECT count("alert_id") ${raised} GROUP BY time($__interval), "type" fill(none)`, alias: '$tag_type' }], w: 12, h: 8, bars: true, stacked: true, interval: '10m' }),
    barGauge({ title: 'Violations by company', queries: [{ query: `SELECT count("alert_id") ${raised} GROUP BY "company"`, alias: '$tag_company' }], w: 6, h: 8, thresholds: [['orange']] }),
    barGauge({ title: 'Violations by jurisdiction', queries: [{ query: `SELECT count("alert_id") ${raised} GROUP BY "jurisdiction"`, alias: '$tag_jurisdiction' }], w: 6, h: 8, thresholds: [['purple']] }),
    geomap({
      title: 'Where violations started',
      queries: [{ query: `SELECT "lat", "lon", "type", "plate", "alert_id" ${raised}`, format: 'table' }],
      w: 12,
      h: 12,
      layers: [markers('Violations', 'A', { fixedColor: 'red', size: 6 })],
    }),
    geomap({
      title: 'Spillage-route hotspots',
      description: 'Road driven loaded with the cover open, and the routes of trips that lost load, per grid cell (rules.spillageCellM): metres in the selected time.',
      queries: [{ query: 'SELECT sum("metres") AS "metres", last("lat") AS "lat", last("lon") AS "lon" FROM "spillage" WHERE $timeFilter GROUP BY "cell", "kind"', format: 'table' }],
      w: 12,
      h: 12,
      unit: 'lengthm',
      layers: [heatmapLayer('Spillage', 'A', 'metres')],
    }),
    table({
      title: 'Spillage hotspots, worst first',
      queries: [{ query: 'SELECT sum("metres") AS "metres", last("lat") AS "lat", last("lon") AS "lon", count("metres") AS "pieces" FROM "spillage" WHERE $timeFilter GROUP BY "cell", "kind"', format: 'table' }],
      w: 24,
      h: 8,
      unit: 'lengthm',
      decimals: 0,
      sortBy: { displayName: 'metres', desc: true },
      overrides: [{ matcher: { id: 'byRegexp', options: '^(lat|lon)$' }, properties: [{ id: 'unit', value: 'none' }, { id: 'decimals', value: 5 }] }, { matcher: { id: 'byName', options: 'pieces' }, properties: [{ id: 'unit', value: 'none' }] }],
    }),
  ],
});

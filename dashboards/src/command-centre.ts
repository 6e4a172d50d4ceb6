// Command centre: the city at a glance, for the operators' wall.
import { barGauge, COMPANY, dashboard, DISTRICT, JURISDICTION, pie, row, stat, timeseries } from './grafana.ts';
import { BINS_LIVE, LIVE, matching, openAlerts } from './queries.ts';

const inJurisdiction = matching(['jurisdiction', 'jurisdiction']);
const trucksNow = (extra = '') =>
  `SELECT count("speed") FROM (SELECT last("speed_kmh") AS "speed", last("moving") AS "moving" FROM "truck_state" WHERE time > ${LIVE}${matching(['jurisdiction', 'jurisdiction'], ['company', 'company'])} GROUP BY "truck_id")${extra}`;

export const commandCentre = dashboard({
  uid: 'waste-command-centre',
  title: 'Command centre',
  description: 'Open alerts, overflowing bins, trucks on the road, today\'s tonnage and ingest health.',
  tags: ['overview'],
  from: 'now-6h',
  refresh: '30s',
  variables: [JURISDICTION, DISTRICT, COMPANY],
  annotationFilter: inJurisdiction,
  panels: [
    row('Now'),
    stat({ title: 'Open alerts', description: 'Alerts not yet resolved (open or acknowledged). An alert routed to two jurisdictions counts in each.', queries: [{ query: openAlerts(inJurisdiction) }], w: 4, h: 5, thresholds: [['green'], ['orange', 1], ['red', 50]], options: { graphMode: 'none' } }),
    stat({
      title: 'Bins overflowing now',
      queries: [{ query: `SELECT count("overflowing") FROM (SELECT last("overflowing") AS "overflowing" FROM "bin_state" WHERE time > ${BINS_LIVE}${matching(['district', 'district'])} GROUP BY "bin_id") WHERE "overflowing" = true` }],
      w: 4,
      h: 5,
      thresholds: [['green'], ['orange', 1], ['red', 20]],
      options: { graphMode: 'none' },
    }),
    stat({ title: 'Trucks on the road', description: 'Trucks with a fix in the last 10 minutes (snapshots.truckActiveS).', queries: [{ query: trucksNow() }], w: 4, h: 5, options: { graphMode: 'none' } }),
    stat({ title: 'Trucks moving', queries: [{ query: trucksNow(' WHERE "moving" = true') }], w: 4, h: 5, options: { graphMode: 'none' } }),
    stat({
      title: 'Messages/s',
      description: 'Device messages received per second over the last 5 minutes, all instances.',
      queries: [{ query: 'SELECT sum("received") / 300 FROM "ingest_stats" WHERE time > now() - 5m' }],
      w: 4,
      h: 5,
      unit: 'short',
      decimals: 0,
    }),
    stat({
      title: 'Spool backlog',
      description: 'Data received but not yet in InfluxDB: grows while InfluxDB is down or slow, and drains when it is back.',
      queries: [{ query: 'SELECT last("spool_backlog_bytes") FROM "ingest_stats" WHERE $timeFilter' }],
      w: 4,
      h: 5,
      unit: 'bytes',
      thresholds: [['green'], ['orange', 10_000_000], ['red', 500_000_000]],
    }),
    barGauge({ title: 'Open alerts by type', queries: [{ query: openAlerts(inJurisdiction, ['type']), alias: '$tag_type' }], w: 8, h: 9, thresholds: [['blue']] }),
    barGauge({ title: 'Open alerts by jurisdiction', queries: [{ query: openAlerts(inJurisdiction, ['jurisdiction']), alias: '$tag_jurisdiction' }], w: 8, h: 9, thresholds: [['purple']] }),
    pie({
      title: 'Tonnage today by category',
      description: 'Net weight of tickets entering sites (direction in) since local midnight.',
      queries: [{ query: 'SELECT sum("net_kg") / 1000 FROM "weigh_ticket" WHERE $timeFilter AND "direction" = \'in\' GROUP BY "category"', alias: '$tag_category' }],
      w: 8,
      h: 9,
      unit: 'masst',
      decimals: 1,
      timeFrom: 'now/d',
    }),
    row('Over the selected time'),
    timeseries({
      title: 'Alerts raised by type',
      queries: [{ query: `SELECT count("alert_id") FROM "alert" WHERE $timeFilter AND "change" = 'raised'${inJurisdiction} GROUP BY time($__interval), "type" fill(none)`, alias: '$tag_type' }],
      w: 12,
      h: 8,
      bars: true,
      stacked: true,
      interval: '5m',
    }),
    timeseries({
      title: 'Ingest: received, accepted, rejected per second',
      queries: [{ query: 'SELECT sum("received") * 1000 / $__interval_ms AS "received", sum("accepted") * 1000 / $__interval_ms AS "accepted", sum("rejected") * 1000 / $__interval_ms AS "rejected" FROM "ingest_stats" WHERE $timeFilter GROUP BY time($__interval) fill(0)' }],
      w: 12,
      h: 8,
      unit: 'short',
      interval: '10s',
    }),
  ],
});

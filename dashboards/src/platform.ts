// Platform health: what the ingest path is doing (from ingest_stats, one point per instance every
// ingest.statsIntervalMs) and which devices are connected (device_status).
import { dashboard, JURISDICTION, row, stat, timeseries } from './grafana.ts';
import { matching } from './queries.ts';

/** Per-interval counts of ingest_stats turned into a rate per second. */
const perSecond = (field: string, alias: string) => `sum("${field}") * 1000 / $__interval_ms AS "${alias}"`;
/** Each device's latest status over the last 30 days. */
const devicesOnline = (groupBy: string) =>
  `SELECT count("online") AS "online" FROM (SELECT last("online") AS "online" FROM "device_status" WHERE time > now() - 30d GROUP BY "device_id", "device_class") WHERE "online" = true${groupBy}`;

export const platform = dashboard({
  uid: 'waste-platform',
  title: 'Platform health',
  description: 'Messages per second by device class, rejects by reason, spool depth, InfluxDB write latency and devices online.',
  tags: ['platform'],
  from: 'now-6h',
  refresh: '30s',
  variables: [JURISDICTION],
  annotationFilter: matching(['jurisdiction', 'jurisdiction']),
  panels: [
    row('Now'),
    stat({ title: 'Devices online', description: 'Devices whose latest status (MQTT connect, clean disconnect, retained status or will) is online.', queries: [{ query: devicesOnline('') }], w: 6, h: 5, options: { graphMode: 'none' } }),
    stat({ title: 'Devices online by class', queries: [{ query: devicesOnline(' GROUP BY "device_class"'), alias: '$tag_device_class' }], w: 6, h: 5, options: { graphMode: 'none' } }),
    stat({
      title: 'Rejected, last hour',
      description: 'Messages or readings refused (reasons in docs/mqtt.md#rejections); each is published on waste/ingest/rejected.',
      queries: [{ query: 'SELECT sum("rejected") FROM "ingest_stats" WHERE time > now() - 1h' }],
      w: 6,
      h: 5,
      thresholds: [['green'], ['orange', 1], ['red', 1000]],
      options: { graphMode: 'none' },
    }),
    stat({
      title: 'InfluxDB writes',
      description: 'Per service instance: whether its latest writes to InfluxDB succeeded. While they fail, data waits in the spool.',
      queries: [{ query: 'SELECT last("influx_ok") FROM "ingest_stats" WHERE time > now() - 5m GROUP BY "instance"', alias: '$tag_instance' }],
      w: 6,
      h: 5,
      mappings: { true: ['writing', 'green'], false: ['failing', 'red'] },
      options: { graphMode: 'none', colorMode: 'background' },
    }),
    row('Over the selected time'),
    timeseries({
      title: 'Messages/s by device class',
      queries: [{ query: `SELECT ${perSecond('received_trucks', 'trucks')}, ${perSecond('received_bins', 'bins')}, ${perSecond('received_scales', 'scales')} FROM "ingest_stats" WHERE $timeFilter GROUP BY time($__interval) fill(0)` }],
      w: 12,
      h: 8,
      stacked: true,
      interval: '10s',
    }),
    timeseries({
      title: 'Rejects by reason',
      queries: [{ query: 'SELECT sum(/^rejected_/) FROM "ingest_stats" WHERE $timeFilter GROUP BY time($__interval) fill(0)' }],
      w: 12,
      h: 8,
      bars: true,
      stacked: true,
      interval: '1m',
      // sum_rejected_out_of_range → out_of_range
      transformations: [{ id: 'renameByRegex', options: { regex: '.*sum_rejected_(.*)', renamePattern: '$1' } }],
    }),
    timeseries({
      title: 'Spool depth',
      description: 'backlog: received, not yet in InfluxDB. on disk: what spool.quotaBytes limits.',
      queries: [{ query: 'SELECT max("spool_backlog_bytes") AS "backlog", max("spool_used_bytes") AS "on disk" FROM "ingest_stats" WHERE $timeFilter GROUP BY time($__interval) fill(none)' }],
      w: 8,
      h: 8,
      unit: 'bytes',
      interval: '10s',
    }),
    timeseries({
      title: 'InfluxDB write latency',
      description: 'Duration of the latest write of each stats interval (a batch of up to spool.batchLines points).',
      queries: [{ query: 'SELECT mean("write_ms") AS "mean", max("write_ms") AS "max" FROM "ingest_stats" WHERE $timeFilter GROUP BY time($__interval) fill(none)' }],
      w: 8,
      h: 8,
      unit: 'ms',
      interval: '10s',
    }),
    timeseries({
      title: 'Readings accepted/s and points delivered/s',
      queries: [
        { query: `SELECT ${perSecond('accepted', 'accepted')} FROM "ingest_stats" WHERE $timeFilter GROUP BY time($__interval) fill(0)` },
        { query: 'SELECT non_negative_derivative(max("delivered_lines"), 1s) AS "delivered to InfluxDB" FROM "ingest_stats" WHERE $timeFilter GROUP BY time($__interval), "instance" fill(none)' },
      ],
      w: 8,
      h: 8,
      interval: '10s',
    }),
    timeseries({
      title: 'Device connections and disconnections',
      queries: [{ query: 'SELECT count("online") FROM "device_status" WHERE $timeFilter GROUP BY time($__interval), "device_class" fill(none)', alias: '$tag_device_class' }],
      w: 24,
      h: 7,
      bars: true,
      interval: '1m',
    }),
  ],
});

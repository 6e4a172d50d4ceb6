// The one configuration schema. Every key has a default and a description; the README's
// configuration table is generated from this file (`npm run config:table`), and a test keeps the
// two in step. Each service receives only its own slice.
import { isIP } from 'node:net';
import cron from 'node-cron';
import { z } from 'zod';

const port = z.number().int().min(0).max(65535);
const positiveInt = z.number().int().positive();

export const brokerSchema = z
  .object({
    url: z
      .string()
      .default('')
      .describe(
        'External broker URL (e.g. mqtt://mosquitto:1883). Empty: start the embedded aedes broker instead.',
      ),
    host: z.string().default('0.0.0.0').describe('Address the embedded broker listens on.'),
    port: port.default(1883).describe('MQTT over TCP port of the embedded broker.'),
    wsPort: port
      .default(8083)
      .describe('MQTT over WebSocket port of the embedded broker (any path, e.g. ws://host:8083/mqtt). 0 disables it.'),
    devicesFile: z
      .string()
      .default('')
      .describe(
        'A provisioning file (JSON) from before the registry; its devices are taken over into the registry once, then it is renamed. Empty: <dataDir>/devices.json.',
      ),
    maxPacketBytes: positiveInt
      .default(1_048_576)
      .describe(
        'Largest MQTT packet the embedded broker reads; a device sending a larger one is disconnected and the rejection published.',
      ),
    connectTimeoutMs: positiveInt
      .default(10_000)
      .describe('How long a new connection to the embedded broker may take to send its whole CONNECT packet; then it is closed.'),
    loginTimeoutMs: positiveInt
      .default(10_000)
      .describe('How long the embedded broker may take from a CONNECT to its answer (the secret\'s verification included); past it the login is refused with CONNACK 3 (server unavailable) and its verification dropped.'),
    maxPendingLogins: positiveInt
      .default(64)
      .describe('Secret verifications (scrypt, 2 at a time) running or waiting in the embedded broker; a login needing one more is refused with CONNACK 3, so no login waits behind an unbounded queue.'),
    maxPendingLoginsPerSource: positiveInt
      .default(2)
      .describe('Secret verifications running or waiting per username; a login past it is refused with CONNACK 3.'),
    maxPendingLoginsPerAddress: positiveInt
      .default(16)
      .describe('Secret verifications running or waiting per remote address (IPv6: per /64); a login past it is refused with CONNACK 3. More than per username, because the terminals of a fleet behind one carrier NAT share an address and all reconnect when the service restarts.'),
    maxConnectionsPerDevice: positiveInt
      .default(4)
      .describe('Connections one device may have open at once on the embedded broker; when one more logs in, the device\'s oldest connection is closed (it is most likely dead: a terminal that lost its network and came back).'),
    loginFailuresBeforeBackoff: positiveInt
      .default(5)
      .describe('Failed logins in a row a username may have from one remote address before it backs off there: its next logins from that address needing a secret verification are refused with CONNACK 3 for loginBackoffMs, doubling with each failure (from other addresses it is not held back: device ids are not secret). A device whose secret the broker has already verified since it started is never held back.'),
    loginFailuresPerAddressBeforeBackoff: positiveInt
      .default(50)
      .describe('The same per remote address (IPv6: per /64), counting of each username only the failures up to its own loginFailuresBeforeBackoff; higher, because devices behind one NAT share an address. An address backing off is refused only while half of broker.maxPendingLogins is taken; otherwise its failures only put it last when places are given out.'),
    loginBackoffMs: positiveInt.default(1000).describe('First wait of a username or address that has reached its failed logins in a row.'),
    loginBackoffMaxMs: positiveInt
      .default(60_000)
      .describe('Longest wait of a username or address after failed logins; its failures are forgotten this long after its wait ended.'),
  })
  .prefault({});

/** Where in a vendor additional item a flag sits (jt808/extensions.ts). */
const itemBit = z
  .object({
    item: z.number().int().min(0).max(255).describe('Additional item id (JT/T 808-2013 §8.18, table 27; 0xE1-0xFF are left to vendors).'),
    byte: z.number().int().min(0).max(254).default(0).describe('Byte of the item value, from 0.'),
    bit: z.number().int().min(0).max(7).describe('Bit of that byte, 0 the least significant.'),
    setMeans: z.boolean().default(true).describe('What a set bit means: true (cover closed, tipper up) or false (the layout counts the other way).'),
  })
  .strict();

export const extensionLayoutSchema = z
  .object({
    name: z.string().min(1).max(64).describe('Name of the layout, for logs and docs/jt808.md.'),
    models: z.array(z.string().min(1).max(64)).default([]).describe('Terminal models (as provisioned or reported in the 0x0100 registration) that use it; "*" for every terminal without a more specific layout.'),
    source: z.string().default('').describe('Where the layout is documented (a standard clause, a vendor manual, a project file).'),
    coverClosed: itemBit.optional().describe('The bit saying the load cover is closed.'),
    tipperUp: itemBit.optional().describe('The bit saying the tipper (dump body) is raised.'),
    loadKg: z
      .object({
        item: z.number().int().min(0).max(255),
        offset: z.number().int().min(0).max(254).default(0).describe('First byte of the value in the item.'),
        bytes: z.union([z.literal(1), z.literal(2), z.literal(4), z.literal(8)]).describe('Width of the unsigned big-endian value.'),
        kgPerUnit: z.number().positive().describe('Kilograms one unit of the value stands for (0.1 for a value in 1/10 kg).'),
      })
      .strict()
      .optional()
      .describe('Where the load weight is.'),
  })
  .strict();

export const jt808Schema = z
  .object({
    host: z.string().default('0.0.0.0').describe('Address the JT/T 808 gateway listens on.'),
    port: port
      .default(6808)
      .describe('TCP port of the JT/T 808 gateway for truck terminals (docs/jt808.md); the terminal\'s server address and port are its parameters 0x0013 and 0x0018. 0 disables the gateway.'),
    maxFrameBytes: positiveInt
      .default(4096)
      .describe('Largest JT/T 808 frame (escaped, between flags) the gateway reads; a longer one is dropped and reported as frame_too_large. A frame without sub-packages holds at most 1,023 body bytes, about 2,100 escaped.'),
    maxReassemblyBytes: positiveInt
      .default(65_536)
      .describe('Bytes of sub-packages one connection may hold while they are put together; past it the incomplete message is dropped and reported.'),
    loginTimeoutMs: positiveInt
      .default(30_000)
      .describe('How long a new connection may take to authenticate (0x0102) before it is closed.'),
    idleTimeoutMs: positiveInt
      .default(180_000)
      .describe('A connection that sends nothing (not even a heartbeat 0x0002) for this long is closed, and its truck recorded offline. Terminals beat every 60 s by default (parameter 0x0001).'),
    maxConnections: positiveInt
      .default(20_000)
      .describe('Connections the gateway holds at once; one more is closed at once.'),
    maxUnacknowledgedPerConnection: positiveInt
      .default(64)
      .describe('Location reports of one connection waiting to be durable; past it the gateway stops reading that connection until they are (TCP back-pressure: the terminal keeps the rest).'),
    responseTimeoutMs: positiveInt
      .default(10_000)
      .describe('How long a downlink (0x8300 text) waits for the terminal\'s general response 0x0001.'),
    textOnAlert: z
      .boolean()
      .default(false)
      .describe('Send the driver a text message (0x8300, shown on the terminal\'s display) when an alert about the truck is raised.'),
    layouts: z
      .array(extensionLayoutSchema)
      .optional()
      .describe('Where terminal models carry cover, tipper and load weight in vendor additional items (docs/jt808.md "Extension layouts"): a JSON list, in the config file or in the environment variable. Unset (undefined): the layouts shipped in jt808/extensions.ts; set, it replaces them.'),
  })
  .prefault({});

/** One LoRaWAN network server whose MQTT integration the bridge reads (lorawan/bridge.ts, docs/lorawan.md). */
export const networkServerSchema = z
  .object({
    name: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$/, { error: 'must be 1-32 letters, digits, "_", "." or "-"' })
      .describe('Name of the network server in logs, metrics and the default MQTT client id.'),
    kind: z
      .enum(['chirpstack', 'tts'])
      .describe('chirpstack: ChirpStack v4 MQTT integration (JSON events); tts: The Things Stack v3 MQTT server (QoS 0 only).'),
    url: z
      .string()
      .regex(/^(mqtts?|wss?):\/\/[^\s/]+/, { error: 'must be an mqtt://, mqtts://, ws:// or wss:// URL' })
      .describe('The network server\'s MQTT broker, e.g. mqtt://chirpstack-mosquitto:1883 or mqtts://eu1.cloud.thethings.network:8883.'),
    username: z.string().default('').describe('MQTT username (The Things Stack: {application id}@{tenant id}).'),
    password: z.string().default('').describe('MQTT password (The Things Stack: an API key with the right to read application traffic).'),
    clientId: z.string().max(64).default('').describe('Stable MQTT client id of the persistent session; empty: waste-lorawan-{name}.'),
    topics: z
      .array(z.string().min(1).max(256))
      .optional()
      .describe('Subscriptions; unset: every application\'s up, join and status events (chirpstack: application/+/device/+/event/{up,join,status}; tts: v3/+/devices/+/{up,join}).'),
  })
  .strict();

export const lorawanSchema = z
  .object({
    networkServers: z
      .array(networkServerSchema)
      .default([])
      .refine((servers) => new Set(servers.map((s) => s.name)).size === servers.length, { error: 'every network server needs its own name' })
      .describe('LoRaWAN network servers to read bin-sensor uplinks from (docs/lorawan.md): a JSON list of {name, kind, url, username, password}. Empty: no LoRaWAN bridge.'),
    maxEventBytes: positiveInt
      .default(65_536)
      .describe('Largest network-server event read; a longer one is refused as payload_too_large (an uplink with a few gateways\' metadata is 1-3 KB).'),
    duplicateMemory: positiveInt
      .max(1024)
      .default(64)
      .describe('Uplinks remembered per sensor to know one delivered again (two gateways, a re-delivery) as the same uplink.'),
  })
  .prefault({});

export const ingestSchema = z
  .object({
    clientId: z
      .string()
      .default('waste-ingest-1')
      .describe('Stable MQTT client id of the ingest worker (external broker mode; persistent session).'),
    username: z
      .string()
      .default('waste-ingest')
      .describe('Username of the ingest worker on the external broker.'),
    password: z
      .string()
      .default('')
      .describe('Password of the ingest worker on the external broker. Set it through WASTE_INGEST_PASSWORD.'),
    maxPayloadBytes: positiveInt
      .default(262_144)
      .describe('Largest accepted payload in bytes; larger messages are rejected as payload_too_large.'),
    maxBatchItems: positiveInt
      .default(1000)
      .describe('Most readings accepted in one array payload (back-fill); more is rejected as batch_too_large.'),
    maxAgeMs: positiveInt
      .default(7 * 24 * 3600 * 1000)
      .describe('Oldest accepted reading, in ms before now; older ones are rejected as timestamp_too_old.'),
    maxFutureMs: positiveInt
      .default(5 * 60 * 1000)
      .describe('Furthest accepted reading in the future, in ms; later ones are rejected as timestamp_in_future.'),
    netToleranceKg: z
      .number()
      .nonnegative()
      .default(20)
      .describe('Allowed difference between a ticket\'s net_kg and gross_kg - tare_kg (one weighbridge division).'),
    statsIntervalMs: positiveInt
      .default(10_000)
      .describe('How often ingest counters are written to the ingest_stats measurement and logged.'),
  })
  .prefault({});

export const influxSchema = z
  .object({
    url: z.string().url().default('http://127.0.0.1:8086').describe('InfluxDB base URL (1.x, 2.x or 3.x; detected).'),
    token: z
      .string()
      .default('')
      .describe('API token for InfluxDB 2.x/3.x, or "user:password" for 1.x with auth. Set it through WASTE_INFLUX_TOKEN.'),
    org: z.string().default('waste').describe('Organisation (InfluxDB 2.x only).'),
    database: z
      .string()
      .default('waste')
      .describe('Database (1.x, 3.x) or bucket (2.x). Created on 1.x if missing.'),
    retentionPolicy: z.string().default('').describe('Retention policy on 1.x; empty means the database default.'),
    timeoutMs: positiveInt.default(10_000).describe('HTTP timeout of one InfluxDB request.'),
    startPrivate: z
      .boolean()
      .default(true)
      .describe(
        'If nothing answers at a loopback url and influxd is on the PATH, start a private influxd under <dataDir>/influxdb.',
      ),
  })
  .prefault({});

export const registrySchema = z
  .object({
    file: z.string().default('').describe('Registry database (SQLite). Empty: <dataDir>/registry.db.'),
    // A city the size of Suzhou (about 100,000 bins, 10,000 trucks, their sensors, 3,000
    // communities) is about 150,000 items and 30 MB of compact JSON: the defaults take it with room
    // for pretty-printing, and refuse what only an attacker or a mistake would send.
    importMaxBytes: positiveInt
      .default(64 * 1024 ** 2)
      .describe('Largest registry bundle one import takes, in bytes (POST /api/v1/import answers 413 past it, the CLI refuses the file); a larger registry is imported in several bundles.'),
    importMaxItems: positiveInt
      .default(200_000)
      .describe('Most items (devices and entities together) in one registry bundle; one with more is refused whole (413) before any is checked.'),
    importMaxProblems: positiveInt
      .default(100)
      .describe('Problems listed when a bundle is refused: the first ones found, with the count of all of them.'),
    maxGeometryVertices: positiveInt
      .default(10_000)
      .describe('Most positions in one geometry (a polygon with its holes, a multipolygon, a route) accepted by the API and imports; more is refused (400) with the count. Simplify such shapes before importing.'),
  })
  .prefault({});

export const apiSchema = z
  .object({
    host: z.string().default('0.0.0.0').describe('Address the HTTP API listens on.'),
    port: port.default(8080).describe('Port of the HTTP API (/api/v1, OpenAPI at /docs). 0 disables the API.'),
    rateLimitPerMinute: positiveInt.default(600).describe('Requests per minute allowed per API token (per address without one).'),
    authFailuresPerMinute: positiveInt
      .default(20)
      .describe('Requests with an unknown or revoked token allowed per client address (IPv6: per /64) and minute; past it the address gets 429 with Retry-After until the minute is over, whatever token it sends. Other addresses are not affected.'),
    requestTimeoutMs: positiveInt
      .default(120_000)
      .describe('Longest time a client may take to send one whole request, headers and body (a 64 MiB registry import over a slow link included); a slower one is cut off.'),
    connectionTimeoutMs: positiveInt
      .default(600_000)
      .describe('A connection on which nothing moves for this long is closed, such as an event stream its client stopped reading (streams send a comment every 15 s). Longer than the slowest answer (a recount of many days).'),
    keepAliveTimeoutMs: positiveInt.default(5000).describe('How long an idle kept-alive connection stays open for the next request.'),
    bodyLimitBytes: positiveInt
      .default(1_048_576)
      .describe('Largest request body accepted (413 beyond it); POST /api/v1/import takes registry bundles up to 64 MiB.'),
    stopGraceMs: positiveInt
      .default(2000)
      .describe('At stop, how long requests in progress may take to finish before their connections are closed; event streams end at once and idle connections close at once.'),
  })
  .prefault({});

export const spoolSchema = z
  .object({
    dir: z.string().default('').describe('Spool directory. Empty: <dataDir>/spool.'),
    quotaBytes: positiveInt
      .default(1024 ** 3)
      .describe('Disk quota of the spool. When full, the broker refuses new data (devices keep it) and says so.'),
    segmentBytes: positiveInt.default(16 * 1024 ** 2).describe('Size at which a spool segment file is closed (at most an eighth of spool.quotaBytes is used, whatever is set).'),
    fsync: z
      .boolean()
      .default(true)
      .describe('fdatasync each group commit before acknowledging. Turning it off trades durability on power loss for speed.'),
    batchLines: positiveInt.default(5000).describe('Most lines sent to InfluxDB in one write.'),
    lingerMs: z
      .number()
      .int()
      .min(0)
      .default(100)
      .describe('After a write of fewer than batchLines, how long the shipper lets lines gather before the next one: fewer, larger writes while traffic is light.'),
    retryMinMs: positiveInt.default(500).describe('First retry delay after a failed InfluxDB write.'),
    retryMaxMs: positiveInt.default(30_000).describe('Longest retry delay after repeated failed InfluxDB writes.'),
  })
  .prefault({});

const seconds = (value: number) => positiveInt.default(value);
const percent = (value: number) => z.number().min(0).max(100).default(value);

export const rulesSchema = z
  .object({
    enabled: z.boolean().default(true).describe('Run the rules engine on incoming telemetry (alerts need it).'),
    movingKmh: z.number().nonnegative().default(5).describe('A truck moves when its GPS speed is above this (km/h).'),
    routeGraceS: seconds(60).describe('Seconds outside the permit corridor before a route deviation is raised.'),
    routeGraceM: seconds(300).describe('Or metres driven outside the corridor, whichever comes first.'),
    speedLimitKmh: z.number().positive().default(60).describe('Speed limit for muck trucks outside any speed zone (km/h).'),
    speedZonesFile: z
      .string()
      .default('')
      .describe('GeoJSON FeatureCollection of speed zones (Polygon features with a numeric properties.limit_kmh); inside one, its limit applies. Empty: one limit everywhere.'),
    speedingMinS: seconds(30).describe('Seconds over the limit before speeding is raised.'),
    uncoveredMinS: seconds(60).describe('Seconds moving loaded with the cover open before uncovered transport is raised.'),
    loadedKg: z.number().nonnegative().default(500).describe('A truck whose load sensor reads more than this is loaded (without a load sensor: between its site-exit and disposal tickets).'),
    dumpDropKg: z.number().positive().default(2000).describe('A load drop of at least this much while stopped counts as tipping.'),
    boundaryToleranceM: z
      .number()
      .nonnegative()
      .default(100)
      .describe('A violation this close to a jurisdiction\'s boundary is sent to the jurisdiction across it too (GPS error, and the road driven between two fixes).'),
    siteToleranceM: z.number().nonnegative().default(30).describe('Tipping within this distance of a disposal site counts as inside it (GPS error).'),
    loadLossFraction: z.number().positive().max(1).default(0.1).describe('Load loss: disposal-entry net below the site-exit net by at least this fraction.'),
    maxTripH: seconds(12).describe('Longest trip between a site-exit and a disposal-entry ticket that are compared.'),
    ticketSettleS: seconds(120)
      .describe('Load loss is judged this long after the disposal ticket arrives, so that a site-exit ticket delivered late pairs with the right trip.'),
    overloadToleranceKg: z.number().nonnegative().default(20).describe('Ticket gross above the truck\'s rated gross by more than this is an overload (one weighbridge division).'),
    endAfterFixes: seconds(2).describe('Consecutive fixes without the condition that end a raised violation (one stray fix does not).'),
    maxGapS: seconds(300).describe('A gap between fixes longer than this splits a violation in two.'),
    outlierKmh: z.number().positive().default(180).describe('A fix implying a faster jump from the previous one is an outlier and ignored by the rules.'),
    reorderWindowS: seconds(900).describe('How late (event time) a fix may arrive and still be judged in order with the others; later ones are stored but not judged.'),
    rebuildWindowS: seconds(900).describe('At start, the rules replay this much of the latest truck history from InfluxDB to pick up violations in progress.'),
    evidenceMax: seconds(40).describe('Most fixes kept as a violation\'s evidence: the first five and the latest.'),
    spillageCellM: seconds(200).describe('Size of the grid cells spillage routes are aggregated in (metres).'),
    binReorderWindowS: seconds(7200).describe('How late (event time) a bin reading may arrive and still be judged in order with the others (bins report every 5-60 min).'),
    binReportIntervalS: seconds(3600).describe('Report interval assumed for a bin sensor until its first readings show its own (the median of its latest gaps).'),
    overflowRaisePct: percent(90).describe('Overflow is raised at this fill level (%) or above, seen on overflowReadings readings.'),
    overflowReadings: seconds(2).describe('Readings at or above overflowRaisePct, since the bin was last at or below overflowClearPct, that raise an overflow (one bag in front of the sensor raises nothing).'),
    overflowClearPct: percent(70).describe('An overflow clears at this fill level (%) or below, or on an emptying.'),
    emptyingDropPct: percent(30).describe('A fall in fill level of at least this many points from one reading to the next is an emptying (a collection).'),
    missedCollectionH: seconds(4).describe('A bin overflowing this many hours after its overflow was raised is a missed collection.'),
    fireC: z.number().default(60).describe('Fire risk: a bin temperature above this (°C).'),
    fireRiseC: z.number().positive().default(15).describe('Fire risk too: a temperature rising by at least this many °C within fireRiseWindowS.'),
    fireRiseWindowS: seconds(1800).describe('Window of the fast temperature rise that is a fire risk (seconds).'),
    tiltDeg: z.number().positive().max(180).default(45).describe('A bin tilted more than this (degrees) has been knocked over.'),
    lowBatteryV: z.number().positive().default(3.3).describe('A sensor battery below this voltage is low.'),
    batteryRecoveredV: z.number().positive().default(3.4).describe('A low battery clears only at this voltage or above (a new battery), so a voltage wavering at the threshold is one alert.'),
    lowBatteryPct: percent(20).describe('A sensor reporting its battery in percent (battery_pct, most LoRaWAN sensors) is low below this.'),
    batteryRecoveredPct: percent(30).describe('A low battery reported in percent clears only at this level or above.'),
    offlineIntervals: seconds(3).describe('A bin sensor is offline after this many report intervals without a reading.'),
    binRebuildWindowS: seconds(6 * 3600).describe('At start, the rules replay this much of the latest bin history from InfluxDB (an overflow in progress, and its missed collection).'),
    // Bounded: a timer longer than 2^31 ms is fired by Node every millisecond instead.
    elsewhereCheckS: positiveInt.max(3600).default(10).describe('With the registry on PostgreSQL (several ingest processes), how often InfluxDB is asked which devices report through another process, whose silence here is then no outage (at most 3600). Keep it well below offlineIntervals times the shortest report interval.'),
    forecastWindowH: seconds(24).describe('Predicted time to full: the fill rate is fitted over the readings since the last emptying, at most this many hours back.'),
  })
  .prefault({});

export const alertsSchema = z
  .object({
    mergeGapS: seconds(300).describe('A violation starting within this long after the previous one of the same truck and type ended reopens that alert instead of raising a new one.'),
    tripMergeGapS: seconds(1800).describe('The same for out-of-hours and no-permit haulage, whose trips stop to load and weigh: stops this short do not split the case.'),
    webhookTimeoutMs: seconds(10_000).describe('HTTP timeout of one webhook delivery.'),
    webhookRetryMinMs: seconds(1000).describe('First retry delay of a failed webhook delivery; doubles on each failure.'),
    webhookRetryMaxMs: seconds(60_000).describe('Longest delay between webhook retries.'),
    webhookGiveUpH: seconds(72).describe('Hours after which an undeliverable webhook message is given up (logged and kept as failed).'),
    webhookAllowTargets: z
      .string()
      .default('')
      .refine((text) => parseAllowTargets(text) !== null, { error: 'must be a comma-separated list of host names, IP addresses and CIDR ranges, e.g. "cases.bureau.local,10.20.0.0/16"' })
      .describe('Webhook targets allowed although they are not public: host names (as written in the webhook URL), IP addresses and CIDR ranges, comma-separated, e.g. "cases.bureau.local,10.20.0.0/16". Empty: webhooks reach public addresses only (never loopback, private, link-local, multicast or this service\'s own ports).'),
  })
  .prefault({});

const rate = z.number().min(0).max(1);

export const sortingSchema = z
  .object({
    schedule: z
      .string()
      .default('5 * * * *')
      .refine((expression) => cron.validate(expression), { error: 'must be a cron expression (minute hour day month weekday)' })
      .describe('When the separation-rate job runs (cron, China Standard Time): it computes yesterday and today so far.'),
    denominator: z
      .enum(['kitchen_other', 'all_four'])
      .default('kitchen_other')
      .describe('Separation rate formula: kitchen / (kitchen + other), or kitchen / all four household categories.'),
    targetRate: rate.default(0.3).describe('Target kitchen-waste separation rate (0-1) for every scope without its own.'),
    targets: z
      .string()
      .default('')
      .refine((text) => parseTargets(text) !== null, { error: 'must be "scope:id=rate,..." with scope city, district or community and rate 0-1' })
      .describe('Targets per scope, e.g. "district:D-1=0.35,community:CM-7=0.4,city=0.32".'),
    lateTicketSettleS: seconds(60).describe('A ticket for a past day triggers its recomputation this long after the last such ticket (they come in batches).'),
  })
  .prefault({});

export const snapshotsSchema = z
  .object({
    intervalS: seconds(60).describe('How often the state of trucks on the road and the open-alert counts are written to InfluxDB (truck_state, open_alerts) for the dashboards.'),
    binIntervalS: seconds(300).describe('How often the state of every bin (fill, overflow, forecast, battery, online) is written to InfluxDB (bin_state).'),
    truckActiveS: seconds(600).describe('A truck is on the road while its latest fix is at most this old; only those are in truck_state.'),
  })
  .prefault({});

export const metricsSchema = z
  .object({
    public: z.boolean().default(false).describe('Serve /metrics (Prometheus text format) without a token. Otherwise a scraper sends an admin or operator API token as a bearer token.'),
  })
  .prefault({});

/** The entries of alerts.webhookAllowTargets, split into host names and CIDR ranges; null when one is malformed. */
export function parseAllowTargets(text: string): { names: Set<string>; ranges: { address: string; prefix: number; family: 4 | 6 }[] } | null {
  const names = new Set<string>();
  const ranges: { address: string; prefix: number; family: 4 | 6 }[] = [];
  for (const entry of text.split(',').map((e) => e.trim()).filter(Boolean)) {
    const [base = '', bits, ...rest] = entry.replace(/^\[(.*)\]$/, '$1').split('/');
    const family = isIP(base);
    if (family === 4 || family === 6) {
      const max = family === 4 ? 32 : 128;
      const prefix = bits === undefined ? max : /^\d{1,3}$/.test(bits) ? Number(bits) : Number.NaN;
      if (rest.length > 0 || !(prefix >= 0 && prefix <= max)) return null;
      ranges.push({ address: base, prefix, family });
    } else if (bits === undefined && /^(?=.{1,253}$)[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*\.?$/i.test(entry)) {
      names.add(entry.toLowerCase().replace(/\.$/, ''));
    } else {
      return null;
    }
  }
  return { names, ranges };
}

/** The per-scope targets of sorting.targets, keyed "scope:id" ("city" for the city); null when malformed. */
export function parseTargets(text: string): Map<string, number> | null {
  const targets = new Map<string, number>();
  for (const part of text.split(',').map((p) => p.trim()).filter(Boolean)) {
    const match = /^(city|(?:district|community):[A-Za-z0-9][A-Za-z0-9_.:-]*)=(0|1|0?\.\d+|1\.0+)$/.exec(part);
    if (!match) return null;
    targets.set(match[1]!, Number(match[2]));
  }
  return targets;
}

export const databaseSchema = z
  .object({
    url: z
      .string()
      .default('')
      .refine((url) => url === '' || /^postgres(ql)?:\/\/[^\s]+$/i.test(url), { error: 'must be empty (SQLite at registry.file) or a postgres:// URL' })
      .describe(
        'PostgreSQL 13+ for the registry, tokens, alerts and sorting tonnage, shared by every process of the service (postgres://USER:PASSWORD@HOST:PORT/DATABASE). Empty: SQLite at registry.file, for one process.',
      ),
    statementTimeoutMs: z.number().int().min(100).default(10_000).describe('A statement running longer is cancelled by PostgreSQL (statement_timeout); the call fails instead of holding the process.'),
    connectTimeoutMs: z.number().int().min(100).default(5_000).describe('Longest wait for a connection to PostgreSQL.'),
  })
  .prefault({});

/** What one process may run (docs/deployment.md). */
export const ROLES = ['api', 'ingest', 'scheduler'] as const;
export type Role = (typeof ROLES)[number];

/** `all`, or a comma-separated list of roles, as the set of roles. */
export function parseRoles(value: string): Set<Role> {
  const parts = value.split(',').map((part) => part.trim().toLowerCase());
  if (parts.includes('all')) return new Set(ROLES);
  return new Set(parts as Role[]);
}

export const schedulerSchema = z
  .object({
    leaseCheckMs: z
      .number()
      .int()
      .min(100)
      .max(60_000)
      .default(1000)
      .describe('How often a standby scheduler tries to take over (and the active one checks it still holds the lease): a scheduler that dies is replaced within about this long.'),
  })
  .prefault({});

export const rabbitmqSchema = z
  .object({
    authBackend: z
      .boolean()
      .default(false)
      .describe('Serve RabbitMQ\'s HTTP authentication backend at /broker/rabbitmq/{user,vhost,resource,topic} (api role), so a RabbitMQ cluster as the device broker logs devices in from the registry (docs/scale-out.md).'),
    authAllowFrom: z
      .array(z.string().min(2).max(50))
      .default(['127.0.0.1', '::1'])
      .describe('Addresses or subnets (CIDR) of the RabbitMQ nodes, the only ones answered at /broker/rabbitmq (a JSON list); others get 403.'),
    vhost: z.string().min(1).default('/').describe('RabbitMQ virtual host of the devices (its mqtt.vhost).'),
    exchange: z.string().min(1).default('amq.topic').describe('Exchange the RabbitMQ MQTT plugin publishes to (its mqtt.exchange).'),
    amqpUrls: z
      .array(z.string().regex(/^amqps?:\/\/[^\s]+$/, { error: 'must be an amqp:// or amqps:// URL' }))
      .default([])
      .describe('AMQP URLs of the RabbitMQ nodes (a JSON list, e.g. ["amqp://waste-worker:SECRET@rabbit-1:5672"]), tried in turn: the ingest role then consumes the device partitions there instead of running a broker (docs/scale-out.md). Empty: no RabbitMQ.'),
    partitions: z
      .number()
      .int()
      .min(1)
      .max(1000)
      .default(64)
      .describe('Device partitions (quorum queues) the consistent-hash exchange spreads devices over: fixed for the life of the cluster, since devices map to partitions by it.'),
    prefetch: positiveInt.default(500).describe('Deliveries not yet acknowledged per partition a worker consumes.'),
    managementUrl: z
      .string()
      .default('')
      .refine((url) => url === '' || /^https?:\/\/[^\s]+$/.test(url), { error: 'must be empty or an http:// or https:// URL' })
      .describe('RabbitMQ management API of any node (e.g. http://rabbit-1:15672), through which the connections of devices disabled, removed or given a new secret are closed. Empty: they keep the connection they have until it drops.'),
    managementUsername: z.string().default('').describe('RabbitMQ account for the management API (tag monitoring or administrator; it closes connections).'),
    managementPassword: z.string().default('').describe('Its password. Set it through WASTE_RABBITMQ_MANAGEMENT_PASSWORD.'),
  })
  .strict()
  .prefault({});

export const configSchema = z.object({
  dataDir: z.string().default('./data').describe('Directory for the spool, device file and private InfluxDB. Each process of the service has its own.'),
  role: z
    .string()
    .default('all')
    .refine((value) => value.split(',').every((part) => ['all', ...ROLES].includes(part.trim().toLowerCase())), { error: 'must be all, or a comma-separated list of api, ingest, scheduler' })
    .describe(
      'What this process runs: all (everything, the default), or a comma-separated list of api (the HTTP API), ingest (the device sources, validation, spool, rules and alerts), scheduler (the separation-rate job, webhook delivery, open-alert counts; one active across all processes, the others standing by). Roles apart need database.url.',
    ),
  logLevel: z
    .enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace'])
    .default('info')
    .describe('Log level of the structured (JSON) log on stdout.'),
  broker: brokerSchema,
  jt808: jt808Schema,
  lorawan: lorawanSchema,
  ingest: ingestSchema,
  influx: influxSchema,
  spool: spoolSchema,
  registry: registrySchema,
  api: apiSchema,
  rules: rulesSchema,
  alerts: alertsSchema,
  sorting: sortingSchema,
  snapshots: snapshotsSchema,
  metrics: metricsSchema,
  database: databaseSchema,
  scheduler: schedulerSchema,
  rabbitmq: rabbitmqSchema,
}).refine((config) => config.database.url !== '' || parseRoles(config.role).size === ROLES.length, {
  error: 'roles apart (role other than all) share their state through PostgreSQL: set database.url (WASTE_DATABASE_URL)',
  path: ['role'],
});

export type Config = z.infer<typeof configSchema>;
export type BrokerConfig = Config['broker'];
export type Jt808Config = Config['jt808'];
export type ExtensionLayout = z.infer<typeof extensionLayoutSchema>;
export type LorawanConfig = Config['lorawan'];
export type NetworkServerConfig = z.infer<typeof networkServerSchema>;
export type IngestConfig = Config['ingest'];
export type InfluxConfig = Config['influx'];
export type SpoolConfig = Config['spool'];
export type ApiConfig = Config['api'];
export type RulesConfig = Config['rules'];
export type AlertsConfig = Config['alerts'];
export type SortingConfig = Config['sorting'];
export type SnapshotsConfig = Config['snapshots'];
export type DatabaseConfig = Config['database'];

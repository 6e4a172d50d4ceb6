// Schema migrations of the registry database, applied in order at start, each in a transaction.
// Never edit a migration that has shipped: add the next one. Geometry columns hold GeoJSON
// geometry in WGS-84 (geometry.ts checks it before it gets here); times are ISO-8601 UTC.

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

const stamps = `created_at TEXT NOT NULL, updated_at TEXT NOT NULL`;

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'registry entities, devices and tokens',
    sql: `
      CREATE TABLE companies (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        credit_code TEXT,
        contact TEXT,
        ${stamps}
      );
      CREATE TABLE districts (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        geometry TEXT,
        ${stamps}
      );
      CREATE TABLE communities (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        district_id TEXT NOT NULL REFERENCES districts(id),
        geometry TEXT NOT NULL,
        dropoff_windows TEXT NOT NULL DEFAULT '[]',
        ${stamps}
      );
      CREATE INDEX communities_district ON communities(district_id);
      CREATE TABLE jurisdictions (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        enforcement_unit TEXT NOT NULL,
        geometry TEXT NOT NULL,
        ${stamps}
      );
      CREATE TABLE jurisdiction_neighbours (
        jurisdiction_id TEXT NOT NULL REFERENCES jurisdictions(id) ON DELETE CASCADE,
        neighbour_id TEXT NOT NULL REFERENCES jurisdictions(id) ON DELETE CASCADE,
        PRIMARY KEY (jurisdiction_id, neighbour_id),
        CHECK (jurisdiction_id <> neighbour_id)
      );
      CREATE TABLE sites (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL CHECK (kind IN ('construction', 'disposal', 'transfer', 'plant')),
        name TEXT NOT NULL,
        district_id TEXT REFERENCES districts(id),
        geometry TEXT NOT NULL,
        ${stamps}
      );
      CREATE INDEX sites_kind ON sites(kind);
      CREATE TABLE devices (
        id TEXT PRIMARY KEY,
        class TEXT NOT NULL CHECK (class IN ('bins', 'trucks', 'scales')),
        secret_hash TEXT NOT NULL,
        enabled INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
        ${stamps}
      );
      CREATE TABLE service_accounts (
        name TEXT PRIMARY KEY CHECK (name LIKE 'waste-%'),
        secret_hash TEXT NOT NULL,
        ${stamps}
      );
      CREATE TABLE trucks (
        id TEXT PRIMARY KEY,
        plate TEXT NOT NULL UNIQUE,
        company_id TEXT NOT NULL REFERENCES companies(id),
        fleet TEXT NOT NULL CHECK (fleet IN ('muck', 'collection')),
        rated_gross_kg REAL NOT NULL CHECK (rated_gross_kg > 0),
        device_id TEXT UNIQUE REFERENCES devices(id) ON DELETE SET NULL,
        ${stamps}
      );
      CREATE INDEX trucks_company ON trucks(company_id);
      CREATE TABLE bins (
        id TEXT PRIMARY KEY,
        category TEXT NOT NULL CHECK (category IN ('kitchen', 'recyclable', 'hazardous', 'other')),
        community_id TEXT REFERENCES communities(id),
        location TEXT NOT NULL,
        depth_mm REAL NOT NULL CHECK (depth_mm > 0),
        device_id TEXT UNIQUE REFERENCES devices(id) ON DELETE SET NULL,
        ${stamps}
      );
      CREATE INDEX bins_community ON bins(community_id);
      CREATE TABLE weighbridges (
        id TEXT PRIMARY KEY,
        site_id TEXT NOT NULL REFERENCES sites(id),
        device_id TEXT UNIQUE REFERENCES devices(id) ON DELETE SET NULL,
        ${stamps}
      );
      CREATE INDEX weighbridges_site ON weighbridges(site_id);
      CREATE TABLE permits (
        id TEXT PRIMARY KEY,
        number TEXT NOT NULL UNIQUE,
        site_id TEXT NOT NULL REFERENCES sites(id),
        disposal_site_id TEXT NOT NULL REFERENCES sites(id),
        route TEXT NOT NULL,
        corridor_m REAL NOT NULL CHECK (corridor_m > 0),
        valid_from TEXT NOT NULL,
        valid_to TEXT NOT NULL,
        time_windows TEXT NOT NULL DEFAULT '[]',
        status TEXT NOT NULL CHECK (status IN ('active', 'suspended', 'revoked')),
        ${stamps},
        CHECK (valid_from <= valid_to)
      );
      CREATE TABLE permit_trucks (
        permit_id TEXT NOT NULL REFERENCES permits(id) ON DELETE CASCADE,
        truck_id TEXT NOT NULL REFERENCES trucks(id) ON DELETE CASCADE,
        PRIMARY KEY (permit_id, truck_id)
      );
      CREATE INDEX permit_trucks_truck ON permit_trucks(truck_id);
      CREATE TABLE tokens (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        role TEXT NOT NULL CHECK (role IN ('admin', 'operator', 'enforcement', 'integrator')),
        token_hash TEXT NOT NULL UNIQUE,
        ${stamps},
        revoked_at TEXT
      );
      CREATE TABLE token_jurisdictions (
        token_id TEXT NOT NULL REFERENCES tokens(id) ON DELETE CASCADE,
        jurisdiction_id TEXT NOT NULL REFERENCES jurisdictions(id) ON DELETE CASCADE,
        PRIMARY KEY (token_id, jurisdiction_id)
      );
    `,
  },
  {
    version: 2,
    name: 'alerts, webhooks and spillage routes',
    // Times of alerts are epoch ms (event time from devices, server time for changes): they are
    // compared and ordered on every finding.
    sql: `
      CREATE TABLE alerts (
        id TEXT PRIMARY KEY,
        type TEXT NOT NULL,
        severity TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('open', 'acknowledged', 'resolved')),
        subject_kind TEXT NOT NULL,
        subject_id TEXT NOT NULL,
        subject_device_id TEXT,
        subject_plate TEXT,
        lon REAL,
        lat REAL,
        started_at INTEGER NOT NULL,
        ended_at INTEGER,
        last_evidence_at INTEGER NOT NULL,
        raised_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        version INTEGER NOT NULL,
        permit_id TEXT,
        permit_number TEXT,
        detail TEXT NOT NULL DEFAULT '{}',
        evidence TEXT NOT NULL DEFAULT '[]',
        acknowledged_by TEXT,
        acknowledged_at INTEGER,
        resolved_by TEXT,
        resolved_at INTEGER,
        resolution_note TEXT
      );
      CREATE INDEX alerts_subject ON alerts(subject_id, type, started_at);
      CREATE INDEX alerts_started ON alerts(started_at);
      CREATE INDEX alerts_status ON alerts(status, type);
      CREATE TABLE alert_jurisdictions (
        alert_id TEXT NOT NULL REFERENCES alerts(id) ON DELETE CASCADE,
        jurisdiction_id TEXT NOT NULL,
        PRIMARY KEY (alert_id, jurisdiction_id)
      );
      CREATE INDEX alert_jurisdictions_jurisdiction ON alert_jurisdictions(jurisdiction_id);
      CREATE TABLE alert_history (
        alert_id TEXT NOT NULL REFERENCES alerts(id) ON DELETE CASCADE,
        version INTEGER NOT NULL,
        at INTEGER NOT NULL,
        change TEXT NOT NULL,
        status TEXT NOT NULL,
        by TEXT,
        note TEXT,
        PRIMARY KEY (alert_id, version)
      );
      CREATE TABLE webhooks (
        id TEXT PRIMARY KEY,
        jurisdiction_id TEXT NOT NULL REFERENCES jurisdictions(id) ON DELETE CASCADE,
        url TEXT NOT NULL,
        secret TEXT NOT NULL,
        enabled INTEGER NOT NULL DEFAULT 1,
        ${stamps}
      );
      CREATE TABLE webhook_outbox (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        webhook_id TEXT NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
        idempotency_key TEXT NOT NULL,
        alert_id TEXT NOT NULL,
        body TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at INTEGER NOT NULL,
        last_error TEXT,
        delivered_at INTEGER,
        failed_at INTEGER,
        UNIQUE (webhook_id, idempotency_key)
      );
      CREATE INDEX webhook_outbox_due ON webhook_outbox(next_attempt_at) WHERE delivered_at IS NULL AND failed_at IS NULL;
      CREATE TABLE spillage (
        truck_id TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('uncovered', 'load_loss')),
        ts INTEGER NOT NULL,
        cell TEXT NOT NULL,
        lon REAL NOT NULL,
        lat REAL NOT NULL,
        metres REAL NOT NULL,
        jurisdiction_id TEXT,
        PRIMARY KEY (truck_id, kind, ts, cell)
      );
      CREATE INDEX spillage_time ON spillage(ts);
    `,
  },
  {
    version: 3,
    name: 'household waste tonnage per day for the separation rate',
    // Local calendar days (YYYY-MM-DD, China Standard Time). Tonnage is kept per scope so that rates,
    // rolling windows, trends and rankings are sums over rows, whatever the configured formula.
    sql: `
      CREATE TABLE sorting_days (
        day TEXT PRIMARY KEY,
        computed_at INTEGER NOT NULL,
        tickets INTEGER NOT NULL
      );
      CREATE TABLE sorting_tonnage (
        day TEXT NOT NULL,
        scope TEXT NOT NULL CHECK (scope IN ('community', 'district', 'city')),
        scope_id TEXT NOT NULL,
        district_id TEXT,
        kitchen_kg REAL NOT NULL,
        recyclable_kg REAL NOT NULL,
        hazardous_kg REAL NOT NULL,
        other_kg REAL NOT NULL,
        PRIMARY KEY (scope, scope_id, day)
      );
      CREATE INDEX sorting_tonnage_day ON sorting_tonnage(day);
    `,
  },
  {
    version: 4,
    name: 'violations still going on, for the state snapshots',
    // A partial index: the snapshots look for the few alerts without an end among all ever raised.
    sql: `
      CREATE INDEX alerts_ongoing ON alerts(type, subject_id) WHERE ended_at IS NULL;
    `,
  },
  {
    version: 5,
    name: 'registry revision, for the rules to notice changes',
    // One counter, bumped by every change to a table the rules' snapshot reads (rules/registry-index.ts,
    // link tables included): polling it reads one row, where COUNT(*) and MAX(updated_at) over 10,000
    // permits read every route (about 50 ms, the event loop blocked). Triggers count the changes of
    // every connection, the CLI's included.
    sql: `
      CREATE TABLE registry_revision (id INTEGER PRIMARY KEY CHECK (id = 1), n INTEGER NOT NULL);
      INSERT INTO registry_revision (id, n) VALUES (1, 0);
      ${['trucks', 'permits', 'permit_trucks', 'sites', 'weighbridges', 'jurisdictions', 'jurisdiction_neighbours', 'bins', 'communities'].flatMap((table) =>
        ['INSERT', 'UPDATE', 'DELETE'].map((event) => `CREATE TRIGGER ${table}_${event.toLowerCase()}_revision AFTER ${event} ON ${table} BEGIN UPDATE registry_revision SET n = n + 1; END;`),
      ).join('\n      ')}
    `,
  },
  {
    version: 6,
    name: 'JT/T 808 terminals: phone number, authentication code hash and model of a trucks device',
    // The terminal phone number is the SIM number a JT/T 808 terminal puts in every message header
    // (JT/T 808-2013 §4.4.3: BCD[6], 12 digits; JT/T 808-2019: BCD[10], 20 digits), stored with
    // leading zeros removed, as the gateway reads it; none is all zeros (a terminal's unset default).
    // Only vehicle terminals have one, so only class trucks. The authentication code (§8.5) is kept
    // only as a hash (broker/secrets.ts), and only with a phone number, as is the model.
    // Column CHECKs may name other columns of the row (SQLite docs, "CREATE TABLE", CHECK
    // constraints), and ADD COLUMN tests them against the rows there are. Not in the registry
    // revision's triggers (migration 5): the rules' snapshot reads no devices.
    sql: `
      ALTER TABLE devices ADD COLUMN jt808_phone TEXT CHECK (jt808_phone IS NULL OR (class = 'trucks' AND length(jt808_phone) BETWEEN 1 AND 20 AND jt808_phone NOT GLOB '*[^0-9]*' AND jt808_phone NOT GLOB '0*'));
      ALTER TABLE devices ADD COLUMN jt808_auth_hash TEXT CHECK (jt808_auth_hash IS NULL OR jt808_phone IS NOT NULL);
      ALTER TABLE devices ADD COLUMN jt808_model TEXT CHECK (jt808_model IS NULL OR (jt808_phone IS NOT NULL AND length(jt808_model) BETWEEN 1 AND 64));
      CREATE UNIQUE INDEX devices_jt808_phone ON devices(jt808_phone) WHERE jt808_phone IS NOT NULL;
    `,
  },
  {
    version: 7,
    name: 'LoRaWAN bin sensors: DevEUI and sensor model of a bins device',
    // A LoRaWAN sensor reaches the service through a network server (lorawan/bridge.ts), which
    // names it by its DevEUI (LoRaWAN 1.0.3 §6.2.1: a 64-bit IEEE EUI-64), stored as 16 upper-case
    // hex digits and unique among devices; all zeros is no EUI a device is given. Only bin sensors
    // are LoRaWAN devices here, so only class bins. The sensor model picks the payload decoder
    // (lorawan/decoders/), and needs a DevEUI.
    sql: `
      ALTER TABLE devices ADD COLUMN lorawan_dev_eui TEXT CHECK (lorawan_dev_eui IS NULL OR (class = 'bins' AND length(lorawan_dev_eui) = 16 AND lorawan_dev_eui NOT GLOB '*[^0-9A-F]*' AND lorawan_dev_eui <> '0000000000000000'));
      ALTER TABLE devices ADD COLUMN lorawan_sensor TEXT CHECK (lorawan_sensor IS NULL OR (lorawan_dev_eui IS NOT NULL AND length(lorawan_sensor) BETWEEN 1 AND 64));
      CREATE UNIQUE INDEX devices_lorawan_dev_eui ON devices(lorawan_dev_eui) WHERE lorawan_dev_eui IS NOT NULL;
    `,
  },
];

// The rules as a service: the engine over the city index (registry/city-index.ts, given at
// construction and started by whoever built it), spillage routes, and at start a replay of the
// latest history from InfluxDB, so that a violation in progress when the service stopped is picked
// up where it was (its open alert is found again, not raised twice). Every second it lets tickets
// settle and looks for bins gone silent.
import type { Logger } from 'pino';
import type { RulesConfig } from '../config/schema.ts';
import type { Reading } from '../contract/payloads.ts';
import type { Fix, Level, TelemetryReader, TicketRow } from '../influx/reader.ts';
import type { CityIndex } from '../registry/city-index.ts';
import type { RegistryDb } from '../registry/db.ts';
import { RulesEngine, type FindingSink } from './engine.ts';
import { SpillageStore } from './spillage.ts';
import { loadSpeedZones } from './speed-zones.ts';
import type { BinReading, TruckFix, WeighTicket } from './types.ts';

export interface RulesDeps {
  db: RegistryDb;
  /** The registry in memory the rules judge against; started and stopped by whoever built it. */
  city: CityIndex;
  config: RulesConfig;
  onFinding: FindingSink;
  writeLines: (lines: string) => Promise<void>;
  log: Logger;
  /** Told how long each batch of readings took the rules (the metrics). */
  onEvaluated?: (ms: number) => void;
  /**
   * Resolves when the findings sink can take more (AlertService.room()): the replay at start
   * waits for it after each slice of history, so that its findings are not dropped for the time
   * their recording takes.
   */
  findingsRoom?: () => Promise<void>;
  /**
   * Whether this process judges a device at all (absent: every device it hears of). Workers
   * sharing a RabbitMQ cluster's partitions judge only the devices that come through theirs: the
   * others, known from the replay at start, are another worker's, and their silence here is none.
   */
  judges?: (deviceId: string) => boolean;
}

/** Tickets are replayed this far back, so a trip's exit ticket is there when its entry ticket comes. */
const TICKET_HISTORY_MS = 24 * 3_600_000;
/** How often tickets waiting to settle are looked at. */
const TICK_MS = 1000;
/** How often the rules' counters are logged. */
const STATS_LOG_MS = 60_000;
/**
 * With the registry on PostgreSQL (several ingest processes may share the devices), InfluxDB is
 * asked every rules.elsewhereCheckS which devices reported through another process since the last
 * look; each look goes this far back before it, for the other processes' spools to deliver.
 */
const ELSEWHERE_MARGIN_MS = 60_000;
/**
 * A device taken over from another worker (takeOver) is rebuilt from InfluxDB this long after its
 * first reading here: long enough for the previous worker to ship what it acknowledged last (its
 * shipper writes every few hundred ms). Its readings wait meanwhile, up to TAKEOVER_WAITING_MAX.
 */
const TAKEOVER_SETTLE_MS = 2000;
const TAKEOVER_WAITING_MAX = 10_000;
/**
 * Rebuilds reading InfluxDB at once: a partition taken over brings its devices' first readings
 * within moments of each other, and one query each, all at once, would queue thousands on it.
 */
const REBUILDS_AT_ONCE = 4;
/**
 * The tickets of the last day, read once for the rebuilds of a takeover and shared by them this
 * long: a truck's tickets are filed under the weighbridges, not under the truck.
 */
const REBUILD_TICKETS_REUSE_MS = 10_000;
/** History is read in slices of this length, to keep each answer small. */
const SLICE_MS = 60_000;
const BIN_SLICE_MS = 600_000;

export class RulesService {
  readonly spillage: SpillageStore;
  private engine: RulesEngine | null = null;
  private timer: NodeJS.Timeout | null = null;
  /**
   * Devices whose latest reading in InfluxDB is newer than the latest this process judged: they
   * report through another process, which judges them. Their silence here is not an outage, and
   * the state snapshots leave them to that process.
   */
  private readonly elsewhere = new Set<string>();
  /** Devices taken over from another worker, whose state is rebuilt from InfluxDB before they are judged here. */
  private readonly takenOver = new Set<string>();
  /** Readings of devices being rebuilt, waiting for their history. */
  private readonly rebuilding = new Map<string, Reading[]>();
  private reader: TelemetryReader | null = null;
  readonly takeovers = { rebuilt: 0, replayedReadings: 0, failed: 0 };
  /** Rebuilds reading their history now, and those waiting for one of REBUILDS_AT_ONCE. */
  private rebuildsReading = 0;
  private readonly rebuildsWaiting: (() => void)[] = [];
  private recentTickets: { readAt: number; tickets: Promise<TicketRow[]> } | null = null;
  private elsewhereTimer: NodeJS.Timeout | null = null;
  private elsewhereLookedAt = 0;

  /** Devices this process judges: not reporting elsewhere, and its own where workers share partitions. */
  private readonly judged = (deviceId: string): boolean => !this.elsewhere.has(deviceId) && (this.deps.judges?.(deviceId) ?? true);

  constructor(private readonly deps: RulesDeps) {
    this.spillage = new SpillageStore(deps.db, deps.config.spillageCellM, () => deps.city.current, deps.writeLines);
  }

  get stats() {
    return this.engine?.stats ?? null;
  }

  /** Loads the speed zones, then replays recent history when a reader is given. */
  async start(history: TelemetryReader | null): Promise<void> {
    const { city, config, log } = this.deps;
    this.engine = new RulesEngine({
      config,
      registry: () => city.current,
      speedLimitAt: loadSpeedZones(config.speedZonesFile, config.speedLimitKmh),
      onFinding: this.deps.onFinding,
      onSpill: (spill) => {
        this.spillage.record(spill).catch((error: Error) => log.error({ error: error.message }, 'could not record a spillage route'));
      },
      log,
    });
    this.reader = history;
    if (history) await this.replay(history);
    let loggedAt = Date.now();
    if (history && this.deps.db.dialect === 'postgres') {
      this.elsewhereLookedAt = Date.now();
      this.elsewhereTimer = setInterval(() => void this.lookElsewhere(history), config.elsewhereCheckS * 1000);
      this.elsewhereTimer.unref();
    }
    this.timer = setInterval(() => {
      const now = Date.now();
      this.engine?.tick(now);
      this.engine?.checkSilence(now, this.judged);
      if (this.engine && now - loggedAt >= STATS_LOG_MS) {
        loggedAt = now;
        log.info({ ...this.engine.stats, evaluationMs: Math.round(this.engine.stats.evaluationMs), settlingTickets: this.engine.settlingTickets() }, 'rules stats (since start)');
      }
    }, TICK_MS);
    this.timer.unref();
  }

  /** A bin's fill level and predicted time to full (null before its first reading). */
  binForecast(deviceId: string) {
    return this.judged(deviceId) ? (this.engine?.binForecast(deviceId) ?? null) : null;
  }

  /** The latest fix of each truck this process judges. */
  *latestFixes(): Generator<[truckId: string, fix: TruckFix]> {
    for (const entry of this.engine?.latestFixes() ?? []) if (this.judged(entry[1].deviceId)) yield entry;
  }

  latestBinSample(deviceId: string) {
    return this.judged(deviceId) ? (this.engine?.latestBinSample(deviceId) ?? null) : null;
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    if (this.elsewhereTimer) clearInterval(this.elsewhereTimer);
    this.timer = null;
    this.elsewhereTimer = null;
  }

  consume(readings: readonly Reading[]): void {
    if (!this.engine || readings.length === 0) return;
    let now: Reading[] | null = null;
    for (const reading of readings) {
      // A status is stored, not judged, and comes through its own partition, which may be
      // another worker's than the device's data: it says nothing of who judges the device.
      if (reading.kind === 'status') continue;
      // A ticket is judged with its truck (a weighbridge is no subject of its own), and its
      // truck's book outlives a rebuild: it goes in as it comes.
      if (reading.kind === 'ticket') {
        (now ??= []).push(reading);
        continue;
      }
      const waiting = this.rebuilding.get(reading.deviceId);
      if (waiting) {
        if (waiting.length < TAKEOVER_WAITING_MAX) waiting.push(reading);
        continue;
      }
      if (this.takenOver.delete(reading.deviceId)) {
        this.rebuild(reading.deviceId, reading.kind === 'bin' ? 'bin' : 'truck', reading);
        continue;
      }
      // A device that reports here is judged here again, from this reading on: what this process
      // knew of it is from before it reported elsewhere.
      if (this.elsewhere.delete(reading.deviceId)) this.engine.forget(reading.deviceId);
      (now ??= []).push(reading);
    }
    this.feed(now ?? []);
  }

  /**
   * The devices of a partition this worker now consumes, which another worker judged until now:
   * each is judged here only once its state is rebuilt from its history in InfluxDB (a route
   * deviation in progress goes on as the same alert).
   */
  takeOver(deviceIds: Iterable<string>): void {
    for (const id of deviceIds) {
      if (this.rebuilding.has(id)) continue;
      // A bin is rebuilt at once: its silence is judged here, also if it never reports again.
      if (this.engine && this.deps.city.current.binByDevice(id)) this.rebuild(id, 'bin', null);
      else this.takenOver.add(id);
    }
  }

  /** The devices of a partition another worker consumes from now on: their silence here is not an outage. */
  release(deviceIds: Iterable<string>): void {
    for (const id of deviceIds) {
      this.takenOver.delete(id);
      this.elsewhere.add(id);
    }
  }

  /** Forgets what this process knew of a taken-over device, replays its history, then the readings that came for it meanwhile. */
  private rebuild(deviceId: string, kind: 'bin' | 'truck', first: Reading | null): void {
    this.engine?.forget(deviceId);
    this.elsewhere.delete(deviceId);
    this.rebuilding.set(deviceId, first ? [first] : []);
    const { log } = this.deps;
    const done = (history: Reading[]) => {
      const waiting = this.rebuilding.get(deviceId) ?? [];
      this.rebuilding.delete(deviceId);
      this.takeovers.rebuilt++;
      this.takeovers.replayedReadings += history.length;
      this.feed([...history, ...waiting]);
    };
    const timer = setTimeout(() => {
      const reader = this.reader;
      if (!reader) return done([]);
      void this.inTurn(async () => {
        let history: Reading[] = [];
        try {
          history = await this.history(reader, deviceId, kind);
        } catch (error) {
          this.takeovers.failed++;
          log.warn({ deviceId, error: (error as Error).message }, 'could not read a taken-over device\'s history from InfluxDB; it is judged from its readings here on');
        }
        done(history);
      });
    }, TAKEOVER_SETTLE_MS);
    timer.unref();
  }

  /**
   * What InfluxDB holds of a taken-over device: a bin's latest readings; a truck's latest fixes and
   * the last day's tickets naming it, which reached the worker that judged it until now.
   */
  private async history(reader: TelemetryReader, deviceId: string, kind: 'bin' | 'truck'): Promise<Reading[]> {
    const { config, city } = this.deps;
    const to = new Date(Date.now() + 1000).toISOString();
    if (kind === 'bin') return (await reader.levels(deviceId, new Date(Date.now() - config.binRebuildWindowS * 1000).toISOString(), to)).map(levelReading);
    const truck = city.current.truckByDevice(deviceId);
    const [fixes, tickets] = await Promise.all([reader.track(deviceId, new Date(Date.now() - config.rebuildWindowS * 1000).toISOString(), to), truck ? this.lastDayTickets(reader) : []]);
    // Resolved as the engine resolves a ticket's truck (engine.ts onTicket).
    const ofTruck = (t: TicketRow) => ((t.truck_device_id && city.current.truckByDevice(t.truck_device_id)) || (t.plate && city.current.truckByPlate(t.plate)) || undefined)?.id === truck!.id;
    return [...tickets.filter(ofTruck).map(ticketReading), ...fixes.map(fixReading)];
  }

  private lastDayTickets(reader: TelemetryReader): Promise<TicketRow[]> {
    const now = Date.now();
    if (!this.recentTickets || now - this.recentTickets.readAt > REBUILD_TICKETS_REUSE_MS) {
      const tickets = reader.ticketsBetween(now - TICKET_HISTORY_MS, now + 1000);
      this.recentTickets = { readAt: now, tickets };
      tickets.catch(() => {
        if (this.recentTickets?.tickets === tickets) this.recentTickets = null;
      });
    }
    return this.recentTickets.tickets;
  }

  /** Runs `work` once fewer than REBUILDS_AT_ONCE others run. */
  private async inTurn(work: () => Promise<void>): Promise<void> {
    if (this.rebuildsReading < REBUILDS_AT_ONCE) this.rebuildsReading++;
    else await new Promise<void>((resolve) => this.rebuildsWaiting.push(resolve)); // handed a running one's turn
    try {
      await work();
    } finally {
      const next = this.rebuildsWaiting.shift();
      if (next) next();
      else this.rebuildsReading--;
    }
  }

  private feed(readings: readonly Reading[]): void {
    if (!this.engine || readings.length === 0) return;
    const ms = this.engine.consume(readings);
    this.deps.onEvaluated?.(ms);
  }

  /** Marks the devices InfluxDB has newer readings of than this process judged (see `elsewhere`). */
  private async lookElsewhere(reader: TelemetryReader): Promise<void> {
    const from = this.elsewhereLookedAt - ELSEWHERE_MARGIN_MS;
    this.elsewhereLookedAt = Date.now();
    try {
      const [levels, positions] = await Promise.all([reader.latestLevelsSince(from), reader.latestPositionsSince(from)]);
      const fixes = new Map<string, number>();
      for (const [, fix] of this.engine?.latestFixes() ?? []) fixes.set(fix.deviceId, fix.ts);
      for (const level of levels) {
        const ours = this.engine?.latestBinSample(level.device_id);
        if (ours && Date.parse(level.time) > ours.ts) this.elsewhere.add(level.device_id);
      }
      for (const position of positions) {
        const ours = fixes.get(position.device_id);
        if (ours !== undefined && Date.parse(position.time) > ours) this.elsewhere.add(position.device_id);
      }
    } catch (error) {
      this.deps.log.warn({ error: (error as Error).message }, 'could not ask InfluxDB which devices report through other processes; asking again shortly');
    }
  }

  private async replay(reader: TelemetryReader): Promise<void> {
    const { config, log } = this.deps;
    const now = Date.now();
    const started = performance.now();
    const replay = async <T>(windowMs: number, sliceMs: number, read: (from: number, to: number) => Promise<T[]>, toReading: (row: T) => Reading): Promise<number> => {
      let count = 0;
      for (let from = now - windowMs; from < now; from += sliceMs) {
        const rows = await read(from, Math.min(now, from + sliceMs));
        this.feed(rows.map(toReading));
        await this.deps.findingsRoom?.();
        count += rows.length;
      }
      return count;
    };
    try {
      const tickets = await replay(TICKET_HISTORY_MS, 3_600_000, (from, to) => reader.ticketsBetween(from, to), ticketReading);
      const binReadings = await replay(config.binRebuildWindowS * 1000, BIN_SLICE_MS, (from, to) => reader.levelsBetween(from, to), levelReading);
      const fixes = await replay(config.rebuildWindowS * 1000, SLICE_MS, (from, to) => reader.fixesBetween(from, to), fixReading);
      log.info({ fixes, binReadings, tickets, ms: Math.round(performance.now() - started) }, 'rules replayed recent history from InfluxDB');
    } catch (error) {
      log.warn({ error: (error as Error).message }, 'could not read recent history from InfluxDB; the rules start without it (violations in progress are judged from the next fixes on)');
    }
  }
}

const defined = <T>(value: T | null | undefined): T | undefined => (value === null ? undefined : value);

function fixReading(f: Fix): TruckFix {
  const fix: TruckFix = { kind: 'truck', deviceId: f.device_id, ts: Date.parse(f.time), lat: f.lat, lon: f.lon, speed_kmh: f.speed_kmh, heading: f.heading };
  for (const key of ['ignition', 'tipper_up', 'cover_closed'] as const) if (typeof f[key] === 'boolean') fix[key] = f[key];
  if (typeof f.load_kg === 'number') fix.load_kg = f.load_kg;
  return fix;
}

function levelReading(l: Level): BinReading {
  const reading: BinReading = { kind: 'bin', deviceId: l.device_id, ts: Date.parse(l.time) };
  for (const key of ['fill_pct', 'distance_mm', 'temp_c', 'tilt_deg', 'battery_v', 'battery_pct', 'lid_opens'] as const) {
    const value = l[key];
    if (typeof value === 'number') reading[key] = value;
  }
  if (typeof l.tilted === 'boolean') reading.tilted = l.tilted;
  return reading;
}

function ticketReading(t: TicketRow): WeighTicket {
  const ticket: WeighTicket = {
    kind: 'ticket',
    deviceId: t.device_id,
    ts: Date.parse(t.time),
    ticket_id: t.ticket_id,
    gross_kg: t.gross_kg,
    tare_kg: t.tare_kg,
    net_kg: t.net_kg,
    category: t.category as WeighTicket['category'],
    direction: t.direction as WeighTicket['direction'],
  };
  const plate = defined(t.plate);
  const truck = defined(t.truck_device_id);
  const origin = defined(t.origin);
  if (plate) ticket.plate = plate;
  if (truck) ticket.truck_device_id = truck;
  if (origin) ticket.origin = origin;
  return ticket;
}

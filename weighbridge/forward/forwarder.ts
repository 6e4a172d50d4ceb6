// Store-and-forward: tickets go from the queue file to `waste/scales/{deviceId}/tickets` at QoS 1,
// oldest first, at most `maxInFlight` awaiting their PUBACK, and leave the queue only on the PUBACK.
// Each connection is a fresh client without automatic reconnection (as device-sim/run/transport.ts
// does): when it closes, its unacknowledged publishes fail and stay queued, and the next connection,
// after a backoff, sends them again from the oldest, byte for byte the same. A duplicate delivery
// after a lost PUBACK carries the same ticket_id and payload, which the service stores once.
// Status `{"online":true}` is published retained on each connection, with `{"online":false}` as the
// will (docs/mqtt.md "Status and will").
//
// The service acknowledges the tickets it refuses too (docs/mqtt.md "Rejections"), so a ticket it
// would refuse is held instead: kept in the queue, not sent, listed with the reason (holdReason).
// A PUBACK whose delete fails (the queue file locked) is remembered and the delete tried again;
// the ticket is not sent again meanwhile.
import { EventEmitter } from 'node:events';
import mqtt from 'mqtt';
import { weighTicketSchema } from '../../services/contract/payloads.ts';
import { topics } from '../../services/contract/topics.ts';
import type { Logger } from '../log.ts';
import { Backoff, type BackoffOptions } from '../backoff.ts';
import { explainStorageError } from '../store/db.ts';
import type { QueuedTicket, TicketQueue } from '../store/queue.ts';
import { explainMqttError } from './explain.ts';

/**
 * Tickets older than this are held, not sent: the service refuses a ts older than 7 days
 * (ingest.maxAgeMs) and acknowledges it all the same, so the ticket would leave the queue and be
 * lost. A day short of the service's window, for its clock running ahead of this PC's.
 */
export const HOLD_OLDER_THAN_MS = 6 * 24 * 3_600_000;
/** The service refuses a ts more than 5 min ahead of its clock (ingest.maxFutureMs): a minute short. */
export const HOLD_AHEAD_MS = 4 * 60_000;
/** A connection that held this long resets the reconnect backoff: one the broker keeps closing at once is retried ever more slowly. */
const STABLE_MS = 10_000;
/** Connections closed this soon after CONNACK, in a row, without an error, before the takeover is named. */
const QUICK_CLOSES = 3;
/** How often the whole queue is looked over: held tickets listed (also while disconnected), those whose time came sent, failed deletes retried. */
const REVIEW_MS = 30_000;
const SCAN_BATCH = 500;

export interface HeldTicket {
  ticket_id: string;
  reason: string;
}

/** Why a queued ticket must not be sent now, or null. `sendOld` sends tickets past the age limit anyway. */
export function holdReason(ticket: QueuedTicket, now: number, sendOld: boolean): string | null {
  let ts: number;
  try {
    const parsed = weighTicketSchema.safeParse(JSON.parse(ticket.payload));
    if (!parsed.success) return `ticket ${ticket.ticketId} in the queue file is not a valid ticket (${parsed.error.issues.map((i) => `${i.path.join('.')} ${i.message}`).join('; ')}): held, the service would refuse it; see docs/weighbridge.md "Troubleshooting"`;
    ts = typeof parsed.data.ts === 'string' ? Date.parse(parsed.data.ts) : NaN;
    if (!Number.isFinite(ts)) return `ticket ${ticket.ticketId} in the queue file has no valid ts: held, the service would refuse it; see docs/weighbridge.md "Troubleshooting"`;
  } catch (error) {
    return `ticket ${ticket.ticketId} in the queue file is not valid JSON (${(error as Error).message}): held, the service would refuse it; see docs/weighbridge.md "Troubleshooting"`;
  }
  const age = now - ts;
  if (age > HOLD_OLDER_THAN_MS && !sendOld) {
    return `ticket ${ticket.ticketId} is ${(age / 86_400_000).toFixed(1)} days old: the service refuses tickets older than 7 days, so it is held in the queue file, not sent. Have the service's ingest.maxAgeMs widened to cover it, then restart the agent with WEIGHBRIDGE_SEND_OLD_TICKETS=1 (docs/weighbridge.md "Store-and-forward")`;
  }
  if (-age > HOLD_AHEAD_MS) {
    return `ticket ${ticket.ticketId} is stamped ${Math.round(-age / 60_000)} min ahead of this PC's clock (the clock was wrong when it was made, or is wrong now): held until its time comes, since the service refuses tickets more than 5 min ahead; check the PC's clock (timedatectl)`;
  }
  return null;
}

export interface ForwarderOptions {
  url: string;
  deviceId: string;
  secret: string;
  maxInFlight: number;
  keepaliveS: number;
  connectTimeoutMs: number;
  reconnect: BackoffOptions;
  /** Send tickets older than HOLD_OLDER_THAN_MS anyway (WEIGHBRIDGE_SEND_OLD_TICKETS), once the service's window covers them. */
  sendOldTickets?: boolean;
}

export interface ForwarderStatus {
  connected: boolean;
  /** What went wrong last, in words; null once connected again. */
  problem: string | null;
  inFlight: number;
  /** Tickets acknowledged since start. */
  sent: number;
  connectedSince: number | null;
  /** Tickets kept in the queue and not sent, with why (the first 50). */
  held: HeldTicket[];
  heldCount: number;
  /** The queue file could not be read or a PUBACK's delete failed; null when all is well. */
  storageProblem: string | null;
}

const ONLINE = '{"online":true}';
const OFFLINE = '{"online":false}';

export class Forwarder extends EventEmitter<{ sent: [ticketId: string]; connected: []; disconnected: [problem: string] }> {
  private client: mqtt.MqttClient | null = null;
  private timer: NodeJS.Timeout | null = null;
  private stopped = true;
  /** Queue position of the newest ticket published on the current connection. */
  private cursor = 0;
  private readonly inFlight = new Set<string>();
  /** Acknowledged, but the delete from the queue file failed: not sent again, deleted later. */
  private readonly acked = new Set<string>();
  private held = new Map<string, string>();
  private reviewTimer: NodeJS.Timeout | null = null;
  /** Runs while the current connection is younger than STABLE_MS. */
  private stable: NodeJS.Timeout | null = null;
  private quickCloses = 0;
  private storageProblem: string | null = null;
  private readonly backoff: Backoff;
  private readonly state: Omit<ForwarderStatus, 'inFlight' | 'held' | 'heldCount' | 'storageProblem'> = { connected: false, problem: null, sent: 0, connectedSince: null };

  constructor(
    private readonly options: ForwarderOptions,
    private readonly queue: TicketQueue,
    private readonly log: Logger,
  ) {
    super();
    this.backoff = new Backoff(options.reconnect);
  }

  get status(): ForwarderStatus {
    const held = [...this.held].slice(0, 50).map(([ticket_id, reason]) => ({ ticket_id, reason }));
    return { ...this.state, inFlight: this.inFlight.size, held, heldCount: this.held.size, storageProblem: this.storageProblem };
  }

  get statusTopic(): string {
    return topics.status('scales', this.options.deviceId);
  }

  start(): void {
    this.stopped = false;
    this.review();
    this.reviewTimer = setInterval(() => this.review(), REVIEW_MS);
    this.connect();
  }

  /** A ticket was queued: send it if the connection has room. */
  kick(): void {
    const client = this.client;
    if (!client?.connected) return;
    const topic = topics.data('scales', this.options.deviceId);
    const { maxInFlight, sendOldTickets = false } = this.options;
    const now = Date.now();
    const newlyHeld: string[] = [];
    try {
      this.retryDeletes();
      scan: while (this.inFlight.size < maxInFlight) {
        const batch = this.queue.after(this.cursor, SCAN_BATCH);
        if (batch.length === 0) break;
        for (const ticket of batch) {
          if (this.inFlight.size >= maxInFlight) break scan;
          this.cursor = ticket.seq;
          if (this.inFlight.has(ticket.ticketId) || this.acked.has(ticket.ticketId)) continue;
          const reason = holdReason(ticket, now, sendOldTickets);
          if (reason) {
            if (!this.held.has(ticket.ticketId)) newlyHeld.push(reason);
            this.held.set(ticket.ticketId, reason);
            continue;
          }
          this.held.delete(ticket.ticketId);
          this.publish(client, topic, ticket);
        }
      }
      this.storageProblem = null;
    } catch (error) {
      this.storageFailed(error, 'reading the tickets to send');
    }
    this.warnHeld(newlyHeld);
  }

  private publish(client: mqtt.MqttClient, topic: string, ticket: QueuedTicket): void {
    this.inFlight.add(ticket.ticketId);
    client.publish(topic, ticket.payload, { qos: 1 }, (error) => {
      if (this.client === client) this.inFlight.delete(ticket.ticketId);
      // An error: the connection closed before the PUBACK; the ticket stays queued for the next one.
      if (error) return;
      this.acked.add(ticket.ticketId);
      try {
        this.retryDeletes();
      } catch (failure) {
        this.storageFailed(failure, 'deleting an acknowledged ticket');
      }
      this.state.sent++;
      this.log.info({ ticket_id: ticket.ticketId }, 'ticket acknowledged by the broker');
      this.emit('sent', ticket.ticketId);
      this.kick();
    });
  }

  /** Deletes the acknowledged tickets from the queue file; what fails stays for the next try. */
  private retryDeletes(): void {
    for (const ticketId of this.acked) {
      this.queue.delete(ticketId);
      this.acked.delete(ticketId);
    }
  }

  private storageFailed(error: unknown, doing: string): void {
    const problem = explainStorageError(error, this.queue.file);
    const again = problem === this.storageProblem;
    this.storageProblem = problem;
    this.log[again ? 'debug' : 'error']({ doing, acknowledged_not_deleted: this.acked.size }, problem);
  }

  /** Looks over the whole queue: which tickets are held and why; then sends what may go. */
  private review(): void {
    const now = Date.now();
    const held = new Map<string, string>();
    const newlyHeld: string[] = [];
    try {
      for (let after = 0; ; ) {
        const batch = this.queue.after(after, SCAN_BATCH);
        if (batch.length === 0) break;
        for (const ticket of batch) {
          const reason = holdReason(ticket, now, this.options.sendOldTickets ?? false);
          if (reason) held.set(ticket.ticketId, reason);
          if (reason && !this.held.has(ticket.ticketId)) newlyHeld.push(reason);
        }
        after = batch.at(-1)!.seq;
      }
      this.held = held;
    } catch (error) {
      this.storageFailed(error, 'looking over the queue');
      return;
    }
    this.warnHeld(newlyHeld);
    // From the oldest again: tickets held before may go now; in flight and acknowledged ones are skipped.
    this.cursor = 0;
    this.kick();
  }

  private warnHeld(reasons: string[]): void {
    if (reasons.length === 0) return;
    this.log.warn({ held: this.held.size, newly_held: reasons.length, more: reasons.slice(1, 5) }, reasons.length === 1 ? reasons[0]! : `${reasons.length} tickets held in the queue file, not sent; the first: ${reasons[0]}`);
  }

  /** Says offline (retained) if connected, and disconnects; what is unacknowledged stays queued. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.reviewTimer) clearInterval(this.reviewTimer);
    this.timer = null;
    this.reviewTimer = null;
    this.clearStable();
    try {
      this.retryDeletes();
    } catch (error) {
      // Sent again by the next start, with the same bytes: the service stores it once.
      this.storageFailed(error, 'deleting acknowledged tickets at stop');
    }
    const client = this.client;
    this.client = null;
    this.inFlight.clear();
    if (!client) return;
    if (client.connected) {
      await Promise.race([client.publishAsync(this.statusTopic, OFFLINE, { qos: 1, retain: true }).catch(() => undefined), new Promise((r) => setTimeout(r, 2_000).unref())]);
    }
    await client.endAsync(true).catch(() => undefined);
  }

  private connect(): void {
    const { url, deviceId, secret, keepaliveS, connectTimeoutMs } = this.options;
    const client = mqtt.connect(url, {
      username: deviceId,
      password: secret,
      clientId: deviceId,
      clean: true,
      reconnectPeriod: 0,
      connectTimeout: connectTimeoutMs,
      keepalive: keepaliveS,
      will: { topic: this.statusTopic, payload: Buffer.from(OFFLINE), qos: 1, retain: true },
    });
    this.client = client;
    let problem: string | null = null;
    client.on('connect', () => {
      if (this.client !== client) return;
      this.stable = setTimeout(() => {
        this.stable = null;
        this.backoff.reset();
        this.quickCloses = 0;
      }, STABLE_MS);
      this.cursor = 0;
      this.inFlight.clear();
      Object.assign(this.state, { connected: true, problem: null, connectedSince: Date.now() });
      this.log.info({ url, device_id: deviceId, waiting: this.waiting() }, 'connected to the broker');
      client.publish(this.statusTopic, ONLINE, { qos: 1, retain: true });
      this.emit('connected');
      this.kick();
    });
    client.on('error', (error) => (problem = explainMqttError(error, url, deviceId)));
    client.on('close', () => {
      if (this.client !== client) return;
      this.client = null;
      // Fails the callbacks of what was not acknowledged (reconnectPeriod 0 with a clean session).
      client.end(true);
      this.inFlight.clear();
      const wasConnected = this.state.connected;
      // Closed by the broker soon after it accepted, with no error: what a broker does to the older
      // of two connections with one client id. Two agents as one device do it to each other.
      const quick = wasConnected && this.stable !== null && problem === null;
      this.clearStable();
      this.quickCloses = quick ? this.quickCloses + 1 : 0;
      const wait = this.backoff.next();
      const message =
        problem ??
        (this.quickCloses >= QUICK_CLOSES
          ? `the broker at ${url} keeps closing the connection right after accepting it: another program is connected as device ${deviceId} with the same client id (a second agent, on another PC or with another queue file?), and each takes the connection from the other. Run one agent per device id`
          : wasConnected
            ? `lost the connection to the broker at ${url}`
            : `could not connect to the broker at ${url}`);
      const again = message === this.state.problem;
      Object.assign(this.state, { connected: false, problem: message, connectedSince: null });
      if (this.stopped) return;
      this.timer = setTimeout(() => this.connect(), wait);
      // The same failure on every retry: a warning once, then debug (the status line repeats it).
      this.log[again ? 'debug' : 'warn']({ url, retry_in_ms: wait, waiting: this.waiting() }, message);
      this.emit('disconnected', message);
    });
  }

  private clearStable(): void {
    if (this.stable) clearTimeout(this.stable);
    this.stable = null;
  }

  /** For log lines: never throws, since a locked queue file must not break the connection's handlers. */
  private waiting(): number | null {
    try {
      return this.queue.summary().waiting;
    } catch {
      return null;
    }
  }
}

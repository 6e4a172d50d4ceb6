// Sends the simulated trucks' fixes as JT/T 808 terminals do, to the service's JT/T 808 gateway:
// one TCP connection per truck, registration 0x0100 (answered 0x8100) and authentication 0x0102,
// heartbeats 0x0002 when nothing else is sent (JT/T 808-2013 §5.2), a location report 0x0200 per
// fix, and the fixes a truck could not send while it was off the network as blind-area batches
// 0x0704 of type 1 (§8.50). As with MqttTransport, a fix counts as sent only once the platform has
// answered it (0x8001 result 0), and one that goes unanswered is kept and sent again: retransmitted
// on the same connection after the terminal's response timeout (§6.1), then, once the
// retransmissions are used up, after a new connection, as a real terminal's blind-area store does.
import net from 'node:net';
import { FrameSplitter } from '../../services/jt808/frame.ts';
import { MESSAGE, REGISTRATION_RESULT, RESULT } from '../../services/jt808/session.ts';
import {
  BATCH_TYPE,
  TERMINAL_RESULT,
  WASTE_SIM_LAYOUT,
  authenticationFrame,
  batchCapacity,
  batchFrame,
  heartbeatFrame,
  locationBody,
  locationFrame,
  logoutFrame,
  parsePlatformMessage,
  registrationFrame,
  retransmissionTimeouts,
  terminalResponseFrame,
  wasteSimItems,
  type Edition,
  type PlatformMessage,
  type TerminalFix,
  type TerminalHeader,
} from '../../services/jt808/terminal.ts';
import type { Outgoing } from '../engine/noise.ts';
import { DeliveryQueue, type QueuedDevice } from './delivery-queue.ts';

/** Who a truck's terminal says it is at registration and in every header. */
export interface TerminalIdentity {
  phone: string;
  edition: Edition;
  model: string;
  plate: string;
}

export interface Jt808TransportOptions {
  /** tcp://host:port of the gateway. */
  url: string;
  terminals: ReadonlyMap<string, TerminalIdentity>;
  /** The code a terminal authenticates with when its registration is answered "already registered" (the city's, provisioned). */
  authCode: string;
  /** Fixes sent and awaiting their 0x8001, over all terminals. */
  maxInFlight: number;
  /** Most connections being set up (TCP, registration, authentication) at once. */
  maxConnecting: number;
  /**
   * Reports one terminal has awaiting their answer at once (default 16): a terminal sends on
   * without waiting for each answer, but not its whole store at once, which would only wait in the
   * gateway's TCP buffer (it reads no further past jt808.maxUnacknowledgedPerConnection) and time out.
   */
  windowPerTerminal?: number;
  /** Heartbeat interval, terminal parameter 0x0001 (default 30 s). */
  heartbeatMs?: number;
  /** First response timeout, parameter 0x0002 (default 10 s). */
  responseTimeoutMs?: number;
  /** Retransmissions of an unanswered message, parameter 0x0003 (default 2). */
  retransmissions?: number;
  /** How long registration and authentication may take before the connection is given up (default 30 s). */
  handshakeTimeoutMs?: number;
  /** Wait before connecting again after a lost connection, a random time in [min, max) ms (default 1-3 s). */
  reconnectDelayMs?: [number, number];
  /** A text message 0x8300 the platform sent a truck (answered 0x0001 already). */
  onText?: (deviceId: string, text: string, flag: number) => void;
}

/** Suzhou, the simulated city: GB/T 2260 division code 320500, as registration splits it (§8.5). */
const PROVINCE = 32;
const CITY = 500;
/** JT/T 415 plate colours: 2 yellow, which heavy goods vehicles carry; 0 no plate. */
const YELLOW_PLATE = 2;
const SOFTWARE_VERSION = 'waste-sim 1';

/** One simulated message (a publish), and how many of its fixes the platform has yet to answer. */
interface Origin {
  at: number;
  left: number;
}

/** One fix to send. */
interface Entry {
  origin: Origin;
  /** Its 0x0200 body (also one item of a 0x0704). */
  body: Buffer;
  /** Goes in a blind-area batch 0x0704: the fixes of a dead zone, and any a lost connection kept from being sent or answered. */
  stored: boolean;
  /** Counted among the pending messages that hold the simulation back (oldestPendingAt). */
  counted: boolean;
}

/** A message sent and awaiting the platform's answer. */
interface Sent {
  serial: number;
  messageId: number;
  frame: Buffer;
  entries: Entry[];
  /** Retransmissions done so far. */
  attempt: number;
  deadline: number;
  onAnswer?: (result: number) => void;
}

interface Terminal extends QueuedDevice {
  id: string;
  identity: TerminalIdentity;
  socket: net.Socket | null;
  queue: Entry[];
  sent: Map<number, Sent>;
  /** Has been authenticated once: fixes queued while it is not are blind-area data. */
  everUp: boolean;
  serial: number;
  /** Authentication code: from the 0x8100 answer, or the city's; null until the terminal registered. */
  code: string | null;
  /** The registration or authentication awaiting its answer. */
  handshake: { serial: number; messageId: number } | null;
  lastSentAt: number;
  /** Paused after a negative answer, until this wall time. */
  pausedUntil: number;
}

/** The trucks' terminals, one per simulated truck (DeliveryQueue's devices). */
export class Jt808Transport extends DeliveryQueue<Terminal> {
  /** Text messages 0x8300 received (and answered). */
  texts = 0;
  /** Messages written, by kind (retransmissions counted apart), for the run's summary. */
  readonly frames = { registration: 0, authentication: 0, location: 0, batch: 0, heartbeat: 0, retransmitted: 0, logout: 0 };
  private readonly host: string;
  private readonly port: number;
  private readonly timeouts: number[];
  private readonly heartbeatMs: number;
  private readonly handshakeTimeoutMs: number;
  private readonly reconnectDelayMs: [number, number];
  private readonly window: number;
  private ticker: NodeJS.Timeout | null = null;

  constructor(private readonly options: Jt808TransportOptions) {
    super(options);
    const url = new URL(options.url);
    if (url.protocol !== 'tcp:' || !url.hostname || !url.port) throw new Error(`the JT/T 808 gateway's address must be tcp://host:port, not ${options.url}`);
    this.host = url.hostname.replace(/^\[(.*)\]$/, '$1');
    this.port = Number(url.port);
    this.timeouts = retransmissionTimeouts(options.responseTimeoutMs ?? 10_000, options.retransmissions ?? 2);
    this.heartbeatMs = options.heartbeatMs ?? 30_000;
    this.handshakeTimeoutMs = options.handshakeTimeoutMs ?? 30_000;
    this.reconnectDelayMs = options.reconnectDelayMs ?? [1000, 3000];
    this.window = options.windowPerTerminal ?? 16;
  }

  send(message: Outgoing): void {
    const terminal = this.terminal(message.deviceId);
    if (message.kind === 'reconnect') return this.drop(terminal, message.downForMs);
    const fixes = Array.isArray(message.payload) ? message.payload : [message.payload];
    const origin: Origin = { at: message.at, left: fixes.length };
    // A terminal keeps what it could not send while off the network and back-fills it in batches;
    // the fixes taken before its first connection (the run has just started) are sent one by one.
    const stored = Array.isArray(message.payload) || (terminal.everUp && terminal.state !== 'up');
    for (const payload of fixes) {
      const entry: Entry = { origin, body: locationBody(terminalFix(payload)), stored, counted: false };
      this.count(entry, !terminal.down);
      terminal.queue.push(entry);
      this.stats.queued++;
    }
    if (fixes.length === 0) this.stats.acknowledged++;
    this.pump(terminal);
  }

  /** Logs every terminal out (0x0003) and closes its connection, once close() has delivered what it could. */
  protected async disconnectAll(): Promise<void> {
    await Promise.all([...this.devices.values()].map((terminal) => this.logout(terminal)));
    if (this.ticker) clearInterval(this.ticker);
    this.ticker = null;
  }

  private terminal(id: string): Terminal {
    let terminal = this.devices.get(id);
    if (!terminal) {
      const identity = this.options.terminals.get(id);
      if (!identity) throw new Error(`${id} has no terminal phone number; generate the city again (npm run sim -- city) to give its trucks one`);
      terminal = { id, identity, socket: null, state: 'idle', queue: [], sent: new Map(), down: false, returnTimer: null, everUp: false, serial: 0, code: null, handshake: null, lastSentAt: 0, pausedUntil: 0 };
      this.devices.set(id, terminal);
    }
    return terminal;
  }

  private count(entry: Entry, counted: boolean): void {
    if (entry.counted === counted) return;
    entry.counted = counted;
    this.countPending(entry.origin.at, counted ? 1 : -1);
  }

  protected countQueued(terminal: Terminal, counted: boolean): void {
    for (const entry of terminal.queue) this.count(entry, counted);
  }

  private header(terminal: Terminal): TerminalHeader {
    terminal.serial = (terminal.serial + 1) & 0xffff;
    return { phone: terminal.identity.phone, edition: terminal.identity.edition, serial: terminal.serial };
  }

  protected deliver(terminal: Terminal): void {
    if (Date.now() < terminal.pausedUntil) return;
    while (terminal.queue.length > 0 && this.roomInFlight() && unansweredReports(terminal) < this.window) {
      if (!terminal.queue[0]!.stored) {
        const entry = terminal.queue.shift()!;
        const header = this.header(terminal);
        this.transmit(terminal, { serial: header.serial, messageId: MESSAGE.location, frame: locationFrame(header, entry.body), entries: [entry], attempt: 0, deadline: 0 });
        this.frames.location++;
        continue;
      }
      // As many stored fixes as one 0x0704 holds without sub-packages (1,023 body bytes).
      let stored = 0;
      while (stored < terminal.queue.length && terminal.queue[stored]!.stored) stored++;
      const n = batchCapacity(terminal.queue.slice(0, stored).map((e) => e.body));
      const entries = terminal.queue.splice(0, n);
      const header = this.header(terminal);
      this.transmit(terminal, { serial: header.serial, messageId: MESSAGE.batchLocation, frame: batchFrame(header, BATCH_TYPE.blindArea, entries.map((e) => e.body)), entries, attempt: 0, deadline: 0 });
      this.frames.batch++;
    }
    this.holdBack(terminal, terminal.queue.length > 0);
  }

  private transmit(terminal: Terminal, sent: Sent): void {
    this.stats.queued -= sent.entries.length;
    this.stats.inFlight += sent.entries.length;
    sent.deadline = Date.now() + this.timeouts[0]!;
    terminal.sent.set(sent.serial, sent);
    this.write(terminal, sent.frame);
  }

  private write(terminal: Terminal, frame: Buffer): void {
    terminal.lastSentAt = Date.now();
    terminal.socket?.write(frame);
  }

  protected connect(terminal: Terminal): void {
    this.ticker ??= setInterval(() => this.tick(), Math.max(10, Math.min(1000, this.timeouts[0]! / 4, this.heartbeatMs / 4)));
    this.ticker.unref();
    const socket = net.connect({ host: this.host, port: this.port, noDelay: true, keepAlive: true });
    terminal.socket = socket;
    this.stats.connects++;
    const splitter = new FrameSplitter(4096);
    let settled = false;
    const settle = () => {
      if (settled) return;
      settled = true;
      clearTimeout(handshakeTimer);
      this.connectEnded();
    };
    const handshakeTimer = setTimeout(() => {
      this.stats.lastError = `${terminal.id}: no answer to ${terminal.handshake?.messageId === MESSAGE.registration ? 'the registration' : 'the authentication'} within ${this.handshakeTimeoutMs} ms`;
      socket.destroy();
    }, this.handshakeTimeoutMs);
    handshakeTimer.unref();
    socket.once('connect', () => this.startHandshake(terminal));
    socket.on('data', (chunk: Buffer) => {
      for (const content of splitter.push(chunk).frames) {
        let message: PlatformMessage;
        try {
          message = parsePlatformMessage(content);
        } catch (error) {
          this.stats.lastError = `${terminal.id}: a frame from the gateway was refused: ${(error as Error).message}`;
          continue;
        }
        if (terminal.socket !== socket) return;
        this.receive(terminal, message, settle);
      }
    });
    socket.on('error', (error) => {
      this.stats.lastError = `${terminal.id}: ${error.message}`;
    });
    socket.once('close', () => {
      if (!settled) this.stats.connectFailures++;
      settle();
      if (terminal.socket !== socket) return;
      this.lost(terminal);
    });
  }

  /** Registers when the terminal has no code yet, else authenticates. */
  private startHandshake(terminal: Terminal): void {
    const header = this.header(terminal);
    const { identity } = terminal;
    if (terminal.code === null) {
      terminal.handshake = { serial: header.serial, messageId: MESSAGE.registration };
      this.frames.registration++;
      this.write(
        terminal,
        registrationFrame(header, { province: PROVINCE, city: CITY, manufacturer: WASTE_SIM_LAYOUT.manufacturer, model: identity.model, terminalId: identity.phone.slice(-7), plateColour: identity.plate ? YELLOW_PLATE : 0, plate: identity.plate }),
      );
    } else {
      terminal.handshake = { serial: header.serial, messageId: MESSAGE.authentication };
      this.frames.authentication++;
      this.write(terminal, authenticationFrame(header, { code: terminal.code, imei: `86${identity.phone.padStart(13, '0')}`, softwareVersion: SOFTWARE_VERSION }));
    }
  }

  private receive(terminal: Terminal, message: PlatformMessage, settle: () => void): void {
    const handshake = terminal.handshake;
    if (message.kind === 'registration') {
      if (!handshake || handshake.messageId !== MESSAGE.registration || message.serial !== handshake.serial) return;
      terminal.handshake = null;
      if (message.result === REGISTRATION_RESULT.ok && message.code) terminal.code = message.code;
      // Registered before (or provisioned with the city's code at import): the city's code it is.
      else if (message.result === REGISTRATION_RESULT.terminalRegistered) terminal.code = this.options.authCode;
      else {
        const why = message.result === REGISTRATION_RESULT.ok ? 'accepted without an authentication code' : `refused with result ${message.result} (${REGISTRATION_REFUSALS[message.result] ?? 'unknown'})`;
        this.stats.lastError = `${terminal.id}: registration of terminal ${terminal.identity.phone} ${why}`;
        terminal.socket?.destroy();
        return;
      }
      this.startHandshake(terminal);
      return;
    }
    if (message.kind === 'response') {
      if (handshake && handshake.messageId === MESSAGE.authentication && message.serial === handshake.serial && message.messageId === MESSAGE.authentication) {
        terminal.handshake = null;
        if (message.result !== RESULT.ok) {
          this.stats.lastError = `${terminal.id}: authentication of terminal ${terminal.identity.phone} refused (result ${message.result})`;
          // Registers again next time: the answer says which code to use.
          terminal.code = null;
          terminal.socket?.destroy();
          return;
        }
        settle();
        terminal.state = 'up';
        terminal.everUp = true;
        this.stats.connected++;
        this.pump(terminal);
        return;
      }
      const sent = terminal.sent.get(message.serial);
      if (!sent || sent.messageId !== message.messageId) return;
      terminal.sent.delete(message.serial);
      this.answered(terminal, sent, message.result);
      return;
    }
    // Anything else the platform sends is answered (§8.1): a text is shown (0x0001 ok); what a
    // simulated terminal cannot do is "not supported".
    const answered = { serial: message.header.serial, messageId: message.header.messageId };
    if (message.kind === 'text') {
      this.texts++;
      this.options.onText?.(terminal.id, message.text, message.flag);
    }
    this.write(terminal, terminalResponseFrame(this.header(terminal), answered, message.kind === 'text' ? TERMINAL_RESULT.ok : TERMINAL_RESULT.unsupported));
  }

  private answered(terminal: Terminal, sent: Sent, result: number): void {
    sent.onAnswer?.(result);
    if (sent.entries.length === 0) return;
    this.stats.inFlight -= sent.entries.length;
    if (result === RESULT.ok || result === RESULT.alarmAcknowledged) {
      for (const entry of sent.entries) {
        this.count(entry, false);
        if (--entry.origin.left === 0) this.stats.acknowledged++;
      }
    } else {
      // Not taken (e.g. the service could not make it durable): kept, and sent again after a pause.
      this.stats.failed++;
      this.stats.lastError = `${terminal.id}: the gateway answered 0x${sent.messageId.toString(16).padStart(4, '0')} with result ${result}`;
      terminal.queue.unshift(...sent.entries);
      this.stats.queued += sent.entries.length;
      const [min, max] = this.reconnectDelayMs;
      const pause = min + Math.random() * (max - min);
      terminal.pausedUntil = Date.now() + pause;
      // The pause ends when the timer fires: a timer may fire a fraction of a millisecond before Date.now() says it is due.
      setTimeout(() => {
        terminal.pausedUntil = 0;
        this.pump(terminal);
      }, pause).unref();
    }
    this.afterAnswer(terminal);
  }

  /** Retransmits what is unanswered past its timeout; gives the connection up after the last retransmission; beats when idle. */
  private tick(): void {
    const now = Date.now();
    for (const terminal of this.devices.values()) {
      if (terminal.state !== 'up' || !terminal.socket) continue;
      let giveUp = false;
      for (const sent of terminal.sent.values()) {
        if (sent.deadline > now) continue;
        if (sent.attempt + 1 >= this.timeouts.length) {
          giveUp = true;
          break;
        }
        sent.attempt++;
        sent.deadline = now + this.timeouts[sent.attempt]!;
        this.frames.retransmitted++;
        this.write(terminal, sent.frame);
      }
      if (giveUp) {
        this.stats.lastError = `${terminal.id}: no answer from the gateway after ${this.timeouts.length - 1} retransmissions; connecting again`;
        terminal.socket.destroy();
        continue;
      }
      // §5.2: with no other message going out, the terminal beats at its heartbeat interval.
      if (now - terminal.lastSentAt >= this.heartbeatMs) {
        const header = this.header(terminal);
        this.transmit(terminal, { serial: header.serial, messageId: MESSAGE.heartbeat, frame: heartbeatFrame(header), entries: [], attempt: 0, deadline: 0 });
        this.frames.heartbeat++;
      }
    }
  }

  /** The connection is gone: what was sent and not answered is kept, as blind-area data, to go again. */
  private lost(terminal: Terminal): void {
    if (terminal.state === 'up') this.stats.connected--;
    terminal.socket = null;
    terminal.handshake = null;
    terminal.pausedUntil = 0;
    const unanswered = [...terminal.sent.values()].sort((a, b) => serialAge(terminal.serial, b.serial) - serialAge(terminal.serial, a.serial)).flatMap((s) => s.entries);
    terminal.sent.clear();
    if (unanswered.length > 0) {
      for (const entry of unanswered) {
        entry.stored = true;
        this.count(entry, !terminal.down);
      }
      terminal.queue.unshift(...unanswered);
      this.stats.inFlight -= unanswered.length;
      this.stats.queued += unanswered.length;
      this.stats.failed += unanswered.length;
      this.wakeWaiters();
    }
    for (const entry of terminal.queue) entry.stored ||= terminal.everUp;
    if (terminal.state === 'down') return;
    terminal.state = 'idle';
    if (terminal.queue.length > 0 && !this.closing) {
      // Lost the connection (or could not set it up): try again shortly.
      terminal.state = 'down';
      const [min, max] = this.reconnectDelayMs;
      setTimeout(
        () => {
          if (terminal.down || terminal.state !== 'down') return;
          terminal.state = 'idle';
          this.pump(terminal);
        },
        min + Math.random() * (max - min),
      ).unref();
    }
  }

  /** A dropped connection (noise): cut without logging out; back after a while. */
  private drop(terminal: Terminal, downForMs: number): void {
    if (terminal.state !== 'up' || !terminal.socket) return;
    this.goDown(terminal, downForMs);
    terminal.socket.destroy();
  }

  /** Logs a connected terminal out (0x0003, §8.7) and waits briefly for the answer; closes any other connection. */
  private async logout(terminal: Terminal): Promise<void> {
    const socket = terminal.socket;
    if (!socket) return;
    if (terminal.state === 'up') {
      const header = this.header(terminal);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 2000);
        socket.once('close', resolve);
        terminal.sent.set(header.serial, { serial: header.serial, messageId: MESSAGE.logout, frame: Buffer.alloc(0), entries: [], attempt: 0, deadline: Infinity, onAnswer: () => (clearTimeout(timer), resolve()) });
        this.frames.logout++;
        this.write(terminal, logoutFrame(header));
      });
    }
    await new Promise<void>((resolve) => {
      if (socket.destroyed) return resolve();
      socket.once('close', () => resolve());
      socket.end();
      setTimeout(() => socket.destroy(), 1000).unref();
    });
  }
}

const REGISTRATION_REFUSALS: Record<number, string> = {
  [REGISTRATION_RESULT.vehicleRegistered]: 'the vehicle is registered to another terminal',
  [REGISTRATION_RESULT.noSuchVehicle]: 'no such vehicle',
  [REGISTRATION_RESULT.noSuchTerminal]: 'no such terminal: is the truck provisioned with this phone number?',
};

/** Location reports sent and not yet answered (heartbeats and the logout left out). */
function unansweredReports(terminal: Terminal): number {
  let n = 0;
  for (const sent of terminal.sent.values()) if (sent.entries.length > 0) n++;
  return n;
}

/** How long ago (in serials) `serial` was issued, the latest being `current`: sorts across the wrap at 0xffff. */
function serialAge(current: number, serial: number): number {
  return (current - serial + 0x10000) & 0xffff;
}

/** A simulated truck fix (the MQTT contract's fields) as a terminal reports it. */
export function terminalFix(payload: Record<string, unknown>): TerminalFix {
  const loadKg = typeof payload.load_kg === 'number' ? payload.load_kg : undefined;
  return {
    ts: payload.ts as number,
    lat: payload.lat as number,
    lon: payload.lon as number,
    speedKmh: payload.speed_kmh as number,
    heading: payload.heading as number,
    ignition: payload.ignition === true,
    // Status bits 8-9 say empty or loaded where the truck weighs its load; the weight itself goes
    // in the vendor item. Trucks without a load sensor leave them 0, as real terminals do.
    loadState: loadKg !== undefined && loadKg > 0 ? 3 : 0,
    items: wasteSimItems({ coverClosed: payload.cover_closed as boolean | undefined, tipperUp: payload.tipper_up as boolean | undefined, loadKg }),
  };
}

export type EditionChoice = Edition | 'mixed';

/**
 * The trucks' terminals of a city bundle: phone number and model from its devices, plate from its
 * trucks. "mixed" gives every other phone number (even last digit 2013, odd 2019) each edition,
 * as a city's fleet mixes terminals bought before and after 2019.
 */
export function terminalsOf(bundle: Record<string, unknown>, edition: EditionChoice): Map<string, TerminalIdentity> {
  const plates = new Map(((bundle.trucks ?? []) as { device_id?: string; plate?: string }[]).map((t) => [t.device_id, t.plate ?? '']));
  const terminals = new Map<string, TerminalIdentity>();
  for (const device of (bundle.devices ?? []) as { id: string; class: string; jt808_phone?: string; jt808_model?: string }[]) {
    if (device.class !== 'trucks' || !device.jt808_phone) continue;
    const phone = device.jt808_phone;
    terminals.set(device.id, {
      phone,
      edition: edition === 'mixed' ? (Number(phone.at(-1)) % 2 === 0 ? 2013 : 2019) : edition,
      model: device.jt808_model ?? WASTE_SIM_LAYOUT.model,
      plate: plates.get(device.id) ?? '',
    });
  }
  return terminals;
}

// One terminal's TCP connection to the gateway: frames in, answers out, and the session's state
// (JT/T 808-2013 §5: a terminal registers once, then authenticates on every connection before it
// may report; it sends heartbeats while it has nothing else to say). What a connection may cost is
// bounded: a frame by jt808.maxFrameBytes, its sub-packages by jt808.maxReassemblyBytes, its
// unanswered reports by jt808.maxUnacknowledgedPerConnection (then the socket is not read, so TCP
// holds the terminal back), and a login by the gateway's verifier limits.
import type net from 'node:net';
import type { Logger } from 'pino';
import type { ExtensionLayout, Jt808Config } from '../config/schema.ts';
import type { RejectReason, Rejection } from '../contract/rejections.ts';
import { DeviceOfflineError } from '../contract/downlink.ts';
import type { Intake } from '../contract/source.ts';
import { topics } from '../contract/topics.ts';
import { layoutFor } from './extensions.ts';
import { fixOf, type FixPayload } from './fixes.ts';
import { FrameError, FrameSplitter, frame, verified } from './frame.ts';
import { readHeader, writeMessage, type Header } from './header.ts';
import { decodeBatch, decodeLocation } from './location.ts';
import { Reassembly, ReassemblyError } from './reassembly.ts';
import { MESSAGE, REGISTRATION_RESULT, RESULT, decodeAuthentication, decodeRegistration, decodeTerminalResponse, platformResponse, registrationResponse, type Registration } from './session.ts';
import type { TerminalRecord } from './terminals.ts';

/** What a connection asks of the gateway that holds it. */
export interface ConnectionHost {
  readonly config: Jt808Config;
  readonly layouts: readonly ExtensionLayout[];
  readonly intake: Intake;
  readonly log: Logger;
  /** Frames read (each counted once, whatever became of it) and refused by the gateway itself. */
  readonly counts: { frames: number; refusedFrames: number };
  clock(): number;
  /**
   * Registers the terminal (0x0100): the result code and, when accepted, the authentication code
   * issued; null when the registration is put off for load or back-off (not answered: the terminal
   * sends it again after its response timeout).
   */
  register(phone: string, registration: Registration, address: string): Promise<{ result: number; code?: string } | null>;
  /** Checks an authentication code (0x0102): the terminal when it matches, else the reason it does not. */
  authenticate(phone: string, code: string, address: string, signal: AbortSignal): Promise<{ terminal: TerminalRecord } | { refused: string; busy?: boolean }>;
  /**
   * This connection now speaks for the terminal's device: the device's older connection is closed.
   * Returns whether there was one (the device was online already).
   */
  claim(connection: TerminalConnection): boolean;
  /** A login refused for load, for the gateway's summary warning. */
  busyRefusal(reason: string): void;
  /** The connection closed; returns whether it was the device's current one (its close means offline). */
  release(connection: TerminalConnection): boolean;
}

/** Frames waiting behind a login or a full window before the socket is no longer read. */
const MAX_QUEUED_FRAMES = 256;
/** Wrong authentication codes one connection may send before it is closed. */
const MAX_FAILED_AUTHENTICATIONS = 3;
/** Answers not yet taken by the peer's TCP window before the connection is no longer read: a peer that never reads cannot make them pile up. */
const MAX_UNSENT_BYTES = 64 * 1024;
/**
 * Refusals one connection reports one by one per REPORT_WINDOW_MS; the rest are summed per reason
 * and reported once at the end of the window (or of the connection). Each is counted at once
 * either way: three bytes of garbage made one report each, 56 times their size on the bus.
 */
const REPORTS_PER_WINDOW = 20;
const REPORT_WINDOW_MS = 10_000;

const hex4 = (id: number): string => `0x${id.toString(16).padStart(4, '0')}`;

interface Downlink {
  messageId: number;
  resolve: (result: number) => void;
  reject: (error: Error) => void;
  timer: NodeJS.Timeout;
}

export class TerminalConnection {
  /** The terminal phone number of the connection's first frame; every later frame must carry it. */
  phone: string | null = null;
  terminal: TerminalRecord | null = null;
  private edition: 2013 | 2019 = 2013;
  private protocolVersion: number | null = null;
  private layout: ExtensionLayout | null = null;
  private readonly splitter: FrameSplitter;
  private readonly reassembly: Reassembly;
  private readonly queue: Buffer[] = [];
  private draining = false;
  private unacknowledged = 0;
  private paused = false;
  private closed = false;
  /** A logout, or a last wrong code: nothing more is taken while the connection winds down. */
  private ending = false;
  private failedAuthentications = 0;
  private reportWindowStart = 0;
  private reportsInWindow = 0;
  private readonly withheld = new Map<RejectReason, { first: Rejection; count: number }>();
  private serial = 0;
  private readonly downlinks = new Map<number, Downlink>();
  private readonly login = new AbortController();
  private readonly loginTimer: NodeJS.Timeout;

  constructor(
    private readonly socket: net.Socket,
    private readonly host: ConnectionHost,
    readonly address: string,
  ) {
    const { config } = host;
    this.splitter = new FrameSplitter(config.maxFrameBytes);
    this.reassembly = new Reassembly(config.maxReassemblyBytes, config.idleTimeoutMs);
    this.loginTimer = setTimeout(() => {
      this.host.log.info({ phone: this.phone, address }, `JT/T 808 connection closed: no authentication within ${config.loginTimeoutMs} ms`);
      this.close();
    }, config.loginTimeoutMs);
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 60_000);
    socket.setTimeout(config.idleTimeoutMs, () => {
      this.host.log.info({ phone: this.phone, deviceId: this.terminal?.deviceId, address }, `JT/T 808 connection idle for ${config.idleTimeoutMs} ms: closed`);
      this.close();
    });
    socket.on('data', (chunk: Buffer) => this.receive(chunk));
    socket.on('drain', () => {
      this.flowControl();
      void this.drain();
    });
    socket.on('error', () => socket.destroy());
    socket.once('close', () => this.closedByPeer());
  }

  get deviceId(): string | null {
    return this.terminal?.deviceId ?? null;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.socket.destroy();
  }

  /** Sends a text message (0x8300, JT/T 808-2013 §8.37); resolves with the terminal's 0x0001 result. */
  sendText(body: Buffer): Promise<number> {
    if (this.closed || this.ending || !this.terminal) return Promise.reject(new DeviceOfflineError(`truck ${this.deviceId ?? '?'} has no JT/T 808 terminal connected`));
    const serial = this.send(MESSAGE.text, body);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.downlinks.delete(serial);
        reject(new Error(`the terminal did not answer the text message within ${this.host.config.responseTimeoutMs} ms`));
      }, this.host.config.responseTimeoutMs);
      this.downlinks.set(serial, { messageId: MESSAGE.text, resolve, reject, timer });
    });
  }

  /** The edition the terminal speaks: the text message body differs (session.ts textBody). */
  get speaks(): 2013 | 2019 {
    return this.edition;
  }

  private receive(chunk: Buffer): void {
    if (this.ending) return;
    const { frames, oversized } = this.splitter.push(chunk);
    this.host.counts.frames += frames.length + oversized;
    for (let i = 0; i < oversized; i++) this.reject('frame_too_large', `a frame grew past ${this.host.config.maxFrameBytes} bytes (jt808.maxFrameBytes) without its closing 0x7e; dropped`, null);
    for (const f of frames) this.queue.push(f);
    for (const expired of this.reassembly.expire(this.host.clock())) this.reject('truncated', expired, null);
    this.flowControl();
    void this.drain();
  }

  /** Handles queued frames in order; a login or registration is finished before the next frame. */
  private async drain(): Promise<void> {
    if (this.draining) return;
    this.draining = true;
    try {
      // A report past the window waits for an answer to free a place (report() drains again then).
      // Nor are frames taken while the peer leaves our answers unread ('drain' goes on).
      while (this.queue.length > 0 && !this.closed && !this.ending && this.unacknowledged < this.host.config.maxUnacknowledgedPerConnection && this.socket.writableLength <= MAX_UNSENT_BYTES) {
        const pending = this.handleFrame(this.queue.shift()!);
        // A registration or login that fails for a reason nobody foresaw (the registry's disk) is
        // refused and logged; the connection goes on with its next frame.
        if (pending) await pending.catch((error: Error) => this.reject('unprocessable', `the frame could not be handled: ${error.message.slice(0, 200)}`, null));
        this.flowControl();
      }
    } finally {
      this.draining = false;
    }
  }

  private flowControl(): void {
    const full = this.queue.length >= MAX_QUEUED_FRAMES || this.unacknowledged >= this.host.config.maxUnacknowledgedPerConnection || this.socket.writableLength > MAX_UNSENT_BYTES;
    if (full && !this.paused) {
      this.paused = true;
      this.socket.pause();
    } else if (!full && this.paused) {
      this.paused = false;
      this.socket.resume();
    }
  }

  private handleFrame(content: Buffer): Promise<void> | null {
    let header: Header;
    let body: Buffer;
    try {
      ({ header, body } = readHeader(verified(content)));
    } catch (error) {
      if (error instanceof FrameError) this.reject(error.reason, error.message, null);
      else this.reject('unprocessable', `the frame could not be read: ${(error as Error).message.slice(0, 200)}`, null);
      return null;
    }
    if (this.phone === null) {
      this.phone = header.phone;
      this.edition = header.edition;
      this.protocolVersion = header.protocolVersion;
    } else if (header.phone !== this.phone) {
      // One connection is one terminal (§5.1): a frame naming another would let one terminal
      // speak for any other once it had authenticated itself.
      this.reject('not_authenticated', `a frame for terminal ${header.phone} on the connection of terminal ${this.phone}; dropped`, header.messageId);
      return null;
    }
    if (header.encryption !== 0) {
      this.reject('unknown_message', `message ${hex4(header.messageId)} is encrypted (attributes bits 10-12 = ${header.encryption}); the gateway takes plain bodies only`, header.messageId);
      this.answer(header.serial, header.messageId, RESULT.unsupported);
      return null;
    }
    let serials = [header.serial];
    if (header.subpackage) {
      // Before authentication nothing is held for a terminal: what a stranger sends costs only its read.
      if (!this.terminal) {
        this.reject('not_authenticated', `sub-package of message ${hex4(header.messageId)} before the terminal authenticated (0x0102); dropped`, header.messageId);
        return null;
      }
      try {
        const whole = this.reassembly.add(header, body, this.host.clock());
        if (!whole) return null;
        ({ header, body, serials } = whole);
      } catch (error) {
        if (!(error instanceof ReassemblyError)) throw error;
        this.reject('frame_too_large', error.message, header.messageId);
        return null;
      }
    }
    try {
      return this.dispatch(header, body, serials);
    } catch (error) {
      if (!(error instanceof FrameError)) throw error;
      this.reject(error.reason, `message ${hex4(header.messageId)}: ${error.message}`, header.messageId);
      for (const serial of serials) this.answer(serial, header.messageId, RESULT.malformed);
      return null;
    }
  }

  private dispatch(header: Header, body: Buffer, serials: number[]): Promise<void> | null {
    switch (header.messageId) {
      case MESSAGE.registration:
        return this.registerTerminal(header, decodeRegistration(body, header.edition));
      case MESSAGE.authentication:
        return this.authenticate(header, decodeAuthentication(body, header.edition).code);
      case MESSAGE.heartbeat:
        this.answer(header.serial, header.messageId, this.terminal ? RESULT.ok : RESULT.failed);
        return null;
      case MESSAGE.logout:
        // §8.4: the terminal logs out (its registration is cancelled on the platform of the
        // standard's model); here the registration stays, the session ends.
        this.answer(header.serial, header.messageId, RESULT.ok);
        this.end();
        return null;
      case MESSAGE.terminalResponse:
        this.answered(decodeTerminalResponse(body));
        return null;
      case MESSAGE.location:
      case MESSAGE.batchLocation:
        if (!this.terminal) {
          this.reject('not_authenticated', `location report ${hex4(header.messageId)} before the terminal authenticated (0x0102); dropped`, header.messageId);
          for (const serial of serials) this.answer(serial, header.messageId, RESULT.failed);
          return null;
        }
        this.report(header, header.messageId === MESSAGE.location ? [decodeLocation(body)] : decodeBatch(body).reports, serials);
        return null;
      default:
        this.reject('unknown_message', `message id ${hex4(header.messageId)} is not one the gateway takes (docs/jt808.md lists them)`, header.messageId);
        for (const serial of serials) this.answer(serial, header.messageId, RESULT.unsupported);
        return null;
    }
  }

  private async registerTerminal(header: Header, registration: Registration): Promise<void> {
    const outcome = await this.host.register(header.phone, registration, this.address);
    if (this.closed || !outcome) return;
    const { result, code } = outcome;
    this.send(MESSAGE.registrationResponse, registrationResponse(header.serial, result, code));
    // "Registered already" is what every terminal that registers on each start hears: not news.
    if (result !== REGISTRATION_RESULT.ok) this.host.log[result === REGISTRATION_RESULT.terminalRegistered ? 'debug' : 'info']({ phone: header.phone, result, address: this.address }, 'JT/T 808 registration refused');
  }

  private async authenticate(header: Header, code: string): Promise<void> {
    const outcome = await this.host.authenticate(header.phone, code, this.address, this.login.signal);
    if (this.closed) return;
    if ('refused' in outcome) {
      this.answer(header.serial, header.messageId, RESULT.failed);
      // A login refused because logins are queueing (a fleet reconnecting at once) is tried again
      // by the terminal; only a wrong code counts towards closing the connection.
      if (outcome.busy) {
        this.host.log.debug({ phone: header.phone, address: this.address }, `JT/T 808 authentication put off: ${outcome.refused}`);
        this.host.busyRefusal(outcome.refused);
        return;
      }
      this.failedAuthentications++;
      this.host.log.warn({ phone: header.phone, address: this.address }, `JT/T 808 authentication refused: ${outcome.refused}`);
      if (this.failedAuthentications >= MAX_FAILED_AUTHENTICATIONS) this.end();
      return;
    }
    clearTimeout(this.loginTimer);
    const first = this.terminal === null;
    this.terminal = outcome.terminal;
    this.layout = layoutFor(outcome.terminal.model, this.host.layouts);
    const wasOnline = this.host.claim(this);
    this.answer(header.serial, header.messageId, RESULT.ok);
    if (first && !wasOnline) this.recordStatus(true);
  }

  /**
   * Hands the fixes to the pipeline and answers 0x8001 only once they are durable (the spool's
   * group commit, as a PUBACK over MQTT). Without an answer the terminal keeps the report in its
   * blind-area store and sends it again (JT/T 808-2013 §8.18, parameters 0x0002-0x0007), so a
   * crash between the report and the answer loses nothing the terminal was told had arrived.
   */
  private report(header: Header, reports: ReturnType<typeof decodeLocation>[], serials: number[]): void {
    const terminal = this.terminal!;
    const fixes: FixPayload[] = [];
    let unpositioned = 0;
    for (const report of reports) {
      if (report.positioned) fixes.push(fixOf(report, this.layout));
      else unpositioned++;
    }
    if (unpositioned > 0) {
      // Status bit 1 clear (table 25): no GNSS fix, so latitude and longitude are not where the truck is.
      this.reject('no_position', `${unpositioned} of the ${reports.length} location reports of message ${hex4(header.messageId)} had no GNSS fix (status bit 1 clear); not stored`, header.messageId, unpositioned);
    }
    const answerAll = (result: number) => {
      for (const serial of serials) this.answer(serial, header.messageId, result);
    };
    if (fixes.length === 0) return answerAll(RESULT.ok);
    const { intake } = this.host;
    if (!intake.accepting()) {
      // Not answered: the terminal keeps the report and sends it again later.
      this.host.log.warn({ deviceId: terminal.deviceId }, 'spool full: JT/T 808 report not answered, the terminal keeps it');
      return;
    }
    this.unacknowledged++;
    const payload = Buffer.from(JSON.stringify(header.messageId === MESSAGE.location ? fixes[0] : fixes));
    intake
      .ingest({ topic: topics.data('trucks', terminal.deviceId), payload, receivedAt: this.host.clock() })
      .then(
        // Refused fixes were reported by the pipeline; a report none of whose fixes was taken is
        // answered "message has error" (table 5, 2), so the terminal does not send it again.
        (outcome) => answerAll(outcome.accepted > 0 || outcome.rejected === 0 ? RESULT.ok : RESULT.malformed),
        (error: Error) => this.host.log.error({ deviceId: terminal.deviceId, error: error.message }, 'could not make a JT/T 808 report durable; not answered, the terminal sends it again'),
      )
      .finally(() => {
        this.unacknowledged--;
        this.flowControl();
        void this.drain();
      });
  }

  private answered(response: { serial: number; messageId: number; result: number }): void {
    const downlink = this.downlinks.get(response.serial);
    if (!downlink || downlink.messageId !== response.messageId) return;
    clearTimeout(downlink.timer);
    this.downlinks.delete(response.serial);
    downlink.resolve(response.result);
  }

  private answer(serial: number, messageId: number, result: number): void {
    this.send(MESSAGE.platformResponse, platformResponse(serial, messageId, result));
  }

  /** Sends a platform message in the terminal's own edition; returns its serial number. */
  private send(messageId: number, body: Buffer): number {
    const serial = this.serial;
    this.serial = (this.serial + 1) & 0xffff;
    if (this.closed || this.phone === null) return serial;
    // One group commit answers many reports of a connection at once: corked until the next tick,
    // their answers leave in one write instead of one system call each.
    if (this.socket.writableCorked === 0) {
      this.socket.cork();
      process.nextTick(() => this.socket.uncork());
    }
    this.socket.write(frame(writeMessage({ messageId, edition: this.edition, protocolVersion: this.protocolVersion, phone: this.phone, serial }, body)));
    return serial;
  }

  /** Answers what was sent, then closes; frames still queued or arriving are not taken. */
  private end(): void {
    this.ending = true;
    this.queue.length = 0;
    this.socket.end();
  }

  private reject(reason: RejectReason, message: string, messageId: number | null, count = 1): void {
    this.host.counts.refusedFrames++;
    const now = this.host.clock();
    const rejection: Rejection = {
      reason,
      message,
      deviceId: this.terminal?.deviceId ?? null,
      topic: `jt808/${this.phone ?? 'unknown'}${messageId === null ? '' : `/${hex4(messageId)}`}`,
      receivedAt: now,
      ...(count > 1 ? { count } : {}),
    };
    if (now - this.reportWindowStart >= REPORT_WINDOW_MS) {
      this.reportWithheld();
      this.reportWindowStart = now;
      this.reportsInWindow = 0;
    }
    if (this.reportsInWindow < REPORTS_PER_WINDOW) {
      this.reportsInWindow++;
      this.host.intake.reject(rejection);
      return;
    }
    this.host.intake.countRefused(reason, count);
    const group = this.withheld.get(reason);
    if (group) group.count += count;
    else this.withheld.set(reason, { first: rejection, count });
  }

  /** The refusals withheld in the window, one report per reason with how many it stands for. */
  private reportWithheld(): void {
    for (const [reason, { first, count }] of this.withheld) {
      this.host.intake.reject({ ...first, message: `${count} more refused as ${reason} on this connection within ${REPORT_WINDOW_MS / 1000} s; the first: ${first.message}`, count }, true);
    }
    this.withheld.clear();
  }

  private recordStatus(online: boolean): void {
    const deviceId = this.terminal!.deviceId;
    this.host.intake.deviceStatus('trucks', deviceId, online).catch((error: Error) => this.host.log.warn({ deviceId, error: error.message }, 'could not record device status'));
  }

  private closedByPeer(): void {
    this.closed = true;
    clearTimeout(this.loginTimer);
    this.login.abort(new Error('the connection closed'));
    for (const [serial, downlink] of this.downlinks) {
      clearTimeout(downlink.timer);
      downlink.reject(new DeviceOfflineError('the terminal disconnected before it answered'));
      this.downlinks.delete(serial);
    }
    for (const given of this.reassembly.expire(this.host.clock(), true)) this.reject('truncated', given, null);
    this.reportWithheld();
    if (this.host.release(this) && this.terminal) this.recordStatus(false);
  }
}

// The indicator behind a serial-device server (串口服务器, e.g. a USR-TCP232 box in TCP server
// mode): the box sends the indicator's bytes unchanged over a TCP connection. Reconnected with
// backoff when it drops; a connection silent for `idleTimeoutMs` is dropped too, since an
// indicator in continuous mode never stops sending and a box that lost power leaves the socket
// half-open for a long time.
import net from 'node:net';
import { Backoff, type BackoffOptions } from '../backoff.ts';
import type { LineHandlers, LineInput } from './line.ts';

export interface TcpOptions {
  host: string;
  port: number;
  idleTimeoutMs: number;
}

export function explainTcpError(error: NodeJS.ErrnoException, where: string): string {
  switch (error.code) {
    case 'ECONNREFUSED':
      return `the serial-device server at ${where} refused the connection: check its IP address and the port of its TCP server mode, and that no other program holds its only connection`;
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'ETIMEDOUT':
      return `cannot reach the serial-device server at ${where}: check its power, its network cable and its IP address (${error.code})`;
    case 'ENOTFOUND':
      return `no such host ${where}: check --tcp`;
    case 'ECONNRESET':
      return `the serial-device server at ${where} closed the connection`;
    default:
      return `serial-device server ${where}: ${error.message}`;
  }
}

export class TcpInput implements LineInput {
  readonly description: string;
  private socket: net.Socket | null = null;
  private timer: NodeJS.Timeout | null = null;
  private stopped = true;
  private isUp = false;
  private readonly backoff: Backoff;

  constructor(
    private readonly options: TcpOptions,
    private readonly handlers: LineHandlers,
    reconnect: BackoffOptions,
  ) {
    this.description = `tcp ${options.host}:${options.port}`;
    this.backoff = new Backoff(reconnect);
  }

  get connected(): boolean {
    return this.isUp;
  }

  start(): void {
    this.stopped = false;
    this.connect();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const socket = this.socket;
    this.socket = null;
    this.isUp = false;
    if (socket && !socket.destroyed) {
      const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
      socket.destroy();
      await closed;
    }
  }

  private connect(): void {
    const where = `${this.options.host}:${this.options.port}`;
    const socket = net.connect({ host: this.options.host, port: this.options.port });
    this.socket = socket;
    let problem: string | null = null;
    socket.setKeepAlive(true, 10_000);
    socket.setTimeout(this.options.idleTimeoutMs);
    socket.on('connect', () => {
      this.isUp = true;
      this.handlers.up();
    });
    socket.on('data', (chunk) => {
      // Bytes, not just a connection: a box that accepts but has no indicator behind it is not up.
      this.backoff.reset();
      this.handlers.data(chunk);
    });
    socket.on('timeout', () => {
      problem = `no data from the serial-device server at ${where} for ${this.options.idleTimeoutMs / 1000} s: is the indicator on, in continuous mode (XK3190: tF=0), at the box's baud rate?`;
      socket.destroy();
    });
    socket.on('error', (error) => (problem ??= explainTcpError(error, where)));
    socket.on('close', () => {
      if (this.socket !== socket) return;
      this.socket = null;
      this.isUp = false;
      if (this.stopped) return;
      const wait = this.backoff.next();
      this.timer = setTimeout(() => this.connect(), wait);
      this.handlers.down(problem ?? `the serial-device server at ${where} closed the connection`, wait);
    });
  }
}

// The indicator on a serial port (an RS-232 port or a USB-serial adapter), reopened with backoff
// when it fails or is unplugged, or when it has carried no byte for `idleTimeoutMs`: an indicator in
// continuous mode never stops sending, and a port whose other end went away does not always say
// so (a pseudo-terminal whose master closed can read as empty for ever in @serialport/bindings-cpp,
// which loops on a read of 0 bytes).
import { SerialPort } from 'serialport';
import { Backoff, type BackoffOptions } from '../backoff.ts';
import type { LineHandlers, LineInput } from './line.ts';

export interface SerialOptions {
  path: string;
  baudRate: number;
  dataBits: 5 | 6 | 7 | 8;
  parity: 'none' | 'even' | 'odd' | 'mark' | 'space';
  stopBits: 1 | 1.5 | 2;
  idleTimeoutMs: number;
}

/** What an error opening or reading the port means for the person at the weighbridge-house PC. */
export function explainSerialError(error: Error & { disconnected?: boolean }, path: string): string {
  const text = error.message;
  if (text.startsWith('no data from the indicator')) return text;
  if (error.disconnected) return `serial port ${path} was disconnected (USB-serial adapter unplugged?): plug it back in`;
  if (/ENOENT|No such file/i.test(text)) return `serial port ${path} does not exist: is the USB-serial adapter plugged in? List the ports with "ls /dev/ttyUSB* /dev/ttyS* /dev/serial/by-id/" and give the right one with --serial (${text})`;
  if (/EACCES|Permission denied/i.test(text)) return `no permission to open ${path}: add the agent's user to the dialout group ("sudo usermod -aG dialout USER", then log in again) (${text})`;
  if (/EBUSY|busy|lock/i.test(text)) return `${path} is held by another program (another weighing program, a terminal): close it (${text})`;
  return `serial port ${path}: ${text}`;
}

export class SerialInput implements LineInput {
  readonly description: string;
  private port: SerialPort | null = null;
  private timer: NodeJS.Timeout | null = null;
  private idle: NodeJS.Timeout | null = null;
  private stopped = true;
  private isUp = false;
  private readonly backoff: Backoff;

  constructor(
    private readonly options: SerialOptions,
    private readonly handlers: LineHandlers,
    reconnect: BackoffOptions,
  ) {
    const parity = options.parity === 'none' ? 'N' : options.parity[0]!.toUpperCase();
    this.description = `${options.path} ${options.baudRate} ${options.dataBits}${parity}${options.stopBits}`;
    this.backoff = new Backoff(reconnect);
  }

  get connected(): boolean {
    return this.isUp;
  }

  start(): void {
    this.stopped = false;
    this.open();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.idle) clearTimeout(this.idle);
    this.timer = null;
    this.idle = null;
    const port = this.port;
    this.port = null;
    this.isUp = false;
    if (port?.isOpen) await new Promise<void>((resolve) => port.close(() => resolve()));
  }

  private open(): void {
    const { path, baudRate, dataBits, parity, stopBits } = this.options;
    const port = new SerialPort({ path, baudRate, dataBits, parity, stopBits, autoOpen: false });
    this.port = port;
    let failed = false;
    const fail = (error: Error) => {
      if (failed || this.port !== port) return;
      failed = true;
      if (this.idle) clearTimeout(this.idle);
      this.idle = null;
      this.isUp = false;
      this.port = null;
      if (port.isOpen) port.close(() => undefined);
      if (this.stopped) return;
      const wait = this.backoff.next();
      this.timer = setTimeout(() => this.open(), wait);
      this.handlers.down(explainSerialError(error, path), wait);
    };
    const silent = new Error(`no data from the indicator on ${path} for ${this.options.idleTimeoutMs / 1000} s: is it on, in continuous mode (XK3190: tF=0), at ${baudRate} baud, and wired TXD to RXD?`);
    const watch = () => {
      if (this.idle) clearTimeout(this.idle);
      this.idle = setTimeout(() => fail(silent), this.options.idleTimeoutMs);
    };
    port.on('data', (chunk: Buffer) => {
      watch();
      this.handlers.data(chunk);
    });
    port.on('error', fail);
    port.on('close', (error?: Error) => fail(error ?? new Error('closed')));
    port.open((error) => {
      if (error) return fail(error);
      if (this.port !== port) return;
      this.isUp = true;
      this.backoff.reset();
      watch();
      this.handlers.up();
    });
  }
}

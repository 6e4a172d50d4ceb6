// A terminal's side of a JT/T 808 connection for tests: a real TCP socket to the gateway, frames
// sent as given (captured hex, or built with services/jt808/terminal.ts), and the platform's
// answers parsed as they arrive.
import net from 'node:net';
import { FrameSplitter } from '../../services/jt808/frame.ts';
import { parsePlatformMessage, type PlatformMessage } from '../../services/jt808/terminal.ts';

export class TestTerminal {
  readonly received: PlatformMessage[] = [];
  closed = false;
  private readonly splitter = new FrameSplitter(1 << 16);
  private waiters: { match: (m: PlatformMessage) => boolean; resolve: (m: PlatformMessage) => void }[] = [];
  private closeWaiters: (() => void)[] = [];

  private constructor(readonly socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => {
      for (const content of this.splitter.push(chunk).frames) {
        const message = parsePlatformMessage(content);
        this.received.push(message);
        this.waiters = this.waiters.filter((w) => (w.match(message) ? (w.resolve(message), false) : true));
      }
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      this.closed = true;
      for (const resolve of this.closeWaiters.splice(0)) resolve();
    });
  }

  static connect(port: number): Promise<TestTerminal> {
    return new Promise((resolve, reject) => {
      const socket = net.connect(port, '127.0.0.1', () => resolve(new TestTerminal(socket)));
      socket.once('error', reject);
    });
  }

  send(frame: Buffer | string): void {
    this.socket.write(typeof frame === 'string' ? Buffer.from(frame, 'hex') : frame);
  }

  /** The next platform message (received from now on, or already received and not yet taken) matching. */
  next(match: (m: PlatformMessage) => boolean = () => true, timeoutMs = 5000): Promise<PlatformMessage> {
    const index = this.received.findIndex(match);
    if (index !== -1) return Promise.resolve(this.received.splice(index, 1)[0]!);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no matching platform message within ${timeoutMs} ms; received: ${JSON.stringify(this.received.map((m) => m.kind))}`)), timeoutMs);
      this.waiters.push({
        match,
        resolve: (m) => {
          clearTimeout(timer);
          this.received.splice(this.received.indexOf(m), 1);
          resolve(m);
        },
      });
    });
  }

  /** The 0x8001 answering the message with this serial. */
  async response(serial: number, timeoutMs = 5000): Promise<{ messageId: number; result: number }> {
    const m = await this.next((x) => x.kind === 'response' && x.serial === serial, timeoutMs);
    return m as Extract<PlatformMessage, { kind: 'response' }>;
  }

  untilClosed(timeoutMs = 5000): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the gateway did not close the connection within ${timeoutMs} ms`)), timeoutMs);
      this.closeWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  close(): void {
    this.socket.destroy();
  }
}

// What the agent needs of the indicator's line, whether a serial port (serial.ts) or a serial-device
// server over TCP (tcp.ts): bytes as they come, and word when the line goes up or down. A line that
// goes down is opened again after a backoff, for as long as the agent runs.

export interface LineHandlers {
  data(chunk: Buffer): void;
  up(): void;
  /** `message` says what is wrong and how to fix it; `retryInMs` when the next attempt is. */
  down(message: string, retryInMs: number): void;
}

export interface LineInput {
  /** The line as configured, e.g. "/dev/ttyUSB0 9600 8N1" or "tcp 192.168.1.7:8234". */
  readonly description: string;
  readonly connected: boolean;
  start(): void;
  stop(): Promise<void>;
}

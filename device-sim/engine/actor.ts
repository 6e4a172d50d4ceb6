// What every simulated device is to the scheduler: it wakes at a simulated time, says what it
// sends, and when it wants to wake next.
import type { DeviceClass } from '../../services/contract/topics.ts';
import type { LabelSink } from '../world/labels.ts';

/** A message as the device means it, before noise: `at` is the true (simulated) time. */
export interface TrueMessage {
  at: number;
  deviceId: string;
  deviceClass: DeviceClass;
  /** Payload fields without `ts`; the noise layer stamps ts with the device's own clock. */
  payload: Record<string, unknown>;
  /** Whether the device is moving (trucks); dead zones only swallow fixes on the move. */
  moving?: boolean;
}

export interface Output {
  message(message: TrueMessage): void;
  label: LabelSink;
}

export interface Actor {
  readonly deviceId: string;
  /** First wake at or after t0. */
  start(t0: number): number;
  /** Does what is due at `now`; returns the next wake time. */
  wake(now: number, out: Output): number;
  /** The run ended at `now`: report what is still going on. */
  finish(now: number, out: Output): void;
}

// Why a message (or one reading of a batch) was refused, and the report that says so. Each
// rejection is counted per reason, logged, and published on waste/ingest/rejected; none of it
// reaches InfluxDB. Every source (contract/source.ts) reports its refusals in these terms.

export const REJECT_REASONS = {
  invalid_json: 'the payload is not valid UTF-8 JSON',
  invalid_payload: 'a field is missing or has the wrong type',
  out_of_range: 'a value is outside its physical range',
  invalid_timestamp: 'ts is not epoch ms or ISO-8601 with an offset',
  timestamp_in_future: 'ts is too far in the future (device clock wrong?)',
  timestamp_too_old: 'ts is older than the accepted age',
  weights_inconsistent: 'net_kg differs from gross_kg - tare_kg by more than the tolerance',
  payload_too_large: 'the payload is larger than the accepted size',
  batch_too_large: 'the array holds more readings than accepted in one message',
  empty_batch: 'the array holds no readings',
  unknown_topic: 'the topic is not part of the MQTT contract',
  unauthorised_topic: 'the device published on a topic that is not its own',
  unprocessable: 'the message made the service fail; it was refused so that the device does not resend it for ever',
  // JT/T 808 frames (services/jt808/frame.ts FrameError, gateway.ts).
  frame_too_large: 'the JT/T 808 frame is larger than the accepted size',
  bad_escape: 'the JT/T 808 frame holds 0x7d not followed by 0x01 or 0x02',
  bad_check_code: 'the JT/T 808 check code does not match the frame',
  truncated: 'the JT/T 808 frame ends before a field it announces',
  wrong_length: 'a JT/T 808 length, count or BCD field does not match what the frame holds',
  unknown_message: 'the JT/T 808 message id is not one the gateway takes',
  not_authenticated: 'the JT/T 808 terminal sent data before it authenticated, or for another terminal',
  no_position: 'the JT/T 808 location report had no GNSS fix (status bit 1 clear)',
  // LoRaWAN network-server events (services/lorawan/bridge.ts).
  invalid_event: 'the network-server event is not the JSON its documentation describes',
  unknown_dev_eui: 'no device in the registry has the LoRaWAN DevEUI',
  device_disabled: 'the device is disabled in the registry',
  undecodable: "the LoRaWAN payload is not what the device's sensor model sends",
} as const;

export type RejectReason = keyof typeof REJECT_REASONS;

export interface Rejection {
  reason: RejectReason;
  /** A sentence a person understands, naming the field and the value where there is one. */
  message: string;
  deviceId: string | null;
  topic: string;
  /** Position in an array payload, when one reading of a batch was refused. */
  index?: number;
  /** How many readings this report stands for, when it sums up the rest of a batch (more than one). */
  count?: number;
  /** Epoch ms when the service received the message. */
  receivedAt: number;
}

/** The JSON published on waste/ingest/rejected (documented in docs/mqtt.md). */
export function rejectionPayload(rejection: Rejection): string {
  return JSON.stringify({
    device_id: rejection.deviceId,
    topic: rejection.topic,
    reason: rejection.reason,
    message: rejection.message,
    ...(rejection.index === undefined ? {} : { index: rejection.index }),
    ...(rejection.count === undefined ? {} : { count: rejection.count }),
    received_at: new Date(rejection.receivedAt).toISOString(),
  });
}

/** Counts per reason since start, and since the last drain (for ingest_stats). */
export class RejectionCounter {
  private readonly total = new Map<RejectReason, number>();
  private readonly recent = new Map<RejectReason, number>();

  add(reason: RejectReason, count = 1): void {
    this.total.set(reason, (this.total.get(reason) ?? 0) + count);
    this.recent.set(reason, (this.recent.get(reason) ?? 0) + count);
  }

  totals(): Record<string, number> {
    return Object.fromEntries(this.total);
  }

  /** Counts since the previous call. */
  drain(): Map<RejectReason, number> {
    const copy = new Map(this.recent);
    this.recent.clear();
    return copy;
  }
}

// Turns one MQTT message into validated readings and rejections. Pure: no I/O, the clock is an
// argument. A batch (array payload) is judged reading by reading, so one bad fix in a back-filled
// batch does not cost the good ones.
import type { z } from 'zod';
import {
  binReadingSchema,
  statusSchema,
  truckFixSchema,
  weighTicketSchema,
  type Reading,
} from '../contract/payloads.ts';
import { parseTimestamp } from '../contract/timestamps.ts';
import type { DeviceTopic } from '../contract/topics.ts';
import type { IngestConfig } from '../config/schema.ts';
import type { RejectReason, Rejection } from '../contract/rejections.ts';

export type ValidationLimits = Pick<
  IngestConfig,
  'maxPayloadBytes' | 'maxBatchItems' | 'maxAgeMs' | 'maxFutureMs' | 'netToleranceKg'
>;

export interface ValidationResult {
  readings: Reading[];
  rejections: Rejection[];
  /**
   * What subscribers may see of the message: the payload as sent when all of it was accepted, the
   * accepted readings of a partly refused batch, or null when nothing was accepted.
   */
  forward: Buffer | null;
}

const dataSchemas = {
  bins: { kind: 'bin', schema: binReadingSchema },
  trucks: { kind: 'truck', schema: truckFixSchema },
  scales: { kind: 'ticket', schema: weighTicketSchema },
} as const;

/** Longest quote of a refused value in a rejection message. */
const PREVIEW_CHARS = 60;
/** Issues named in one rejection message; the rest are counted. */
const MESSAGE_ISSUES = 5;
/** Refused readings of one message whose values are quoted (those reported one by one, and more). */
const QUOTED_REFUSALS = 20;

/**
 * A short quote of a refused value, for the rejection message. Never recursive and never longer
 * than PREVIEW_CHARS, whatever the value: a 10,000-deep array quoted with JSON.stringify
 * overflowed the stack while the batch's valid readings waited.
 */
function preview(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > PREVIEW_CHARS ? `${value.slice(0, PREVIEW_CHARS)}…` : value);
  if (Array.isArray(value)) return `an array of ${value.length}`;
  if (typeof value === 'object' && value !== null) return 'an object';
  return String(value).slice(0, PREVIEW_CHARS);
}

function describeIssues(error: z.ZodError): { reason: RejectReason; message: string } {
  const first = error.issues[0];
  const reason: RejectReason = first?.code === 'too_small' || first?.code === 'too_big' ? 'out_of_range' : 'invalid_payload';
  const named = error.issues.slice(0, MESSAGE_ISSUES).map((issue) => {
    const field = issue.path.slice(0, 4).join('.') || 'payload';
    const got = 'input' in issue && issue.input !== undefined ? `, got ${preview(issue.input)}` : '';
    return `${field} ${issue.message}${got}`;
  });
  const more = error.issues.length - named.length;
  return { reason, message: named.join('; ') + (more > 0 ? `; and ${more} more` : '') };
}

function rejection(reason: RejectReason, message: string, topic: DeviceTopic, rawTopic: string, receivedAt: number, index?: number): Rejection {
  const base = { reason, message, deviceId: topic.deviceId, topic: rawTopic, receivedAt };
  return index === undefined ? base : { ...base, index };
}

function refuse(reason: RejectReason, message: string, topic: DeviceTopic, rawTopic: string, receivedAt: number): ValidationResult {
  return { readings: [], rejections: [rejection(reason, message, topic, rawTopic, receivedAt)], forward: null };
}

type Refusal = { reason: RejectReason; message: string };

/**
 * Validates one reading of a data channel; returns it, or why it was refused. Never throws: a
 * reading that makes validation fail in a way nobody foresaw is refused on its own, so it neither
 * costs its batch's valid readings nor leaves the message unacknowledged for the device to resend
 * for ever.
 */
function validateReading(item: unknown, topic: DeviceTopic, receivedAt: number, limits: ValidationLimits, quote = true): Reading | Refusal {
  try {
    return checkReading(item, topic, receivedAt, limits, quote);
  } catch (error) {
    return { reason: 'invalid_payload', message: `the reading could not be validated (${preview((error as Error).message)})` };
  }
}

function checkReading(item: unknown, topic: DeviceTopic, receivedAt: number, limits: ValidationLimits, quote: boolean): Reading | Refusal {
  if (typeof item !== 'object' || item === null || Array.isArray(item)) return { reason: 'invalid_payload', message: 'each reading must be a JSON object' };
  const { kind, schema } = dataSchemas[topic.deviceClass];
  // Parsed again to quote the offending values only when refused: reportInput slows zod's fast
  // path. Only the first readings refused in a message are quoted: the rest are summed up anyway.
  const parsed = schema.safeParse(item);
  if (!parsed.success) return describeIssues(quote ? schema.safeParse(item, { reportInput: true }).error! : parsed.error);
  const ts = parseTimestamp(parsed.data.ts);
  if (!ts.ok) return { reason: 'invalid_timestamp', message: ts.message };
  if (ts.ms > receivedAt + limits.maxFutureMs) {
    const ahead = Math.round((ts.ms - receivedAt) / 1000);
    return { reason: 'timestamp_in_future', message: `ts ${new Date(ts.ms).toISOString()} is ${ahead} s ahead of the server clock; check the device clock` };
  }
  if (ts.ms < receivedAt - limits.maxAgeMs) {
    const hours = Math.round((receivedAt - ts.ms) / 3_600_000);
    return {
      reason: 'timestamp_too_old',
      message: `ts ${new Date(ts.ms).toISOString()} is ${hours} h old; readings older than ${Math.round(limits.maxAgeMs / 3_600_000)} h are not accepted`,
    };
  }
  if (kind === 'ticket') {
    const t = parsed.data as z.infer<typeof weighTicketSchema>;
    if (t.tare_kg > t.gross_kg || Math.abs(t.gross_kg - t.tare_kg - t.net_kg) > limits.netToleranceKg) {
      return { reason: 'weights_inconsistent', message: `net_kg ${t.net_kg} != gross_kg ${t.gross_kg} - tare_kg ${t.tare_kg} (tolerance ${limits.netToleranceKg} kg)` };
    }
  }
  // The fields the payload lacks go before the spread: added after it, they make V8 give the
  // reading about 560 bytes instead of 200, and the rules keep 15 minutes of fixes in memory.
  return { kind, deviceId: topic.deviceId, ...(parsed.data as object), ts: ts.ms } as Reading;
}

export function validateMessage(
  topic: DeviceTopic,
  rawTopic: string,
  payload: Buffer,
  receivedAt: number,
  limits: ValidationLimits,
): ValidationResult {
  if (payload.length > limits.maxPayloadBytes) {
    return refuse('payload_too_large', `payload is ${payload.length} bytes; at most ${limits.maxPayloadBytes} are accepted`, topic, rawTopic, receivedAt);
  }
  let body: unknown;
  try {
    body = JSON.parse(payload.toString('utf8'));
  } catch (error) {
    return refuse('invalid_json', `payload is not valid JSON: ${(error as Error).message}`, topic, rawTopic, receivedAt);
  }

  if (topic.channel === 'status') {
    const parsed = statusSchema.safeParse(body, { reportInput: true });
    if (!parsed.success) return refuse('invalid_payload', describeIssues(parsed.error).message, topic, rawTopic, receivedAt);
    return { readings: [{ kind: 'status', deviceId: topic.deviceId, deviceClass: topic.deviceClass, ts: receivedAt, online: parsed.data.online }], rejections: [], forward: payload };
  }

  if (!Array.isArray(body)) {
    const result = validateReading(body, topic, receivedAt, limits);
    return 'kind' in result ? { readings: [result], rejections: [], forward: payload } : refuse(result.reason, result.message, topic, rawTopic, receivedAt);
  }
  if (body.length === 0) return refuse('empty_batch', 'payload is an empty array', topic, rawTopic, receivedAt);
  if (body.length > limits.maxBatchItems) {
    return refuse('batch_too_large', `payload holds ${body.length} readings; at most ${limits.maxBatchItems} are accepted per message`, topic, rawTopic, receivedAt);
  }
  const readings: Reading[] = [];
  const rejections: Rejection[] = [];
  const kept: unknown[] = [];
  for (let i = 0; i < body.length; i++) {
    const result = validateReading(body[i], topic, receivedAt, limits, rejections.length < QUOTED_REFUSALS);
    if ('kind' in result) {
      readings.push(result);
      kept.push(body[i]);
    } else rejections.push(rejection(result.reason, result.message, topic, rawTopic, receivedAt, i));
  }
  if (rejections.length === 0) return { readings, rejections, forward: payload };
  return { readings, rejections, forward: readings.length === 0 ? null : forwardable(kept) };
}

/**
 * The accepted readings of a partly refused batch, as subscribers get them; null when they cannot
 * be written again (an unknown field nested deeper than JSON.stringify's stack goes: ignored by
 * validation, it must not cost the readings being stored).
 */
function forwardable(kept: unknown[]): Buffer | null {
  try {
    return Buffer.from(JSON.stringify(kept));
  } catch {
    return null;
  }
}

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
import type { RejectReason, Rejection } from './rejections.ts';

export type ValidationLimits = Pick<
  IngestConfig,
  'maxPayloadBytes' | 'maxBatchItems' | 'maxAgeMs' | 'maxFutureMs' | 'netToleranceKg'
>;

export interface ValidationResult {
  readings: Reading[];
  rejections: Rejection[];
}

const dataSchemas = {
  bins: { kind: 'bin', schema: binReadingSchema },
  trucks: { kind: 'truck', schema: truckFixSchema },
  scales: { kind: 'ticket', schema: weighTicketSchema },
} as const;

function describeIssues(error: z.ZodError): { reason: RejectReason; message: string } {
  const first = error.issues[0];
  const reason: RejectReason = first?.code === 'too_small' || first?.code === 'too_big' ? 'out_of_range' : 'invalid_payload';
  const message = error.issues
    .map((issue) => {
      const field = issue.path.join('.') || 'payload';
      const got = 'input' in issue && issue.input !== undefined ? `, got ${JSON.stringify(issue.input)}` : '';
      return `${field} ${issue.message}${got}`;
    })
    .join('; ');
  return { reason, message };
}

export function validateMessage(
  topic: DeviceTopic,
  rawTopic: string,
  payload: Buffer,
  receivedAt: number,
  limits: ValidationLimits,
): ValidationResult {
  const readings: Reading[] = [];
  const rejections: Rejection[] = [];
  const reject = (reason: RejectReason, message: string, index?: number): ValidationResult => {
    rejections.push({ reason, message, deviceId: topic.deviceId, topic: rawTopic, receivedAt, ...(index === undefined ? {} : { index }) });
    return { readings, rejections };
  };

  if (payload.length > limits.maxPayloadBytes) {
    return reject('payload_too_large', `payload is ${payload.length} bytes; at most ${limits.maxPayloadBytes} are accepted`);
  }
  let body: unknown;
  try {
    body = JSON.parse(payload.toString('utf8'));
  } catch (error) {
    return reject('invalid_json', `payload is not valid JSON: ${(error as Error).message}`);
  }

  if (topic.channel === 'status') {
    const parsed = statusSchema.safeParse(body, { reportInput: true });
    if (!parsed.success) return reject('invalid_payload', describeIssues(parsed.error).message);
    readings.push({ kind: 'status', deviceId: topic.deviceId, deviceClass: topic.deviceClass, ts: receivedAt, online: parsed.data.online });
    return { readings, rejections };
  }

  const items = Array.isArray(body) ? body : [body];
  if (items.length === 0) return reject('empty_batch', 'payload is an empty array');
  if (items.length > limits.maxBatchItems) {
    return reject('batch_too_large', `payload holds ${items.length} readings; at most ${limits.maxBatchItems} are accepted per message`);
  }
  const { kind, schema } = dataSchemas[topic.deviceClass];
  const batchIndex = (i: number): number | undefined => (Array.isArray(body) ? i : undefined);

  items.forEach((item, i) => {
    if (typeof item !== 'object' || item === null || Array.isArray(item)) {
      reject('invalid_payload', 'each reading must be a JSON object', batchIndex(i));
      return;
    }
    const parsed = schema.safeParse(item, { reportInput: true });
    if (!parsed.success) {
      const { reason, message } = describeIssues(parsed.error);
      reject(reason, message, batchIndex(i));
      return;
    }
    const ts = parseTimestamp(parsed.data.ts);
    if (!ts.ok) {
      reject('invalid_timestamp', ts.message, batchIndex(i));
      return;
    }
    if (ts.ms > receivedAt + limits.maxFutureMs) {
      const ahead = Math.round((ts.ms - receivedAt) / 1000);
      reject('timestamp_in_future', `ts ${new Date(ts.ms).toISOString()} is ${ahead} s ahead of the server clock; check the device clock`, batchIndex(i));
      return;
    }
    if (ts.ms < receivedAt - limits.maxAgeMs) {
      const hours = Math.round((receivedAt - ts.ms) / 3_600_000);
      reject('timestamp_too_old', `ts ${new Date(ts.ms).toISOString()} is ${hours} h old; readings older than ${Math.round(limits.maxAgeMs / 3_600_000)} h are not accepted`, batchIndex(i));
      return;
    }
    if (kind === 'ticket') {
      const t = parsed.data as z.infer<typeof weighTicketSchema>;
      const difference = Math.abs(t.gross_kg - t.tare_kg - t.net_kg);
      if (t.tare_kg > t.gross_kg || difference > limits.netToleranceKg) {
        reject('weights_inconsistent', `net_kg ${t.net_kg} != gross_kg ${t.gross_kg} - tare_kg ${t.tare_kg} (tolerance ${limits.netToleranceKg} kg)`, batchIndex(i));
        return;
      }
    }
    readings.push({ ...(parsed.data as object), kind, deviceId: topic.deviceId, ts: ts.ms } as Reading);
  });
  return { readings, rejections };
}

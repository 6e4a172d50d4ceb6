// RabbitMQ's management API (rabbitmq_management, HTTP on port 15672): what the service asks of a
// cluster it is the authentication backend of (api/routes/broker-auth.ts): its connections, to
// close those of revoked devices (rabbitmq-revocation.ts), and whether the device partitions exist.
import { PARTITION_EXCHANGE } from '../ingest/rabbitmq-partitions.ts';

export interface RabbitmqManagementOptions {
  /** The management API of any node, e.g. http://rabbit-1:15672. */
  managementUrl: string;
  username: string;
  password: string;
}

const REQUEST_TIMEOUT_MS = 5000;

/** One request; resolves with the parsed answer of a GET, null for anything else or a 404 to a DELETE. */
export async function managementRequest(options: RabbitmqManagementOptions, method: 'GET' | 'DELETE', path: string, headers: Record<string, string> = {}): Promise<unknown> {
  const auth = Buffer.from(`${options.username}:${options.password}`).toString('base64');
  const response = await fetch(new URL(path, options.managementUrl), { method, headers: { authorization: `Basic ${auth}`, ...headers }, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS), redirect: 'error' });
  if (method === 'DELETE' && response.status === 404) return null; // gone already
  if (!response.ok) throw new Error(`${method} ${path}: HTTP ${response.status}`);
  return method === 'GET' ? response.json() : null;
}

/**
 * Whether the device partitions are declared: the partition exchange exists, `exchange` (the MQTT
 * plugin's) is bound to it, and it is bound to queues. Until then RabbitMQ would acknowledge
 * device messages that route nowhere, and keep none of them. Null when the API does not answer.
 */
export async function partitionsDeclared(options: RabbitmqManagementOptions, vhost: string, exchange: string): Promise<boolean | null> {
  const base = `/api/exchanges/${encodeURIComponent(vhost)}/${encodeURIComponent(PARTITION_EXCHANGE)}`;
  const exists = await fetch(new URL(base, options.managementUrl), { headers: { authorization: `Basic ${Buffer.from(`${options.username}:${options.password}`).toString('base64')}` }, signal: AbortSignal.timeout(5000) }).then((r) => r.status, () => null);
  if (exists === null || (exists !== 200 && exists !== 404)) return null;
  if (exists === 404) return false;
  try {
    const [incoming, outgoing] = (await Promise.all([managementRequest(options, 'GET', `${base}/bindings/destination`), managementRequest(options, 'GET', `${base}/bindings/source`)])) as { source: string; destination_type: string }[][];
    return incoming!.some((b) => b.source === exchange) && outgoing!.some((b) => b.destination_type === 'queue');
  } catch {
    return null;
  }
}

// Who may publish, subscribe and receive where. Pure functions, so the rules are tested on their own.
//   device:  publish under waste/{its class}/{its id}/ (except downlink), subscribe to and receive
//            its downlink (waste/{class}/{id}/downlink and below);
//   service: subscribe to and receive anything under waste/; publish alerts, ingest reports and
//            downlinks.
import { ROOT, type DeviceClass } from '../contract/topics.ts';

export type Identity =
  | { kind: 'device'; deviceId: string; deviceClass: DeviceClass }
  | { kind: 'service'; name: string };

export type PublishDecision = 'allow' | 'deny';

function devicePrefix(identity: { deviceId: string; deviceClass: DeviceClass }): string {
  return `${ROOT}/${identity.deviceClass}/${identity.deviceId}/`;
}

// A device may subscribe to its downlink topic itself as well as below it, so the service may
// publish on both.
const SERVICE_PUBLISH = [/^waste\/alerts\//, /^waste\/ingest\//, /^waste\/(bins|trucks|scales)\/[^/]+\/downlink(\/|$)/];

export function canPublish(identity: Identity, topic: string): PublishDecision {
  if (topic.startsWith('$')) return 'deny';
  if (identity.kind === 'service') return SERVICE_PUBLISH.some((re) => re.test(topic)) ? 'allow' : 'deny';
  const prefix = devicePrefix(identity);
  return topic.startsWith(prefix) && !topic.startsWith(`${prefix}downlink`) ? 'allow' : 'deny';
}

/** Whether `topic` (a filter or a topic name) lies within what `identity` may read. */
function readable(identity: Identity, topic: string): boolean {
  if (topic.startsWith('$')) return false;
  if (identity.kind === 'service') return topic.startsWith(`${ROOT}/`);
  const downlink = `${devicePrefix(identity)}downlink`;
  return topic === downlink || topic.startsWith(`${downlink}/`);
}

/** A device may subscribe to its downlink topics only; no wildcard may reach past them. */
export function canSubscribe(identity: Identity, filter: string): boolean {
  return readable(identity, filter);
}

/**
 * Whether a message on `topic` may be delivered to `identity`, whatever subscription or stored
 * session matched it: the broker's last check before a message leaves.
 */
export function canReceive(identity: Identity, topic: string): boolean {
  return readable(identity, topic);
}

// Who may publish and subscribe where. Pure functions, so the rules are tested on their own.
//   device:  publish under waste/{its class}/{its id}/ (except downlink/), subscribe to its downlink;
//   service: subscribe to anything under waste/; publish alerts, ingest reports and downlinks.
import { ROOT, type DeviceClass } from '../contract/topics.ts';

export type Identity =
  | { kind: 'device'; deviceId: string; deviceClass: DeviceClass }
  | { kind: 'service'; name: string };

export type PublishDecision = 'allow' | 'deny';

function devicePrefix(identity: { deviceId: string; deviceClass: DeviceClass }): string {
  return `${ROOT}/${identity.deviceClass}/${identity.deviceId}/`;
}

const SERVICE_PUBLISH = [/^waste\/alerts\//, /^waste\/ingest\//, /^waste\/(bins|trucks|scales)\/[^/]+\/downlink\//];

export function canPublish(identity: Identity, topic: string): PublishDecision {
  if (topic.startsWith('$')) return 'deny';
  if (identity.kind === 'service') return SERVICE_PUBLISH.some((re) => re.test(topic)) ? 'allow' : 'deny';
  const prefix = devicePrefix(identity);
  return topic.startsWith(prefix) && !topic.startsWith(`${prefix}downlink`) ? 'allow' : 'deny';
}

/** A device may subscribe to its downlink topics only; no wildcard may reach past them. */
export function canSubscribe(identity: Identity, filter: string): boolean {
  if (filter.startsWith('$')) return false;
  if (identity.kind === 'service') return filter.startsWith(`${ROOT}/`);
  const downlink = `${devicePrefix(identity)}downlink`;
  return filter === downlink || filter.startsWith(`${downlink}/`);
}

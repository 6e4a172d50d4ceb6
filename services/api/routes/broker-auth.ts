// /broker/rabbitmq/{user,vhost,resource,topic}: RabbitMQ's HTTP authentication backend
// (rabbitmq_auth_backend_http, RabbitMQ 3.10: POST, form-encoded, answered "allow" or "deny" in
// text/plain), so that a RabbitMQ cluster used as the device broker logs devices in and authorises
// their topics from the registry, by the same rules as the embedded broker (broker/acl.ts):
//  - a device publishes under waste/{its class}/{its id}/ only, and subscribes to its downlink only;
//    a disabled device, or a wrong secret, is refused (broker/device-logins.ts, with its bounds on
//    the work of logins);
//  - a service account (waste-…) reads anything under waste/ and publishes alerts, ingest reports
//    and downlinks;
//  - an MQTT subscriber's own queue (the MQTT plugin names it mqtt-subscription-{client id}qos{0,1})
//    is the only queue either may touch, and amq.topic (mqtt.exchange) the only exchange. The
//    service's own workers, which declare the partitions and consume them over AMQP, are accounts
//    internal to RabbitMQ, tried before this backend (docs/scale-out.md).
// The MQTT plugin turns a topic's '/' into '.' in routing keys, and a filter's '+' into '*'.
// These routes take no token: RabbitMQ cannot send one. They answer only the addresses in
// rabbitmq.authAllowFrom (the broker nodes; loopback by default), 403 to anyone else, and are not
// rate limited per address (every login of a cluster comes from a few addresses).
import net from 'node:net';
import type { FastifyPluginAsync } from 'fastify';
import { canPublish, canSubscribe, type Identity } from '../../broker/acl.ts';
import type { CredentialDirectory } from '../../broker/credentials.ts';
import type { DeviceLogins } from '../../broker/device-logins.ts';

export interface BrokerAuthOptions {
  logins: DeviceLogins;
  credentials: CredentialDirectory;
  /** Addresses and subnets (CIDR) that may ask. */
  allowFrom: readonly string[];
  /** The virtual host devices use (mqtt.vhost). */
  vhost: string;
  /** The exchange MQTT publishes go to (mqtt.exchange). */
  exchange: string;
  /**
   * False while the device partitions are not declared (no ingest worker has started on the
   * cluster yet): devices are refused meanwhile, since RabbitMQ would acknowledge their messages
   * and keep none. Absent: not checked.
   */
  partitionsReady?: () => Promise<boolean>;
}

const FORM_BYTES_MAX = 4096;

/** Parses the allow list: "10.0.0.0/8", "127.0.0.1", "::1", "fd00::/8". */
export function allowList(entries: readonly string[]): net.BlockList {
  const list = new net.BlockList();
  for (const entry of entries) {
    const [address, bits] = entry.split('/');
    const family = net.isIPv6(address!) ? 'ipv6' : 'ipv4';
    if (!net.isIP(address!)) throw new Error(`rabbitmq.authAllowFrom: ${entry} is not an address or a subnet`);
    if (bits === undefined) list.addAddress(address!, family);
    else list.addSubnet(address!, Number(bits), family);
  }
  return list;
}

/** An MQTT topic or filter from the MQTT plugin's routing key. */
function mqttTopic(routingKey: string): string {
  return routingKey.replaceAll('.', '/').replaceAll('*', '+');
}

export const brokerAuthRoutes: FastifyPluginAsync<BrokerAuthOptions> = async (app, options) => {
  const allowed = allowList(options.allowFrom);
  const { logins, credentials, vhost, exchange } = options;
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: FORM_BYTES_MAX }, (_request, body, done) => {
    done(null, Object.fromEntries(new URLSearchParams(body as string)));
  });
  app.addHook('onRequest', async (request, reply) => {
    const ip = request.ip.replace(/^::ffff:/, '');
    if (!allowed.check(ip, net.isIPv6(ip) ? 'ipv6' : 'ipv4')) {
      request.log.warn({ ip: request.ip, path: request.url }, 'a RabbitMQ authentication request from an address not in rabbitmq.authAllowFrom refused');
      return reply.code(403).type('text/plain').send('deny');
    }
  });

  /** Who a username is, from the registry; null for an unknown one or a disabled device. */
  const identityOf = (username: string): Identity | null => {
    const device = credentials.device(username);
    if (device) return device.enabled ? { kind: 'device', deviceId: device.id, deviceClass: device.class } : null;
    return credentials.service(username) ? { kind: 'service', name: username } : null;
  };
  const decide = (allow: boolean) => (allow ? 'allow' : 'deny');
  const route = { config: { rateLimit: false }, schema: { hide: true } } as const;
  type Form = Record<string, string | undefined>;

  app.post('/user', route, async (request, reply) => {
    const { username = '', password = '' } = (request.body ?? {}) as Form;
    const outcome = await logins.check(username, password, `rabbitmq ${request.ip}`);
    if (!outcome.ok) request.log.info({ username: username.slice(0, 64), refusal: outcome.refusal }, `RabbitMQ login refused: ${outcome.message}`);
    if (outcome.ok && outcome.identity.kind === 'device' && options.partitionsReady && !(await options.partitionsReady())) {
      request.log.warn({ username }, 'device login refused: the device partitions are not declared on the RabbitMQ cluster yet; start an ingest worker (rabbitmq.amqpUrls) first');
      return reply.type('text/plain').send('deny');
    }
    return reply.type('text/plain').send(decide(outcome.ok));
  });

  app.post('/vhost', route, async (request, reply) => {
    const { username = '', vhost: asked } = (request.body ?? {}) as Form;
    return reply.type('text/plain').send(decide(asked === vhost && identityOf(username) !== null));
  });

  app.post('/resource', route, async (request, reply) => {
    const { username = '', vhost: asked, resource, name = '', permission } = (request.body ?? {}) as Form;
    const identity = asked === vhost ? identityOf(username) : null;
    let allow = false;
    if (identity && resource === 'exchange') allow = name === exchange && (permission === 'write' || permission === 'read');
    if (identity && resource === 'queue') {
      // The MQTT plugin's queue for a subscriber: a device's client id must be its device id, a
      // service account's must start with its name.
      const own = identity.kind === 'device' ? new RegExp(`^mqtt-subscription-${escape(identity.deviceId)}qos[01]$`) : new RegExp(`^mqtt-subscription-${escape(identity.name)}(-[A-Za-z0-9_-]*)?qos[01]$`);
      allow = own.test(name);
    }
    if (identity && resource === 'topic') allow = name === exchange;
    return reply.type('text/plain').send(decide(allow));
  });

  app.post('/topic', route, async (request, reply) => {
    const form = (request.body ?? {}) as Form;
    const identity = form.vhost === vhost ? identityOf(form.username ?? '') : null;
    const topic = mqttTopic(form.routing_key ?? '');
    let allow = false;
    if (identity && form.name === exchange) {
      if (form.permission === 'write') allow = canPublish(identity, topic) === 'allow';
      else if (form.permission === 'read') allow = canSubscribe(identity, topic);
    }
    return reply.type('text/plain').send(decide(allow));
  });
};

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

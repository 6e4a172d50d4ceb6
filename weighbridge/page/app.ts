// The agent's local page and its API (fastify; the agent listens, tests inject):
//   GET  /              the page for the operator (page.ts)
//   GET  /api/status    AgentStatus as JSON
//   POST /api/plate     {"plate": "苏E12345", "weighing_id"?: 12} from the page
//   POST /api/void      {"weighing_id": 12}: the operator takes a wrong weighing out
//   POST /api/camera    a plate-recognition camera's push (camera.ts)
//
// Who may call what (docs/weighbridge.md "Plates"):
// - The operator's routes (/, /api/status, /api/plate, /api/void) answer requests from this PC (loopback)
//   only, or ones carrying the operator token: listening on the LAN for a camera must not let
//   anyone on the LAN set plates.
// - /api/camera needs the camera token when one is set, and one must be set to listen beyond
//   loopback (pageExposureProblem). Tokens are checked on the request line and headers, before
//   any body is read.
// - The Host header must name this agent (127.0.0.1, localhost, [::1], the configured host or
//   the address the connection came in on), so a web page whose name was rebound to 127.0.0.1
//   (DNS rebinding) gets nothing; a state-changing request with an Origin must come from such an
//   address too.
// - Only JSON bodies are parsed, so a web page elsewhere cannot post plates through the
//   operator's browser without a CORS preflight, which is never answered.
// No client may hold the agent: bodies, connections, request times and request rates are bounded.
import crypto from 'node:crypto';
import type { AddressInfo, Socket } from 'node:net';
import rateLimit from '@fastify/rate-limit';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from '../log.ts';
import { parsePlate } from '../weighing/plates.ts';
import { readCameraPush } from './camera.ts';
import { PAGE_HTML } from './page.ts';
import type { AgentStatus } from './status.ts';

export const PLATE_BODY_LIMIT = 4 * 1024;
/** A push without pictures is 1-2 KiB, with the plate's small crop some 10-30 KiB; a full picture does not fit: turn pictures off in the camera. */
export const CAMERA_BODY_LIMIT = 64 * 1024;
/** Open connections at once, and from one address other than this PC. */
export const MAX_CONNECTIONS = 64;
export const MAX_CONNECTIONS_PER_ADDRESS = 8;
/** A request must arrive whole, headers and body, within this. */
export const REQUEST_TIMEOUT_MS = 10_000;
/** Requests a minute from one address other than this PC: the page polls once a second, a camera pushes a few a minute. */
export const REQUESTS_PER_MINUTE = 300;

/** `saved: false`: kept in memory, since the queue file could not be written; saved once it can. */
export type PlateAnswer =
  | { ok: true; placed: 'weighing' | 'pass' | 'next'; weighing_id?: number; ticket_id?: string; until?: string; saved?: false }
  /** A plate the desk has already (a camera repeating its push): nothing changes; 200, so that the camera does not push it again. */
  | { ok: true; placed: 'ignored'; message: string }
  | { ok: false; status: 404 | 409; message: string };

export type VoidAnswer = { ok: true; voided: number; saved?: false } | { ok: false; status: 404 | 409; message: string };

export interface PageDeps {
  status(): AgentStatus;
  offerPlate(plate: string, source: string, weighingId: number | null): PlateAnswer;
  voidWeighing(weighingId: number): VoidAnswer;
  /** The address the page listens on (page.host). */
  host: string;
  /** When set, camera pushes must carry it (?token=… or Authorization: Bearer …). */
  cameraToken: string | null;
  /** When set, operator requests from other machines than this PC may carry it instead. */
  operatorToken: string | null;
  log: Logger;
}

const isLoopbackAddress = (address: string | undefined): boolean => !!address && /^(127\.|::1$|::ffff:127\.)/.test(address);

/** True for an address that only this PC can reach. */
export function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '[::1]' || isLoopbackAddress(host);
}

/** Why the page must not be served as configured, or null. */
export function pageExposureProblem(host: string, cameraToken: string | null, operatorToken: string | null): string | null {
  if (operatorToken !== null && operatorToken.length < 16) return 'WEIGHBRIDGE_OPERATOR_TOKEN must be at least 16 characters';
  if (isLoopbackHost(host) || cameraToken !== null) return null;
  return `the page would listen on ${host}, reachable from the network, with no camera token: anyone there could push plates. Set a camera token (--camera-token-file FILE or WEIGHBRIDGE_CAMERA_TOKEN), or keep --page-host 127.0.0.1 (docs/weighbridge.md "Plates")`;
}

function tokenMatches(expected: string | null, given: string | undefined): boolean {
  if (expected === null || given === undefined) return false;
  const a = Buffer.from(expected);
  const b = Buffer.from(given);
  return a.length === b.length && crypto.timingSafeEqual(a, b);
}

function givenToken(request: FastifyRequest): string | undefined {
  const bearer = request.headers.authorization?.replace(/^Bearer\s+/i, '');
  return (request.query as { token?: string }).token ?? bearer;
}

/** `name[:port]` of a Host header or an origin, lower-cased; null when it is neither. */
function splitHost(value: string): { name: string; port: number | null } | null {
  const match = /^(\[[0-9a-f:.]+\]|[^:[\]/]+)(?::(\d{1,5}))?$/i.exec(value);
  return match ? { name: match[1]!.toLowerCase(), port: match[2] === undefined ? null : Number(match[2]) } : null;
}

const bracketed = (address: string) => (address.includes(':') ? `[${address}]` : address);

export async function buildPageApp(deps: PageDeps): Promise<FastifyInstance> {
  const exposure = pageExposureProblem(deps.host, deps.cameraToken, deps.operatorToken);
  if (exposure) throw new Error(exposure);
  const app = Fastify({
    logger: false,
    bodyLimit: PLATE_BODY_LIMIT,
    requestTimeout: REQUEST_TIMEOUT_MS,
    connectionTimeout: 3 * REQUEST_TIMEOUT_MS,
    keepAliveTimeout: 5_000,
    // Node checks the timeouts this often (its default, 30 s, would let them overrun by as much).
    http: { headersTimeout: REQUEST_TIMEOUT_MS, connectionsCheckingInterval: 1_000 },
  });
  app.server.maxConnections = MAX_CONNECTIONS;
  const perAddress = new Map<string, number>();
  // One machine on the LAN must not take every connection from the operator and the camera.
  app.server.on('connection', (socket: Socket) => {
    const address = socket.remoteAddress ?? '';
    if (isLoopbackAddress(address)) return;
    const open = (perAddress.get(address) ?? 0) + 1;
    if (open > MAX_CONNECTIONS_PER_ADDRESS) return void socket.destroy();
    perAddress.set(address, open);
    socket.once('close', () => {
      const left = (perAddress.get(address) ?? 1) - 1;
      if (left > 0) perAddress.set(address, left);
      else perAddress.delete(address);
    });
  });
  // fastify parses text/plain too, which a cross-site form can send without a preflight: JSON only.
  app.removeContentTypeParser('text/plain');

  // Refusals are logged once a minute per kind and address, so a flood cannot fill the log.
  const logged = new Map<string, number>();
  const refuse = (request: FastifyRequest, reply: FastifyReply, code: number, message: string) => {
    const key = `${code} ${request.socket.remoteAddress} ${request.routeOptions.url ?? ''}`;
    const now = Date.now();
    if ((logged.get(key) ?? 0) < now - 60_000) {
      if (logged.size > 1_000) logged.clear();
      logged.set(key, now);
      deps.log.warn({ from: request.socket.remoteAddress, method: request.method, url: request.url.replace(/token=[^&]*/, 'token=…'), status: code }, `page request refused: ${message}`);
    }
    return reply.code(code).send({ ok: false, message });
  };

  const names = new Set(['127.0.0.1', 'localhost', '[::1]', bracketed(deps.host.toLowerCase())]);
  const hostAllowed = (request: FastifyRequest, value: string): boolean => {
    const host = splitHost(value);
    if (!host) return false;
    const local = request.socket.localAddress?.replace(/^::ffff:/, '');
    if (!names.has(host.name) && !(local && host.name === bracketed(local))) return false;
    const port = request.socket.localPort ?? (app.server.address() as AddressInfo | null)?.port;
    return port === undefined || (host.port ?? 80) === port;
  };
  app.addHook('onRequest', async (request, reply) => {
    const host = request.headers.host;
    // A request without Host (HTTP/1.0) cannot come from a browser, the only DNS-rebinding carrier.
    if (host !== undefined && !hostAllowed(request, host)) return refuse(request, reply, 421, `Host ${host} is not this agent: open the page as http://127.0.0.1:${request.socket.localPort ?? ''}/`);
    const origin = request.headers.origin;
    if (origin !== undefined && request.method !== 'GET' && request.method !== 'HEAD') {
      let originHost: string | null = null;
      try {
        const url = new URL(origin);
        if (url.protocol === 'http:') originHost = url.host;
      } catch {
        // "null" and other non-URLs: refused below.
      }
      if (originHost === null || !hostAllowed(request, originHost)) return refuse(request, reply, 403, `requests from the web page at ${origin} are not accepted`);
    }
  });
  await app.register(rateLimit, {
    max: REQUESTS_PER_MINUTE,
    timeWindow: 60_000,
    allowList: (request) => isLoopbackAddress(request.socket.remoteAddress),
    keyGenerator: (request) => request.socket.remoteAddress ?? request.ip,
    errorResponseBuilder: (_request, context) => Object.assign(new Error(`more than ${context.max} requests a minute from this address; retry in ${context.after}`), { statusCode: 429 }),
  });
  app.setErrorHandler((error: Error & { statusCode?: number; code?: string }, request, reply) => {
    const code = error.statusCode ?? 500;
    if (code >= 500) deps.log.error({ err: error, url: request.url }, 'page request failed');
    const camera = request.url.startsWith('/api/camera');
    if (camera && error.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      return refuse(request, reply, 413, `camera push over ${CAMERA_BODY_LIMIT / 1024} KiB: turn off the pictures in the camera's HTTP push (send the plate only)`);
    }
    return camera && code < 500 ? refuse(request, reply, code, error.message) : reply.code(code).send({ ok: false, message: error.message });
  });

  const operator = { onRequest: async (request: FastifyRequest, reply: FastifyReply) => {
    if (isLoopbackAddress(request.socket.remoteAddress) || tokenMatches(deps.operatorToken, givenToken(request))) return;
    return refuse(request, reply, 403, `the operator page answers on the weighbridge PC only (http://127.0.0.1:${request.socket.localPort ?? ''}/), or with the operator token (WEIGHBRIDGE_OPERATOR_TOKEN) as ?token=…`);
  } };
  const camera = { bodyLimit: CAMERA_BODY_LIMIT, onRequest: async (request: FastifyRequest, reply: FastifyReply) => {
    if (deps.cameraToken === null || tokenMatches(deps.cameraToken, givenToken(request))) return;
    return refuse(request, reply, 401, 'camera token missing or wrong: put it in the camera\'s push URL as ?token=…');
  } };

  app.get('/', operator, (_request, reply) => reply.type('text/html; charset=utf-8').header('cache-control', 'no-store').send(PAGE_HTML));
  app.get('/api/status', operator, () => deps.status());

  const answer = (plateText: unknown, source: string, weighingId: number | null) => {
    const plate = parsePlate(plateText);
    if (!plate.ok) return { code: 400, body: { ok: false, message: plate.message } };
    const result = deps.offerPlate(plate.plate, source, weighingId);
    return result.ok ? { code: 200, body: { ...result, plate: plate.plate } } : { code: result.status, body: { ok: false, message: result.message } };
  };

  app.post('/api/plate', operator, (request, reply) => {
    const body = request.body as { plate?: unknown; weighing_id?: unknown } | null;
    const id = body?.weighing_id;
    if (id !== undefined && id !== null && !Number.isSafeInteger(id)) return reply.code(400).send({ ok: false, message: 'weighing_id 须为整数 / must be an integer' });
    const { code, body: out } = answer(body?.plate, 'operator', typeof id === 'number' ? id : null);
    return reply.code(code).send(out);
  });

  app.post('/api/void', operator, (request, reply) => {
    const id = (request.body as { weighing_id?: unknown } | null)?.weighing_id;
    if (typeof id !== 'number' || !Number.isSafeInteger(id)) return reply.code(400).send({ ok: false, message: 'weighing_id 须为整数 / must be an integer' });
    const result = deps.voidWeighing(id);
    return result.ok ? reply.send(result) : reply.code(result.status).send({ ok: false, message: result.message });
  });

  app.post('/api/camera', camera, (request, reply) => {
    const push = readCameraPush(request.body);
    if (!push) return refuse(request, reply, 400, 'expected {"plate": "苏A12345"} or a 臻识 AlarmInfoPlate push');
    const { code, body } = answer(push.plate, push.camera ? `camera ${push.camera}` : 'camera', null);
    if (code === 400) deps.log.info({ from: request.socket.remoteAddress, camera: push.camera }, `camera push without a usable plate: ${body.message}`);
    return reply.code(code).send(body);
  });

  return app;
}

// The agent's local page and its API (fastify; the agent listens, tests inject):
//   GET  /              the page for the operator (page.ts)
//   GET  /api/status    AgentStatus as JSON
//   POST /api/plate     {"plate": "苏E12345", "weighing_id"?: 12} from the page
//   POST /api/camera    a plate-recognition camera's push (camera.ts)
// Only JSON bodies are parsed, so a web page elsewhere cannot post plates through the operator's
// browser without a CORS preflight, which is never answered. Bodies are bounded: a plate needs
// little; a camera push may carry pictures (turn them off in the camera), so it gets more.
import crypto from 'node:crypto';
import Fastify, { type FastifyInstance } from 'fastify';
import { parsePlate } from '../weighing/plates.ts';
import { readCameraPush } from './camera.ts';
import { PAGE_HTML } from './page.ts';
import type { AgentStatus } from './status.ts';

export const PLATE_BODY_LIMIT = 4 * 1024;
export const CAMERA_BODY_LIMIT = 1024 * 1024;

export type PlateAnswer =
  | { ok: true; placed: 'weighing' | 'pass' | 'next'; weighing_id?: number; ticket_id?: string; until?: string }
  | { ok: false; status: 404 | 409; message: string };

export interface PageDeps {
  status(): AgentStatus;
  offerPlate(plate: string, source: string, weighingId: number | null): PlateAnswer;
  /** When set, camera pushes must carry it (?token=… or Authorization: Bearer …). */
  cameraToken: string | null;
}

function tokenMatches(expected: string, given: string | undefined): boolean {
  if (given === undefined) return false;
  const a = Buffer.from(expected);
  const b = Buffer.from(given);
  return a.length === b.length && crypto.timingSafeEqual(a, b);
}

export function buildPageApp(deps: PageDeps): FastifyInstance {
  const app = Fastify({ logger: false, bodyLimit: PLATE_BODY_LIMIT });
  // fastify parses text/plain too, which a cross-site form can send without a preflight: JSON only.
  app.removeContentTypeParser('text/plain');

  app.get('/', (_request, reply) => reply.type('text/html; charset=utf-8').send(PAGE_HTML));
  app.get('/api/status', () => deps.status());

  const answer = (plateText: unknown, source: string, weighingId: number | null) => {
    const plate = parsePlate(plateText);
    if (!plate.ok) return { code: 400, body: { ok: false, message: plate.message } };
    const result = deps.offerPlate(plate.plate, source, weighingId);
    return result.ok ? { code: 200, body: { ...result, plate: plate.plate } } : { code: result.status, body: { ok: false, message: result.message } };
  };

  app.post('/api/plate', (request, reply) => {
    const body = request.body as { plate?: unknown; weighing_id?: unknown } | null;
    const id = body?.weighing_id;
    if (id !== undefined && id !== null && !Number.isSafeInteger(id)) return reply.code(400).send({ ok: false, message: 'weighing_id 须为整数 / must be an integer' });
    const { code, body: out } = answer(body?.plate, 'operator', typeof id === 'number' ? id : null);
    return reply.code(code).send(out);
  });

  app.post('/api/camera', { bodyLimit: CAMERA_BODY_LIMIT }, (request, reply) => {
    const query = request.query as { token?: string };
    const bearer = request.headers.authorization?.replace(/^Bearer\s+/i, '');
    if (deps.cameraToken !== null && !tokenMatches(deps.cameraToken, query.token ?? bearer)) return reply.code(401).send({ ok: false, message: 'token missing or wrong' });
    const push = readCameraPush(request.body);
    if (!push) return reply.code(400).send({ ok: false, message: 'expected {"plate": "苏A12345"} or a 臻识 AlarmInfoPlate push' });
    const { code, body } = answer(push.plate, push.camera ? `camera ${push.camera}` : 'camera', null);
    return reply.code(code).send(body);
  });

  return app;
}

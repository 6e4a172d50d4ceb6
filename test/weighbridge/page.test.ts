// The local page and its API on a running agent whose line and broker are both unreachable (a
// closed port each): what the operator sees then, plate entry, camera pushes, bounded bodies.
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WeighbridgeAgent } from '../../weighbridge/agent.ts';
import { agentLogger } from '../../weighbridge/log.ts';
import { CAMERA_BODY_LIMIT, PLATE_BODY_LIMIT } from '../../weighbridge/page/app.ts';
import type { AgentStatus } from '../../weighbridge/page/status.ts';
import { freePort } from '../helpers/ports.ts';
import { agentConfig, until } from './harness.ts';

const agents: WeighbridgeAgent[] = [];
let base: string;
let guarded: string;

async function startAgent(overrides: Record<string, unknown> = {}): Promise<string> {
  const closed = await freePort();
  const config = await agentConfig({ tcp: { host: '127.0.0.1', port: closed } }, overrides);
  config.mqtt.url = `mqtt://127.0.0.1:${closed}`;
  const agent = new WeighbridgeAgent(config, agentLogger(config.log.level));
  agents.push(agent);
  const { pagePort } = await agent.start();
  return `http://127.0.0.1:${pagePort}`;
}

beforeAll(async () => {
  base = await startAgent();
  guarded = await startAgent({ page: { port: 0, cameraToken: 'camera-token-1234' } });
});
afterAll(() => Promise.all(agents.map((a) => a.stop())));

const post = (url: string, body: unknown, headers: Record<string, string> = {}) =>
  fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });

describe('the local page', () => {
  it('serves the page in Chinese first', async () => {
    const response = await fetch(`${base}/`);
    expect(response.headers.get('content-type')).toMatch(/text\/html/);
    const html = await response.text();
    expect(html).toContain('<html lang="zh-CN">');
    expect(html).toMatch(/当前重量 <span class="en">Current weight/);
    expect(html).toMatch(/未发送的磅单/);
  });

  it('says what is wrong with the line and the broker, and what to do', async () => {
    await until(() => agents[0]!.status().input.problem !== null && agents[0]!.status().broker.problem !== null, 'both failures');
    const status = (await (await fetch(`${base}/api/status`)).json()) as AgentStatus;
    expect(status.input).toMatchObject({ connected: false, problem: expect.stringMatching(/refused the connection: check its IP address/) });
    expect(status.broker).toMatchObject({ connected: false, problem: expect.stringMatching(/nothing accepts connections at mqtt:\/\/127\.0\.0\.1:\d+: is the broker running/) });
    expect(status.queue).toEqual({ waiting: 0, oldest_at: null, tickets: [] });
  });

  it('takes a plate for the next truck, and refuses what is not a plate', async () => {
    const good = await post(`${base}/api/plate`, { plate: '苏E 12345' });
    expect(good.status).toBe(200);
    expect(await good.json()).toMatchObject({ ok: true, placed: 'next', plate: '苏E12345', until: expect.stringMatching(/\+08:00$/) });
    expect(((await (await fetch(`${base}/api/status`)).json()) as AgentStatus).plate_waiting).toMatchObject({ plate: '苏E12345' });
    const bad = await post(`${base}/api/plate`, { plate: 'ABC' });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ ok: false, message: expect.stringContaining('车牌格式不对') });
    expect((await post(`${base}/api/plate`, { plate: '苏E12345', weighing_id: 99 })).status).toBe(404);
    expect((await post(`${base}/api/plate`, { plate: '苏E12345', weighing_id: 'x' })).status).toBe(400);
  });

  it('parses JSON only, and bounds bodies', async () => {
    const text = await fetch(`${base}/api/plate`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: '{"plate":"苏E12345"}' });
    expect(text.status).toBe(415);
    expect((await post(`${base}/api/plate`, { plate: '苏E12345', pad: 'x'.repeat(PLATE_BODY_LIMIT) })).status).toBe(413);
    expect((await post(`${base}/api/camera`, { plate: '苏E12345', imageFile: 'x'.repeat(CAMERA_BODY_LIMIT) })).status).toBe(413);
  });

  it('takes camera pushes of both shapes, pictures and all', async () => {
    const vzenith = { AlarmInfoPlate: { channel: 0, deviceName: 'IVS', ipaddr: '192.168.1.100', result: { PlateResult: { license: '京AF0236', colorType: 2, confidence: 98, imageFile: 'x'.repeat(200_000) } } } };
    const pushed = await post(`${base}/api/camera`, vzenith);
    expect(pushed.status).toBe(200);
    expect(await pushed.json()).toMatchObject({ placed: 'next', plate: '京AF0236' });
    expect((await post(`${base}/api/camera`, { plate: '苏A12345' })).status).toBe(200);
    expect((await post(`${base}/api/camera`, { AlarmInfoPlate: { result: { PlateResult: { license: '_无_' } } } })).status).toBe(400);
    expect((await post(`${base}/api/camera`, { licence: '苏A12345' })).status).toBe(400);
  });

  it('asks camera pushes for the token when one is set', async () => {
    expect((await post(`${guarded}/api/camera`, { plate: '苏A12345' })).status).toBe(401);
    expect((await post(`${guarded}/api/camera?token=wrong-token-000`, { plate: '苏A12345' })).status).toBe(401);
    expect((await post(`${guarded}/api/camera?token=camera-token-1234`, { plate: '苏A12345' })).status).toBe(200);
    expect((await post(`${guarded}/api/camera`, { plate: '苏A12345' }, { authorization: 'Bearer camera-token-1234' })).status).toBe(200);
    // The page itself, on the operator's own PC, needs no token.
    expect((await post(`${guarded}/api/plate`, { plate: '苏A12345' })).status).toBe(200);
  });

  it('listens on loopback only by default', async () => {
    const port = Number(new URL(base).port);
    const external = Object.values((await import('node:os')).networkInterfaces()).flat().find((i) => i && i.family === 'IPv4' && !i.internal);
    if (!external) return;
    const refused = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, external.address, () => (socket.destroy(), resolve(false)));
      socket.once('error', () => resolve(true));
    });
    expect(refused).toBe(true);
  });
});

// The local page and its API on a running agent whose line and broker are both unreachable (a
// closed port each): what the operator sees then, plate entry, camera pushes, bounded bodies; and
// who may call what: tokens before bodies, the operator's routes from this PC only (or with the
// operator token), Host and Origin checked against DNS rebinding, limits on the server.
import http from 'node:http';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WeighbridgeAgent } from '../../weighbridge/agent.ts';
import { agentLogger } from '../../weighbridge/log.ts';
import { buildPageApp, CAMERA_BODY_LIMIT, MAX_CONNECTIONS, PLATE_BODY_LIMIT, REQUEST_TIMEOUT_MS, REQUESTS_PER_MINUTE, type PageDeps } from '../../weighbridge/page/app.ts';
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
    expect(status.queue).toEqual({ waiting: 0, oldest_at: null, tickets: [], held: [], held_count: 0 });
    expect(status.warnings).toEqual([]);
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

  it('answers a camera pushing the same plate again 200, changing nothing (an error would make it push once more)', async () => {
    expect((await post(`${base}/api/camera`, { plate: '苏E54321' })).status).toBe(200);
    const again = await post(`${base}/api/camera`, { plate: '苏E54321' });
    expect(again.status).toBe(200);
    expect(await again.json()).toMatchObject({ ok: true, placed: 'ignored', message: expect.stringContaining('is waiting for the next truck already') });
  });

  it('parses JSON only, and bounds bodies', async () => {
    const text = await fetch(`${base}/api/plate`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: '{"plate":"苏E12345"}' });
    expect(text.status).toBe(415);
    expect((await post(`${base}/api/plate`, { plate: '苏E12345', pad: 'x'.repeat(PLATE_BODY_LIMIT) })).status).toBe(413);
    const big = await post(`${base}/api/camera`, { plate: '苏E12345', imageFile: 'x'.repeat(CAMERA_BODY_LIMIT) });
    expect(big.status).toBe(413);
    expect(await big.json()).toMatchObject({ ok: false, message: expect.stringContaining('turn off the pictures') });
  });

  it('takes camera pushes of both shapes, with the plate crop but not a whole picture', async () => {
    // The plate's small crop (a few KiB of base64) fits; a full picture is refused with what to do.
    const vzenith = (license: string, pictures: Record<string, string>) => ({ AlarmInfoPlate: { channel: 0, deviceName: 'IVS', ipaddr: '192.168.1.100', result: { PlateResult: { license, colorType: 2, confidence: 98, ...pictures } } } });
    const pushed = await post(`${base}/api/camera`, vzenith('京AF0236', { imageFragmentFile: 'x'.repeat(30_000) }));
    expect(pushed.status).toBe(200);
    expect(await pushed.json()).toMatchObject({ placed: 'next', plate: '京AF0236' });
    expect((await post(`${base}/api/camera`, vzenith('京AF0237', { imageFile: 'x'.repeat(200_000) }))).status).toBe(413);
    expect((await post(`${base}/api/camera`, { plate: '苏A12345' })).status).toBe(200);
    expect((await post(`${base}/api/camera`, { AlarmInfoPlate: { result: { PlateResult: { license: '_无_' } } } })).status).toBe(400);
    expect((await post(`${base}/api/camera`, { licence: '苏A12345' })).status).toBe(400);
  });

  it('asks camera pushes for the token when one is set, before reading the body', async () => {
    expect((await post(`${guarded}/api/camera`, { plate: '苏A12345' })).status).toBe(401);
    expect((await post(`${guarded}/api/camera?token=wrong-token-000`, { plate: '苏A12345' })).status).toBe(401);
    expect((await post(`${guarded}/api/camera?token=camera-token-1234`, { plate: '苏A12345' })).status).toBe(200);
    expect((await post(`${guarded}/api/camera`, { plate: '苏A22345' }, { authorization: 'Bearer camera-token-1234' })).status).toBe(200);
    // A body over the limit without the token is refused for the token: it was never read.
    expect((await post(`${guarded}/api/camera`, { plate: '苏A12345', imageFile: 'x'.repeat(2 * 1024 * 1024) })).status).toBe(401);
    // The page itself, on the operator's own PC, needs no token.
    expect((await post(`${guarded}/api/plate`, { plate: '苏A32345' })).status).toBe(200);
  });

  it('answers only requests whose Host names this agent (DNS rebinding), and posts from its own origin', async () => {
    const port = Number(new URL(base).port);
    const get = (host: string) =>
      new Promise<number>((resolve, reject) => {
        http.get({ host: '127.0.0.1', port, path: '/api/status', headers: { host } }, (response) => (response.resume(), resolve(response.statusCode!))).on('error', reject);
      });
    expect(await get(`127.0.0.1:${port}`)).toBe(200);
    expect(await get(`localhost:${port}`)).toBe(200);
    expect(await get(`evil.example:${port}`)).toBe(421);
    expect(await get(`127.0.0.1.evil.example:${port}`)).toBe(421);
    expect(await get(`127.0.0.1:${port + 1}`)).toBe(421);
    expect((await post(`${base}/api/plate`, { plate: '苏E42345' }, { origin: 'http://evil.example' })).status).toBe(403);
    expect((await post(`${base}/api/plate`, { plate: '苏E42345' }, { origin: 'null' })).status).toBe(403);
    expect((await post(`${base}/api/plate`, { plate: '苏E42345' }, { origin: `http://localhost:${port}` })).status).toBe(200);
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

describe('the page beyond loopback', () => {
  const deps = (overrides: Partial<PageDeps> = {}): PageDeps => ({
    status: () => ({ device_id: 'WB-1' }) as AgentStatus,
    offerPlate: () => ({ ok: true, placed: 'next', until: 'soon' }),
    voidWeighing: (id) => ({ ok: true, voided: id }),
    host: '0.0.0.0',
    cameraToken: 'camera-token-1234',
    operatorToken: null,
    log: agentLogger('silent'),
    ...overrides,
  });
  const LAN = '192.168.1.20';

  it('refuses to start on the LAN without a camera token, saying what to do', async () => {
    const closed = await freePort();
    const config = await agentConfig({ tcp: { host: '127.0.0.1', port: closed } }, { page: { host: '0.0.0.0', port: 0 } });
    const agent = new WeighbridgeAgent(config, agentLogger(config.log.level));
    await expect(agent.start()).rejects.toThrow(/listen on 0\.0\.0\.0, reachable from the network, with no camera token.*--camera-token-file/);
    await expect(buildPageApp(deps({ cameraToken: null }))).rejects.toThrow(/no camera token/);
  });

  it("keeps the operator's routes to this PC, unless the operator token comes along; the camera needs its own", async () => {
    const app = await buildPageApp(deps({ operatorToken: 'operator-token-0123456789' }));
    const at = (url: string, remoteAddress: string, method: 'GET' | 'POST' = 'GET', payload?: unknown) => app.inject({ method, url, remoteAddress, payload: payload as object });
    expect((await at('/api/status', LAN)).statusCode).toBe(403);
    expect((await at('/', LAN)).statusCode).toBe(403);
    expect((await at('/api/plate', LAN, 'POST', { plate: '苏E12345' })).statusCode).toBe(403);
    expect((await at('/api/void', LAN, 'POST', { weighing_id: 1 })).statusCode).toBe(403);
    expect((await at('/api/status', '127.0.0.1')).statusCode).toBe(200);
    expect((await at('/api/status?token=operator-token-0123456789', LAN)).statusCode).toBe(200);
    expect((await at('/api/status?token=camera-token-1234', LAN)).statusCode).toBe(403);
    expect((await at('/api/camera?token=camera-token-1234', LAN, 'POST', { plate: '苏E12345' })).statusCode).toBe(200);
    expect((await at('/api/camera?token=operator-token-0123456789', LAN, 'POST', { plate: '苏E12345' })).statusCode).toBe(401);
    await app.close();
    await expect(buildPageApp(deps({ operatorToken: 'short' }))).rejects.toThrow(/at least 16/);
  });

  it('answers a camera on the LAN that names the PC by its address', async () => {
    const external = Object.values((await import('node:os')).networkInterfaces()).flat().find((i) => i && i.family === 'IPv4' && !i.internal);
    if (!external) return;
    const app = await buildPageApp(deps());
    await app.listen({ host: '0.0.0.0', port: 0 });
    const { port } = app.server.address() as net.AddressInfo;
    const request = (path: string, method = 'GET') =>
      new Promise<number>((resolve, reject) => {
        const req = http.request({ host: external.address, port, path, method, headers: { 'content-type': 'application/json' } }, (response) => (response.resume(), resolve(response.statusCode!)));
        req.on('error', reject);
        req.end(method === 'POST' ? JSON.stringify({ plate: '苏E12345' }) : undefined);
      });
    // Host is the PC's address and port: accepted; the address is not loopback, so the operator's routes are not.
    expect(await request('/api/camera?token=camera-token-1234', 'POST')).toBe(200);
    expect(await request('/api/status')).toBe(403);
    await app.close();
  });

  it('bounds connections, request times and request rates', async () => {
    const app = await buildPageApp(deps());
    expect(app.server.maxConnections).toBe(MAX_CONNECTIONS);
    expect(app.server.requestTimeout).toBe(REQUEST_TIMEOUT_MS);
    expect(app.server.headersTimeout).toBe(REQUEST_TIMEOUT_MS);
    const push = (remoteAddress: string) => app.inject({ method: 'POST', url: '/api/camera?token=camera-token-1234', remoteAddress, payload: { plate: '苏E12345' } });
    const codes = [];
    for (let i = 0; i <= REQUESTS_PER_MINUTE; i++) codes.push((await push(LAN)).statusCode);
    expect(codes.filter((c) => c === 200)).toHaveLength(REQUESTS_PER_MINUTE);
    expect(codes.at(-1)).toBe(429);
    // Another address, and this PC, are not held back by it.
    expect((await push('192.168.1.21')).statusCode).toBe(200);
    expect((await push('127.0.0.1')).statusCode).toBe(200);
    await app.close();
  });
});

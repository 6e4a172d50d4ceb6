// The agent for real: reading an XK3190-A9 on a socat pseudo-terminal (noise, bad check codes,
// trucks rolling off before steady), plates from the camera endpoint and the page, tickets to a
// real Mosquitto that is killed during the shift and brought back, and an agent restart on the same
// queue file. Every ticket arrives, each ticket_id with one payload.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WeighbridgeAgent } from '../../weighbridge/agent.ts';
import type { AgentConfig } from '../../weighbridge/config.ts';
import type { Outcome } from '../../weighbridge/weighing/ledger.ts';
import type { Ticket } from '../../weighbridge/weighing/ticket.ts';
import { agentLogger } from '../../weighbridge/log.ts';
import { startTestMosquitto, type TestMosquitto } from '../helpers/mosquitto.ts';
import { xk3190Frame, truckPass } from './frames.ts';
import { ACL, DEVICE_ID, OBSERVER, OBSERVER_PASSWORD, SECRET, agentConfig, next, observe, startPty, until, writeSplit, type Observer, type PtyPair } from './harness.ts';

let broker: TestMosquitto;
let pty: PtyPair;
let observer: Observer;

beforeAll(async () => {
  [broker, pty] = await Promise.all([startTestMosquitto({ [DEVICE_ID]: SECRET, [OBSERVER]: OBSERVER_PASSWORD }, { persistence: true, acl: ACL }), startPty()]);
  observer = await observe(broker.url);
});

afterAll(async () => {
  await observer?.close();
  await pty?.close();
  await broker?.cleanup();
});

const NOISE = Buffer.from('\r\n\xff\x00garbage\x03\x03', 'latin1');

/** One truck's pass as the indicator sends it, with noise and a corrupted frame among the readings. */
function pass(kg: number): Buffer {
  const frames = truckPass(kg, { jitterKg: 10 }).map((w) => xk3190Frame(w));
  const corrupted = xk3190Frame(kg + 500);
  corrupted[4] = 0x37;
  return Buffer.concat([NOISE, ...frames.slice(0, 3), corrupted, NOISE, ...frames.slice(3)]);
}

async function post(port: number, route: string, body: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(`http://127.0.0.1:${port}${route}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

async function weigh(agent: WeighbridgeAgent, kg: number): Promise<Outcome> {
  const weighed = next<[Outcome]>(agent, 'weighing');
  writeSplit(pty.write, pass(kg));
  const [outcome] = await weighed;
  // The truck has left once the last zero frames are read.
  await until(() => agent.status().bridge === 'empty', 'the bridge to be empty');
  return outcome;
}

async function started(config: AgentConfig): Promise<{ agent: WeighbridgeAgent; port: number }> {
  const agent = new WeighbridgeAgent(config, agentLogger(config.log.level));
  const { pagePort } = await agent.start();
  await until(() => agent.status().input.connected, 'the serial line');
  return { agent, port: pagePort! };
}

describe('weighbridge agent on a serial line and a real Mosquitto', () => {
  it('delivers every ticket once through a broker outage and an agent restart', async () => {
    // Trucks here come back within seconds; the pairing rules' minimum interval is ledger.test.ts's to test.
    const config = await agentConfig({ serial: { path: pty.agentEnd } }, { pairing: { minPairIntervalS: 0 } });
    config.mqtt.url = broker.url;
    const made: Ticket[] = [];
    let { agent, port } = await started(config);
    const collect = (a: WeighbridgeAgent) => a.on('ticket', (t) => made.push(t));
    collect(agent);
    await until(() => agent.status().broker.connected, 'the broker connection');

    // A truck that rolls on and off without holding still is no weighing.
    writeSplit(pty.write, Buffer.concat([2_000, 9_000, 16_000, 16_400, 15_700, 16_300, 6_000, 0, 0, 0].map((w) => xk3190Frame(w))));
    await until(() => agent.status().counts.unsteady_passes === 1, 'the unsteady pass');

    // Truck A: the camera reads its plate as it drives up.
    expect(await post(port, '/api/camera', { AlarmInfoPlate: { ipaddr: '192.168.1.64', result: { PlateResult: { license: '苏E11111' } } } })).toMatchObject({ status: 200, body: { placed: 'next' } });
    expect(await weigh(agent, 31_200)).toMatchObject({ kind: 'open', weighing: { plate: '苏E11111', kg: 31_200 } });
    // Truck B: the operator types its plate on the page.
    expect((await post(port, '/api/plate', { plate: '苏E·22222' })).body).toMatchObject({ placed: 'next' });
    expect(await weigh(agent, 28_000)).toMatchObject({ kind: 'open', weighing: { plate: '苏E22222' } });
    // Truck A comes back empty, read by the camera again: its ticket goes out.
    await post(port, '/api/camera', { plate: '苏E11111' });
    const sent = next<[string]>(agent, 'sent');
    expect(await weigh(agent, 12_700)).toMatchObject({ kind: 'ticket', ticket: { plate: '苏E11111', gross_kg: 31_200, tare_kg: 12_700, net_kg: 18_500 } });
    await sent;

    // The broker goes away mid-shift.
    await broker.stop();
    await until(() => !agent.status().broker.connected, 'the agent to notice the outage');
    expect(agent.status().broker.problem).toMatch(/broker/);
    await post(port, '/api/camera', { plate: '苏E22222' });
    expect((await weigh(agent, 11_000)).kind).toBe('ticket');
    // Truck C, weighed before anyone gives its plate, then set from the page by weighing id.
    const first = await weigh(agent, 25_000);
    expect(first).toMatchObject({ kind: 'open', weighing: { plate: null } });
    await post(port, '/api/plate', { plate: '苏E33333', weighing_id: first.kind === 'open' ? first.weighing.id : 0 });
    await post(port, '/api/plate', { plate: '苏E33333' });
    expect((await weigh(agent, 10_000)).kind).toBe('ticket');
    // Truck D's first weighing, then the agent restarts before its second.
    await post(port, '/api/plate', { plate: '苏E44444' });
    await weigh(agent, 30_000);
    expect(agent.status().queue.waiting).toBe(2);
    await agent.stop();

    ({ agent, port } = await started(config));
    collect(agent);
    expect(agent.status().queue.waiting).toBe(2);
    expect(agent.status().open_weighings).toMatchObject([{ plate: '苏E44444', kg: 30_000 }]);
    await post(port, '/api/plate', { plate: '苏E44444' });
    expect(await weigh(agent, 12_000)).toMatchObject({ kind: 'ticket', ticket: { plate: '苏E44444', net_kg: 18_000 } });
    expect(agent.status().queue).toMatchObject({ waiting: 3, oldest_at: expect.any(String) });

    // The broker returns: what waited goes out, in order; it dies again at the first PUBACK, with the
    // rest in flight, and comes back: those are sent again, with the same bytes.
    const firstSent = next(agent, 'sent');
    await broker.start();
    await firstSent;
    await broker.stop();
    await broker.start();
    await until(() => agent.status().queue.waiting === 0 && observer.ticketIds().size === made.length, 'every ticket at the observer', 20_000);
    // Numbered on from one queue file, the restart in between: {device}-{date}-{file id}-000001…000004.
    const serial = made[0]!.ticket_id.slice(0, -6);
    expect(serial).toMatch(new RegExp(`^${DEVICE_ID}-\\d{8}-[0-9A-Z]{6}-$`));
    expect(made.map((t) => t.ticket_id)).toEqual([1, 2, 3, 4].map((n) => `${serial}00000${n}`));
    expect(observer.ticketIds()).toEqual(new Set(made.map((t) => t.ticket_id)));
    for (const payload of observer.payloads) {
      const ticket = made.find((t) => t.ticket_id === (JSON.parse(payload) as Ticket).ticket_id)!;
      expect(payload).toBe(JSON.stringify(ticket));
    }
    const status = agent.status();
    expect(status.input.frames.rejected.bad_check).toBeGreaterThan(0);
    expect(status.input.frames.garbageBytes).toBeGreaterThan(0);

    // The device's status is retained online while it runs, and offline once it stops.
    const statusTopic = `waste/scales/${DEVICE_ID}/status`;
    const retained = async () => {
      const reader = await observe(broker.url, `wb-test-status-${Date.now()}`);
      const message = new Promise<string>((resolve) => reader.client.on('message', (topic, payload) => topic === statusTopic && resolve(payload.toString())));
      await reader.client.subscribeAsync(statusTopic, { qos: 1 });
      const text = await message;
      await reader.close();
      return text;
    };
    // Connected again after the last restart (its reconnection waits longer, the connection before held so briefly).
    await until(() => agent.status().broker.connected, 'the connection after the restart');
    expect(await retained()).toBe('{"online":true}');
    await agent.stop();
    expect(await retained()).toBe('{"online":false}');
  });
});

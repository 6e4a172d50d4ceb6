// The serial line unplugged and plugged back in (socat ended and started again on the same links),
// unpaired weighings expiring, and the terminal prompt, on an agent whose broker is unreachable:
// the ticket waits in the queue.
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { WeighbridgeAgent } from '../../weighbridge/agent.ts';
import { startPrompt } from '../../weighbridge/cli/prompt.ts';
import type { AgentConfig } from '../../weighbridge/config.ts';
import { agentLogger } from '../../weighbridge/log.ts';
import type { Outcome, Weighing } from '../../weighbridge/weighing/ledger.ts';
import { freePort } from '../helpers/ports.ts';
import { xk3190Frame, truckPass } from './frames.ts';
import { agentConfig, next, startPty, until, type PtyPair } from './harness.ts';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function setUp(overrides: Record<string, unknown> = {}, input: Record<string, unknown> = {}): Promise<{ agent: WeighbridgeAgent; pty: PtyPair; config: AgentConfig }> {
  const pty = await startPty();
  cleanups.push(() => pty.close());
  // Trucks here come back within seconds; the pairing rules' minimum interval is ledger.test.ts's to test.
  const config = await agentConfig({ serial: { path: pty.agentEnd }, ...input }, { pairing: { minPairIntervalS: 0 }, ...overrides });
  config.mqtt.url = `mqtt://127.0.0.1:${await freePort()}`;
  const agent = new WeighbridgeAgent(config, agentLogger(config.log.level));
  await agent.start();
  cleanups.push(() => agent.stop());
  await until(() => agent.status().input.connected, 'the serial line');
  return { agent, pty, config };
}

const frames = (kg: number) => Buffer.concat(truckPass(kg, { jitterKg: 10 }).map((w) => xk3190Frame(w)));

describe('weighbridge agent on a serial line', () => {
  it('reopens the port after it goes away, and pairs across the gap', async () => {
    const { agent, pty } = await setUp({}, { idleTimeoutS: 0.5 });
    const problems: string[] = [];
    agent.on('line', (_up, problem) => problem && problems.push(problem));
    agent.offerPlate('苏E66666', 'test', null);
    let weighed = next<[Outcome]>(agent, 'weighing');
    pty.write(frames(27_000));
    expect((await weighed)[0]).toMatchObject({ kind: 'open', weighing: { plate: '苏E66666' } });

    // Unplugged: half a frame, then the port is gone.
    pty.write(xk3190Frame(5_000).subarray(0, 6));
    await pty.close();
    cleanups.shift();
    await until(() => !agent.status().input.connected, 'the line to go down');
    const replugged = await startPty(path.dirname(pty.agentEnd));
    cleanups.push(() => replugged.close());
    await until(() => agent.status().input.connected, 'the line to come back', 10_000);
    // The pty's hang-up is reported as a disconnection, or found by the silence.
    expect(problems[0]).toMatch(/was disconnected|no data from the indicator/);

    agent.offerPlate('苏E66666', 'test', null);
    weighed = next<[Outcome]>(agent, 'weighing');
    replugged.write(frames(12_000));
    expect((await weighed)[0]).toMatchObject({ kind: 'ticket', ticket: { net_kg: 15_000 } });
    expect(agent.status().queue.waiting).toBe(1);
    expect(agent.status().broker).toMatchObject({ connected: false, problem: expect.stringMatching(/nothing accepts connections/) });
  });

  it('expires a weighing that finds no pair, and shows it', async () => {
    const { agent, pty } = await setUp({ pairing: { expireAfterH: 0.0003, plateWindowS: 120, minPairIntervalS: 0 } });
    agent.offerPlate('苏E77777', 'test', null);
    const expired = next<[Weighing]>(agent, 'expired');
    pty.write(frames(20_000));
    expect((await expired)[0]).toMatchObject({ plate: '苏E77777', kg: 20_000 });
    expect(agent.status()).toMatchObject({ open_weighings: [], expired: [{ plate: '苏E77777', kg: 20_000 }] });
  });

  it('takes plates typed at the terminal prompt', async () => {
    const { agent, pty } = await setUp();
    const input = new PassThrough();
    const output = new PassThrough();
    let said = '';
    output.on('data', (chunk: Buffer) => (said += chunk.toString()));
    const prompt = startPrompt(agent, input, output);
    cleanups.push(async () => prompt.close());
    const weighed = next<[Outcome]>(agent, 'weighing');
    pty.write(frames(18_000));
    const [outcome] = await weighed;
    const id = outcome.kind === 'open' ? outcome.weighing.id : 0;
    input.write('list\n');
    await until(() => said.includes('需车牌 needs a plate'), 'the list');
    input.write('not a plate\n');
    await until(() => said.includes('车牌格式不对'), 'the refusal');
    input.write(`${id} 苏E·88888\n`);
    await until(() => said.includes(`苏E88888: 已记到称重 set on weighing ${id}`), 'the plate set');
    expect(agent.status().open_weighings).toMatchObject([{ id, plate: '苏E88888' }]);
  });
});

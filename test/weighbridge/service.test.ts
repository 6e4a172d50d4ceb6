// The agent against the real service: a scale device provisioned in the registry, its tickets
// through the embedded broker into InfluxDB (the contract's validation passed), and a wrong secret
// refused with a message that says what to check.
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WeighbridgeAgent } from '../../weighbridge/agent.ts';
import { agentLogger } from '../../weighbridge/log.ts';
import type { Outcome } from '../../weighbridge/weighing/ledger.ts';
import { startTestInfluxd, type TestInfluxd } from '../helpers/influxd.ts';
import { provision, startTestService, testConfig, type TestService } from '../helpers/service.ts';
import { xk3190Frame, truckPass } from './frames.ts';
import { agentConfig, next, until } from './harness.ts';

const SCALE = 'WB-SVC-01';
let influx: TestInfluxd;
let service: TestService;
let secret: string;
let server: net.Server;
const sockets: net.Socket[] = [];

beforeAll(async () => {
  influx = await startTestInfluxd();
  const config = await testConfig(influx.url, { 'rules.enabled': false });
  secret = (await provision(config, [[SCALE, 'scales']]))[SCALE]!;
  service = await startTestService(config);
  server = net.createServer((socket) => sockets.push(socket));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
});

afterAll(async () => {
  for (const socket of sockets) socket.destroy();
  await new Promise((resolve) => server?.close(resolve));
  await service?.stop();
  await influx?.cleanup();
});

async function agentWith(secretText: string): Promise<WeighbridgeAgent> {
  const { port } = server.address() as net.AddressInfo;
  // Trucks here come back within seconds; the pairing rules' minimum interval is ledger.test.ts's to test.
  const config = await agentConfig({ tcp: { host: '127.0.0.1', port } }, { pairing: { minPairIntervalS: 0 } });
  Object.assign(config.mqtt, { url: service.url, deviceId: SCALE, secret: secretText });
  const agent = new WeighbridgeAgent(config, agentLogger(config.log.level));
  await agent.start();
  return agent;
}

describe('weighbridge agent against the service', () => {
  it('gets its tickets stored as weigh_ticket points', async () => {
    const agent = await agentWith(secret);
    try {
      await until(() => agent.status().broker.connected && agent.status().input.connected, 'the broker and the line');
      const line = sockets.at(-1)!;
      for (const [plate, kg] of [['苏E12345', 31_200], ['苏E12345', 12_700], ['苏E54321', 29_000], ['苏E54321', 13_000]] as const) {
        agent.offerPlate(plate, 'test', null);
        const weighed = next<[Outcome]>(agent, 'weighing');
        line.write(Buffer.concat(truckPass(kg, { jitterKg: 10 }).map((w) => xk3190Frame(w))));
        await weighed;
        await until(() => agent.status().bridge === 'empty', 'the truck to leave');
        // The same plate again within the millisecond its truck left is a repeat, even with minPairIntervalS 0.
        await new Promise((r) => setTimeout(r, 5));
      }
      await until(() => agent.status().queue.waiting === 0, 'both tickets acknowledged');
      const deadline = Date.now() + 15_000;
      while ((await influx.count('weigh_ticket', 'net_kg', SCALE)) < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      const rows = await influx.store().query('SELECT ticket_id, plate, gross_kg, tare_kg, net_kg FROM weigh_ticket WHERE device_id = $id ORDER BY time', { id: SCALE });
      expect(rows[0]?.values.map((v) => v.slice(1))).toEqual([
        [expect.stringMatching(new RegExp(`^${SCALE}-\\d{8}-[0-9A-Z]{6}-000001$`)), '苏E12345', 31_200, 12_700, 18_500],
        [expect.stringMatching(new RegExp(`^${SCALE}-\\d{8}-[0-9A-Z]{6}-000002$`)), '苏E54321', 29_000, 13_000, 16_000],
      ]);
    } finally {
      await agent.stop();
    }
  });

  it('says what to check when its secret is refused', async () => {
    const agent = await agentWith('not-the-secret');
    try {
      await until(() => agent.status().broker.problem !== null, 'the refusal');
      expect(agent.status().broker.problem).toMatch(/refused device WB-SVC-01 \(CONNACK 4\): wrong device id or secret/);
    } finally {
      await agent.stop();
    }
  });
});

// What the forwarder does not send, against a real Mosquitto: a ticket the service would refuse
// (older than its window, stamped ahead of the clock, not a ticket at all) is held in the queue
// file and listed with what to do, since the service acknowledges refused tickets too and the
// agent would delete them; WEIGHBRIDGE_SEND_OLD_TICKETS sends the old ones once the service takes
// them. And two agents as one device, on two queue files: the broker's takeover is named.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WeighbridgeAgent } from '../../weighbridge/agent.ts';
import { HOLD_OLDER_THAN_MS } from '../../weighbridge/forward/forwarder.ts';
import { agentLogger } from '../../weighbridge/log.ts';
import { openDb } from '../../weighbridge/store/db.ts';
import { localIso } from '../../weighbridge/weighing/ticket.ts';
import { freePort } from '../helpers/ports.ts';
import { startTestMosquitto, type TestMosquitto } from '../helpers/mosquitto.ts';
import { ACL, DEVICE_ID, OBSERVER, OBSERVER_PASSWORD, SECRET, agentConfig, observe, until, type Observer } from './harness.ts';

let broker: TestMosquitto;
let observer: Observer;

beforeAll(async () => {
  broker = await startTestMosquitto({ [DEVICE_ID]: SECRET, [OBSERVER]: OBSERVER_PASSWORD }, { acl: ACL });
  observer = await observe(broker.url, 'wb-test-forward-observer');
});

afterAll(async () => {
  await observer?.close();
  await broker?.cleanup();
});

const DAY = 86_400_000;

function ticket(id: string, ms: number): string {
  return JSON.stringify({ ticket_id: id, ts: localIso(ms, 480), plate: '苏E12345', gross_kg: 30_000, tare_kg: 12_000, net_kg: 18_000, category: 'construction', direction: 'in' });
}

/** A queue file holding these payloads, and an agent on it (its indicator line a closed port). */
async function agentOn(rows: [id: string, payload: string][], options: { sendOldTickets?: boolean } = {}): Promise<WeighbridgeAgent> {
  const config = await agentConfig({ tcp: { host: '127.0.0.1', port: await freePort() } });
  config.mqtt.url = broker.url;
  const db = openDb(config.queueFile);
  const insert = db.prepare('INSERT INTO queue (ticket_id, payload, created_at) VALUES (?, ?, ?)');
  for (const [id, payload] of rows) insert.run(id, payload, Date.now());
  db.close();
  const agent = new WeighbridgeAgent(config, agentLogger(config.log.level), options);
  await agent.start();
  return agent;
}

describe('tickets the service would refuse', () => {
  it('are held in the queue file, listed with the reason and what to do, and the rest are sent', async () => {
    const now = Date.now();
    const agent = await agentOn([
      ['WB-OLD-1', ticket('WB-OLD-1', now - 8 * DAY)],
      ['WB-BAD-1', '{"ticket_id":"WB-BAD-1","ts":'],
      ['WB-NOPLATE-1', JSON.stringify({ ticket_id: 'WB-NOPLATE-1', ts: localIso(now, 480), gross_kg: 1, tare_kg: 0, net_kg: 1, category: 'construction', direction: 'in' })],
      ['WB-AHEAD-1', ticket('WB-AHEAD-1', now + 3_600_000)],
      ['WB-OK-1', ticket('WB-OK-1', now - HOLD_OLDER_THAN_MS + 3_600_000)],
    ]);
    try {
      await until(() => observer.ticketIds().has('WB-OK-1') && agent.status().queue.waiting === 4, 'the sendable ticket delivered');
      const status = agent.status();
      expect(new Map(status.queue.held.map((h) => [h.ticket_id, h.reason]))).toEqual(
        new Map([
          ['WB-OLD-1', expect.stringMatching(/is 8\.0 days old: the service refuses tickets older than 7 days, so it is held in the queue file, not sent\. Have the service's ingest\.maxAgeMs widened .* WEIGHBRIDGE_SEND_OLD_TICKETS=1/)],
          ['WB-BAD-1', expect.stringMatching(/is not valid JSON .*: held, the service would refuse it/)],
          ['WB-NOPLATE-1', expect.stringMatching(/is not a valid ticket \(plate one of plate or truck_device_id is required\)/)],
          ['WB-AHEAD-1', expect.stringMatching(/is stamped 60 min ahead of this PC's clock .*check the PC's clock/)],
        ]),
      );
      expect(status.queue.held_count).toBe(4);
      expect(status.warnings).toEqual([expect.stringMatching(/^4 tickets held in the queue file, not sent; the first: ticket WB-OLD-1 is 8\.0 days old/)]);
      expect(status.queue.tickets.find((t) => t.ticket_id === 'WB-BAD-1')).toEqual({ ticket_id: 'WB-BAD-1', problem: expect.stringContaining('"ts":') });
      expect([...observer.ticketIds()].filter((id) => id !== 'WB-OK-1' && !id.startsWith('WB-SENT'))).toEqual([]);
    } finally {
      await agent.stop();
    }
  });

  it('sends the old ones when told to (WEIGHBRIDGE_SEND_OLD_TICKETS=1), still not the broken ones', async () => {
    const agent = await agentOn(
      [
        ['WB-SENT-OLD-1', ticket('WB-SENT-OLD-1', Date.now() - 8 * DAY)],
        ['WB-SENT-BAD-1', 'not json'],
      ],
      { sendOldTickets: true },
    );
    try {
      await until(() => observer.ticketIds().has('WB-SENT-OLD-1') && agent.status().queue.waiting === 1, 'the old ticket delivered');
      expect(agent.status().queue.held).toEqual([{ ticket_id: 'WB-SENT-BAD-1', reason: expect.stringContaining('not valid JSON') }]);
    } finally {
      await agent.stop();
    }
  });
});

describe('two agents as one device', () => {
  it('names the takeover of the client id', async () => {
    const agents = [await agentOn([]), await agentOn([])];
    try {
      const named = /keeps closing the connection right after accepting it: another program is connected as device WB-TEST-01 with the same client id/;
      await until(() => agents.some((a) => named.test(a.status().broker.problem ?? '')), 'the takeover named', 10_000);
    } finally {
      await Promise.all(agents.map((a) => a.stop()));
    }
  });
});

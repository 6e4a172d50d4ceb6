// What subscribers of device topics see of a message: only what the service accepted. A partly
// refused batch once reached them, and the retained copy, whole, refused readings included.
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { topics } from '../../../services/contract/topics.ts';
import { startTestInfluxd, type TestInfluxd } from '../../helpers/influxd.ts';
import { connectDevice, provision, provisionService, sleep, startTestService, testConfig, type TestService } from '../../helpers/service.ts';

let influx: TestInfluxd;
let svc: TestService;
let device: MqttClient;
let secrets: Record<string, string>;
const now = Date.now();
const fix = (ts: number, lat = 31.3) => ({ ts, lat, lon: 120.6, speed_kmh: 30, heading: 90 });

beforeAll(async () => {
  influx = await startTestInfluxd();
  const config = await testConfig(influx.url, { 'rules.enabled': false });
  secrets = await provision(config, [['T-FWD', 'trucks']]);
  secrets['waste-fwd'] = await provisionService(config, 'waste-fwd');
  svc = await startTestService(config);
  device = await connectDevice(svc.url, 'T-FWD', secrets['T-FWD']!);
}, 30_000);
afterAll(async () => {
  await device?.endAsync();
  await svc?.stop();
  await influx?.cleanup();
});

async function subscriber(): Promise<{ client: MqttClient; received: { payload: unknown; retain: boolean }[] }> {
  const client = await connectDevice(svc.url, 'waste-fwd', secrets['waste-fwd']!, { clientId: `waste-fwd-${Math.random().toString(16).slice(2, 8)}` });
  const received: { payload: unknown; retain: boolean }[] = [];
  client.on('message', (_topic, payload, packet) => received.push({ payload: JSON.parse(payload.toString()), retain: packet.retain }));
  await client.subscribeAsync(topics.data('trucks', 'T-FWD'), { qos: 1 });
  return { client, received };
}

describe('forwarding of device messages', () => {
  it('forwards and retains only the accepted readings of a partly refused batch, and nothing of a refused message', async () => {
    const live = await subscriber();
    await device.publishAsync(topics.data('trucks', 'T-FWD'), JSON.stringify([fix(now - 2000), fix(now - 1500, 91), fix(now - 1000)]), { qos: 1, retain: true });
    await device.publishAsync(topics.data('trucks', 'T-FWD'), JSON.stringify([fix(now - 500, 95)]), { qos: 1, retain: true });
    await sleep(300);
    expect(live.received.map((m) => m.payload)).toEqual([[fix(now - 2000), fix(now - 1000)]]);

    const late = await subscriber();
    await sleep(300);
    expect(late.received).toEqual([{ payload: [fix(now - 2000), fix(now - 1000)], retain: true }]);
    await Promise.all([live.client.endAsync(), late.client.endAsync()]);
  });
});

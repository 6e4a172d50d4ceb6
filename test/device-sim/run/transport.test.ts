// The simulator's devices on a real broker (Debian's Mosquitto, with the project's ACL).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Outgoing } from '../../../device-sim/engine/noise.ts';
import { MqttTransport } from '../../../device-sim/run/transport.ts';
import { startTestMosquitto, type TestMosquitto } from '../../helpers/mosquitto.ts';

const SECRET = 'transport-secret';
let broker: TestMosquitto;
beforeAll(async () => {
  broker = await startTestMosquitto({ 'GPS-T1': SECRET, 'GPS-T2': SECRET });
});
afterAll(async () => {
  await broker?.cleanup();
});

const fix = (deviceId: string, at: number): Outgoing => ({ kind: 'publish', at, deviceId, deviceClass: 'trucks', payload: { ts: at, lat: 31.3, lon: 120.6, speed_kmh: 0, heading: 0 } });

describe('MqttTransport', () => {
  it('delivers what a device queued during an outage still under way when the run ends', async () => {
    const transport = new MqttTransport({ url: broker.url, secret: SECRET, maxInFlight: 100, maxConnecting: 10 });
    transport.send(fix('GPS-T1', 0));
    transport.send(fix('GPS-T2', 0));
    while (transport.stats.acknowledged < 2) await transport.progress();
    // GPS-T1 drops off for two minutes, far beyond the stall limit of the close below.
    transport.send({ kind: 'reconnect', at: 1000, deviceId: 'GPS-T1', deviceClass: 'trucks', downForMs: 120_000 });
    for (let i = 1; i <= 5; i++) transport.send(fix('GPS-T1', 1000 + i * 1000));
    expect(transport.stats.queued).toBe(5);
    const closing = Date.now();
    await transport.close(2000);
    expect(transport.stats.queued + transport.stats.inFlight).toBe(0);
    expect(transport.stats.acknowledged).toBe(7);
    expect(Date.now() - closing).toBeLessThan(2000);
  });
});

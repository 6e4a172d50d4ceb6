// Devices publishing a steady stream of uniquely timestamped fixes at QoS 1, resending whatever was
// not acknowledged when they reconnect (mqtt.js keeps unacknowledged publishes in its outgoing store).
import mqtt, { type MqttClient } from 'mqtt';
import { topics } from '../../services/contract/topics.ts';

export interface LoadRun {
  /** Resolves when every publish has been acknowledged; the number published. */
  acknowledged: Promise<number>;
  stop(): void;
  published(): number;
  close(): Promise<void>;
}

export async function startTruckLoad(url: string, devices: Record<string, string>, options: { intervalMs: number; perTick: number }): Promise<LoadRun> {
  const clients: MqttClient[] = [];
  for (const [id, secret] of Object.entries(devices)) {
    clients.push(await mqtt.connectAsync(url, { username: id, password: secret, clientId: `${id}-load`, reconnectPeriod: 200, connectTimeout: 2000 }));
  }
  const acks: Promise<unknown>[] = [];
  let sequence = 0;
  const base = Date.now() - 3_600_000;
  const timer = setInterval(() => {
    clients.forEach((client, k) => {
      const id = Object.keys(devices)[k]!;
      for (let i = 0; i < options.perTick; i++) {
        const n = sequence++;
        const payload = JSON.stringify({ ts: base + n, lat: 31 + (n % 1000) * 1e-5, lon: 120.5, speed_kmh: n % 90, heading: n % 360 });
        acks.push(client.publishAsync(topics.data('trucks', id), payload, { qos: 1 }));
      }
    });
  }, options.intervalMs);
  let stopped = false;
  return {
    stop: () => {
      stopped = true;
      clearInterval(timer);
    },
    published: () => acks.length,
    get acknowledged() {
      if (!stopped) throw new Error('stop() the load first');
      return Promise.all(acks).then(() => acks.length);
    },
    close: async () => {
      clearInterval(timer);
      await Promise.all(clients.map((c) => c.endAsync(true)));
    },
  };
}

// The registry's device store as the embedded broker's credential directory, over real sockets.
import path from 'node:path';
import mqtt from 'mqtt';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EmbeddedBroker } from '../../../services/broker/broker.ts';
import { verifySecret } from '../../../services/broker/secrets.ts';
import { brokerSchema, ingestSchema } from '../../../services/config/schema.ts';
import { IngestPipeline } from '../../../services/ingest/pipeline.ts';
import { createLogger } from '../../../services/log.ts';
import { RegistryDb } from '../../../services/registry/db.ts';
import { DeviceStore, RegistryError } from '../../../services/registry/devices.ts';
import { Spool } from '../../../services/spool/spool.ts';
import { eventually, tempDir } from '../../helpers/service.ts';

let dir: string;
let db: RegistryDb;
let store: DeviceStore;
beforeEach(async () => {
  dir = await tempDir('waste-devices-');
  db = new RegistryDb(path.join(dir, 'registry.db'));
  db.open();
  store = new DeviceStore(db);
});
afterEach(() => {
  store.unwatch();
  db.close();
});

describe('DeviceStore', () => {
  it('adds, lists, rotates, disables and removes devices, keeping only secret hashes', async () => {
    const secret = await store.add('BIN-0001', 'bins');
    await store.add('TRUCK-0001', 'trucks');
    expect(await verifySecret(secret, store.device('BIN-0001')!.secret_hash)).toBe(true);
    expect(store.list({ deviceClass: 'bins' })).toMatchObject({ total: 1, items: [{ id: 'BIN-0001', enabled: true }] });
    expect(store.list({ limit: 1, offset: 1 }).items.map((d) => d.id)).toEqual(['TRUCK-0001']);
    const rotated = await store.rotate('BIN-0001');
    expect(await verifySecret(secret, store.device('BIN-0001')!.secret_hash)).toBe(false);
    expect(await verifySecret(rotated, store.device('BIN-0001')!.secret_hash)).toBe(true);
    store.setEnabled('BIN-0001', false);
    expect(store.list({ enabled: false }).items.map((d) => d.id)).toEqual(['BIN-0001']);
    store.remove('BIN-0001');
    expect(store.device('BIN-0001')).toBeUndefined();
  });

  it('refuses bad ids, duplicates and unknown devices with a reason', async () => {
    await expect(store.add('a/b', 'bins')).rejects.toThrow(/must be 1-64 letters/);
    await store.add('B1', 'bins');
    await expect(store.add('B1', 'trucks')).rejects.toMatchObject({ code: 'conflict' });
    expect(() => store.setEnabled('nope', false)).toThrow(RegistryError);
    await expect(store.addService('ops')).rejects.toThrow(/must start with "waste-"/);
  });

  it('takes over a provisioning file once, keeping the hashes', async () => {
    const records = [{ id: 'OLD-1', class: 'trucks' as const, secret_hash: 'scrypt$16384$8$1$c2FsdA$aGFzaA', enabled: false, created_at: '2026-01-01T00:00:00.000Z' }];
    const services = [{ name: 'waste-ops', secret_hash: 'scrypt$16384$8$1$c2FsdA$aGFzaA', created_at: '2026-01-01T00:00:00.000Z' }];
    expect(store.importCredentials(records, services)).toBe(2);
    expect(store.importCredentials(records, services)).toBe(0);
    expect(store.device('OLD-1')).toMatchObject({ enabled: false, secret_hash: records[0]!.secret_hash, created_at: records[0]!.created_at });
    expect(store.service('waste-ops')?.secret_hash).toBe(services[0]!.secret_hash);
  });

  it('lets the broker admit a new device at once and cut it off when another process disables it', async () => {
    const spool = new Spool({ dir: path.join(dir, 'spool'), quotaBytes: 1e8, segmentBytes: 1e6, fsync: true });
    await spool.open();
    const log = createLogger('silent');
    const broker = new EmbeddedBroker({
      config: brokerSchema.parse({ host: '127.0.0.1', port: 0, wsPort: 0 }),
      credentials: store,
      log,
    });
    store.onChange(() => broker.revokeStale());
    store.watch(100);
    await broker.start(new IngestPipeline(spool, ingestSchema.parse({}), log));
    const { port } = broker.ports();
    try {
      const secret = await store.add('REG-T1', 'trucks');
      const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { username: 'REG-T1', password: secret, reconnectPeriod: 0 });
      const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
      // Another process (the CLI or a second API instance) writes through its own connection.
      const other = new RegistryDb(db.file);
      other.open();
      new DeviceStore(other).setEnabled('REG-T1', false);
      other.close();
      await closed;
      const refused = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { username: 'REG-T1', password: secret, reconnectPeriod: 0 }).then(() => 0, (e: { code?: number }) => e.code);
      expect(refused).toBe(5);
      store.setEnabled('REG-T1', true);
      const back = await eventually(() => mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { username: 'REG-T1', password: secret, reconnectPeriod: 0 }).catch(() => null), (c) => c !== null, 3000);
      await back!.endAsync();
    } finally {
      await broker.stop();
      await spool.close();
    }
  });
});

// The registry's device store as the embedded broker's credential directory, over real sockets.
import path from 'node:path';
import mqtt from 'mqtt';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EmbeddedBroker } from '../../../services/broker/broker.ts';
import { hashSecret, verifySecret } from '../../../services/broker/secrets.ts';
import { brokerSchema, ingestSchema } from '../../../services/config/schema.ts';
import { IngestPipeline } from '../../../services/ingest/pipeline.ts';
import { createLogger } from '../../../services/log.ts';
import { RegistryDb } from '../../../services/registry/db.ts';
import { DeviceStore, RegistryError } from '../../../services/registry/devices.ts';
import { ENTITIES } from '../../../services/registry/entities.ts';
import { EntityStore } from '../../../services/registry/entity-store.ts';
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

describe('DeviceStore as the JT/T 808 gateway\'s terminal directory', () => {
  /** Counts the change notifications from here on. */
  const notifications = () => {
    const counter = { n: 0 };
    store.onChange(() => counter.n++);
    return counter;
  };

  it('finds a terminal by its phone number with or without leading zeros, with the plate of its truck', async () => {
    await store.add('T1', 'trucks', { phone: '013800138000', model: 'ZT-80' });
    expect(store.device('T1')).toMatchObject({ jt808_phone: '13800138000', jt808_model: 'ZT-80', jt808_registered: false });
    expect(store.terminal('13800138000')).toEqual({ deviceId: 'T1', phone: '13800138000', enabled: true, authCodeHash: null, model: 'ZT-80', plate: null });
    expect(store.terminal('000013800138000')?.deviceId).toBe('T1');
    const entities = new EntityStore(db);
    entities.create(ENTITIES.companies, 'co', { name: 'co' });
    entities.create(ENTITIES.trucks, 'truck-1', { plate: '苏E·12345', company_id: 'co', fleet: 'muck', rated_gross_kg: 30000, device_id: 'T1' });
    expect(store.terminal('13800138000')?.plate).toBe('苏E·12345');
    // 20 digits: the 2019 edition's BCD[10].
    await store.add('T2', 'trucks', { phone: '12345678901234567890' });
    expect(store.terminal('12345678901234567890')?.deviceId).toBe('T2');
    for (const unknown of ['13800138001', '', '0', '000000000000', 'abc', '1'.repeat(21)]) expect(store.terminal(unknown), unknown).toBeUndefined();
  });

  it('refuses malformed numbers, numbers another device has (naming it), and terminals of other classes', async () => {
    await store.add('T1', 'trucks', { phone: '13800138000' });
    await expect(store.add('T2', 'trucks', { phone: '013800138000' })).rejects.toThrow(new RegistryError('conflict', 'terminal phone number 13800138000 belongs to device T1 already'));
    expect(store.device('T2')).toBeUndefined();
    await store.add('T2', 'trucks');
    expect(() => store.setTerminal('T2', '0013800138000')).toThrow(/belongs to device T1 already/);
    await expect(store.add('B1', 'bins', { phone: '13900139000' })).rejects.toMatchObject({ code: 'invalid', message: 'device B1 is of class bins; only trucks devices can be JT/T 808 terminals' });
    await store.add('S1', 'scales');
    expect(() => store.setTerminal('S1', '13900139000')).toThrow(/only trucks devices/);
    for (const phone of ['', '138-0013-8000', '+8613800138000', '1'.repeat(21), '000000000000', '１３８']) {
      expect(() => store.setTerminal('T2', phone), phone).toThrow(RegistryError);
    }
    expect(() => store.setTerminal('NOPE', '13900139000')).toThrow(new RegistryError('not_found', 'no device NOPE'));
    // The schema holds to the same, whatever writes to it.
    expect(() => db.connection.prepare("UPDATE devices SET jt808_phone = '13900139000' WHERE id = 'S1'").run()).toThrow(/CHECK constraint failed/);
    expect(() => db.connection.prepare("UPDATE devices SET jt808_phone = '013900139000' WHERE id = 'T2'").run()).toThrow(/CHECK constraint failed/);
    expect(() => db.connection.prepare("UPDATE devices SET jt808_phone = '13800138000' WHERE id = 'T2'").run()).toThrow(/UNIQUE constraint failed/);
    expect(() => db.connection.prepare("UPDATE devices SET jt808_model = 'M' WHERE id = 'T2'").run()).toThrow(/CHECK constraint failed/);
  });

  it('keeps models and authentication codes only when they can be stored and sent', async () => {
    await store.add('T1', 'trucks');
    for (const model of ['', 'M\u0000', 'M\nX', 'x'.repeat(65), '\ud800']) expect(() => store.setTerminal('T1', '13800138000', model), JSON.stringify(model)).toThrow(RegistryError);
    store.setTerminal('T1', '13800138000', '型号-80');
    expect(store.device('T1')!.jt808_model).toBe('型号-80');
    for (const code of ['', 'with space', 'ü', 'x'.repeat(65), 'tab\t']) {
      await expect(store.setAuthCode('T1', code), JSON.stringify(code)).rejects.toThrow(/1-64 printable ASCII characters without spaces/);
    }
    await expect(store.add('T2', 'trucks', { phone: '13900139000', authCode: 'two words' })).rejects.toThrow(/printable ASCII/);
    expect(store.device('T2')).toBeUndefined();
    await store.setAuthCode('T1', 'A1b2-C3d4');
    const { authCodeHash } = store.terminal('13800138000')!;
    expect(await verifySecret('A1b2-C3d4', authCodeHash!)).toBe(true);
    await store.add('S1', 'scales');
    await expect(store.setAuthCode('S1', 'abc')).rejects.toThrow('device S1 is no JT/T 808 terminal (it has no terminal phone number)');
  });

  it('records one registration only, until the code is reset', async () => {
    await store.add('T1', 'trucks', { phone: '13800138000', model: 'provisioned' });
    const changes = notifications();
    const first = await hashSecret('code-1');
    expect(store.register('T1', first, 'ZT-80\u0000\u0000\u0000')).toBe(true);
    expect(store.terminal('13800138000')).toMatchObject({ authCodeHash: first, model: 'ZT-80' });
    expect(store.device('T1')!.jt808_registered).toBe(true);
    expect(store.register('T1', await hashSecret('code-2'), 'other')).toBe(false);
    expect(store.terminal('13800138000')).toMatchObject({ authCodeHash: first, model: 'ZT-80' });
    expect(changes.n).toBe(1);

    store.resetTerminal('T1');
    expect(store.terminal('13800138000')).toMatchObject({ authCodeHash: null, model: 'ZT-80' });
    const second = await hashSecret('code-2');
    expect(store.register('T1', second, null)).toBe(true);
    expect(store.terminal('13800138000')).toMatchObject({ authCodeHash: second, model: 'ZT-80' });
    expect(changes.n).toBe(3);

    // Not a terminal, gone, or refused: nothing is recorded.
    await store.add('T2', 'trucks');
    expect(store.register('T2', second, null)).toBe(false);
    expect(store.register('NOPE', second, null)).toBe(false);
    expect(() => store.register('T1', 'scrypt$1$1$1$x$y', null)).toThrow(/authentication code hash refused/);
    store.resetTerminal('T1');
    expect(() => store.register('T1', second, 'bad\u0007model')).toThrow(/control characters/);
    expect(store.terminal('13800138000')!.authCodeHash).toBeNull();
    expect(() => store.resetTerminal('T2')).toThrow(/no JT\/T 808 terminal/);
  });

  it('a provisioned code is the terminal\'s code: registration does not replace it', async () => {
    await store.add('T1', 'trucks', { phone: '13800138000', authCode: 'given-by-integrator' });
    expect(store.device('T1')!.jt808_registered).toBe(true);
    expect(store.register('T1', await hashSecret('other'), null)).toBe(false);
    expect(await verifySecret('given-by-integrator', store.terminal('13800138000')!.authCodeHash!)).toBe(true);
  });

  it('shows a disabled terminal as disabled, and tells the listeners of every change', async () => {
    const changes = notifications();
    await store.add('T1', 'trucks', { phone: '13800138000' });
    expect(changes.n).toBe(1);
    store.setEnabled('T1', false);
    expect(store.terminal('13800138000')!.enabled).toBe(false);
    expect(changes.n).toBe(2);
    store.setTerminal('T1', '13900139000', 'M2');
    expect(store.terminal('13800138000')).toBeUndefined();
    expect(store.terminal('13900139000')).toMatchObject({ deviceId: 'T1', model: 'M2', enabled: false });
    expect(changes.n).toBe(3);
    await store.setAuthCode('T1', 'code');
    expect(changes.n).toBe(4);
    store.resetTerminal('T1');
    expect(changes.n).toBe(5);
    await store.update('T1', { enabled: true, jt808Model: null, jt808AuthCode: 'again' });
    expect(store.terminal('13900139000')).toMatchObject({ enabled: true, model: null, authCodeHash: expect.stringMatching(/^scrypt\$/) });
    expect(changes.n).toBe(6);
    store.clearTerminal('T1');
    expect(store.terminal('13900139000')).toBeUndefined();
    expect(store.device('T1')).toMatchObject({ jt808_phone: null, jt808_model: null, jt808_registered: false });
    expect(changes.n).toBe(7);
    // A refused change writes nothing and tells no one.
    await expect(store.update('T1', { enabled: false, jt808Model: 'M' })).rejects.toThrow(/has no terminal phone number/);
    expect(store.device('T1')!.enabled).toBe(true);
    expect(changes.n).toBe(7);
  });

  it('makes a phone number free again when its device is removed, and keeps hashes out of device records', async () => {
    await store.add('T1', 'trucks', { phone: '13800138000', authCode: 'secret-code' });
    expect(JSON.stringify(store.list())).not.toContain(store.terminal('13800138000')!.authCodeHash);
    store.remove('T1');
    await store.add('T2', 'trucks', { phone: '13800138000' });
    expect(store.terminal('13800138000')?.deviceId).toBe('T2');
  });
});

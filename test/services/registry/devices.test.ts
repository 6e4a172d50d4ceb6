// The registry's device store as the embedded broker's credential directory, over real sockets,
// on SQLite and on PostgreSQL.
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
import { BACKENDS, registryLocations, violationOf } from '../../helpers/registry-backends.ts';
import { eventually, tempDir } from '../../helpers/service.ts';

describe.each(BACKENDS)('device store on %s', (backend) => {
  const location = registryLocations(backend);
  let dir: string;
  let db: RegistryDb;
  let store: DeviceStore;
  beforeEach(async () => {
    dir = await tempDir('waste-devices-');
    db = new RegistryDb(await location());
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
        const other = new RegistryDb(db.location);
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
      expect(violationOf(() => db.statement("UPDATE devices SET jt808_phone = '13900139000' WHERE id = 'S1'").run())).toBe('check');
      expect(violationOf(() => db.statement("UPDATE devices SET jt808_phone = '013900139000' WHERE id = 'T2'").run())).toBe('check');
      expect(violationOf(() => db.statement("UPDATE devices SET jt808_phone = '13800138000' WHERE id = 'T2'").run())).toBe('unique');
      expect(violationOf(() => db.statement("UPDATE devices SET jt808_model = 'M' WHERE id = 'T2'").run())).toBe('check');
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

  describe('DeviceStore as the LoRaWAN bridge\'s directory', () => {
    const EUI = '24E124136B502217';
    /** Counts the change notifications from here on. */
    const notifications = () => {
      const counter = { n: 0 };
      store.onChange(() => counter.n++);
      return counter;
    };

    it('stores a DevEUI however it is written in one form, and finds the sensor by any of them', async () => {
      await store.add('B1', 'bins', undefined, { devEui: '24-e1-24-13-6b-50-22-17', sensor: 'milesight-em310-udl' });
      expect(store.device('B1')).toMatchObject({ lorawan_dev_eui: EUI, lorawan_sensor: 'milesight-em310-udl', jt808_phone: null });
      expect(store.lorawanDevice(EUI)).toEqual({ deviceId: 'B1', devEui: EUI, sensor: 'milesight-em310-udl', enabled: true });
      for (const form of ['24e124136b502217', '24:E1:24:13:6B:50:22:17', '24-E1-24-13-6B-50-22-17', '24:e1:24:13:6b:50:22:17']) {
        expect(store.lorawanDevice(form)?.deviceId, form).toBe('B1');
        expect(store.devEuiHolder(form), form).toBe('B1');
      }
      await store.add('B2', 'bins', undefined, { devEui: 'a8:40:41:00:01:81:b3:7c' });
      expect(store.device('B2')).toMatchObject({ lorawan_dev_eui: 'A84041000181B37C', lorawan_sensor: null });
      expect(store.lorawanDevice('a84041000181b37c')).toEqual({ deviceId: 'B2', devEui: 'A84041000181B37C', sensor: null, enabled: true });
      // Neither a DevEUI nor one that is provisioned: no sensor, and no error.
      for (const unknown of ['24E124136B502218', '', '24E124136B5022', '24E124136B50221Z', '0000000000000000', 'not a eui']) {
        expect(store.lorawanDevice(unknown), unknown).toBeUndefined();
        expect(store.devEuiHolder(unknown), unknown).toBeUndefined();
      }
    });

    it('refuses malformed DevEUIs, unknown sensor models, DevEUIs another device has (naming it), and sensors of other classes', async () => {
      await store.add('B1', 'bins', undefined, { devEui: EUI });
      await expect(store.add('B2', 'bins', undefined, { devEui: '24:e1:24:13:6b:50:22:17' })).rejects.toThrow(new RegistryError('conflict', `DevEUI ${EUI} belongs to device B1 already`));
      expect(store.device('B2')).toBeUndefined();
      await expect(store.add('B2', 'bins', undefined, { devEui: '24E124136B50221' })).rejects.toThrow(
        new RegistryError('invalid', 'DevEUI "24E124136B50221" must be 16 hex digits (8 bytes, e.g. 24E124136B502217 or 24-E1-24-13-6B-50-22-17)'),
      );
      await expect(store.add('B2', 'bins', undefined, { devEui: '00-00-00-00-00-00-00-00' })).rejects.toThrow(new RegistryError('invalid', 'DevEUI "00-00-00-00-00-00-00-00" is zeros only, which no device is given'));
      await expect(store.add('B2', 'bins', undefined, { devEui: '24E124136B502218', sensor: 'milesight-em500-udl' })).rejects.toThrow(
        new RegistryError('invalid', 'sensor model "milesight-em500-udl" has no decoder; known models: milesight-em310-udl, milesight-em400-udl, dragino-ldds75 (or none, when the network server\'s codec sends the contract\'s fields)'),
      );
      await expect(store.add('T1', 'trucks', { phone: '13800138000' }, { devEui: '24E124136B502218' })).rejects.toMatchObject({ code: 'invalid', message: 'device T1 is of class trucks; only bins devices can be LoRaWAN sensors' });
      await expect(store.add('S1', 'scales', undefined, { devEui: '24E124136B502218' })).rejects.toMatchObject({ code: 'invalid', message: 'device S1 is of class scales; only bins devices can be LoRaWAN sensors' });
      expect(store.list().items.map((d) => d.id)).toEqual(['B1']);

      await store.add('B2', 'bins');
      await store.add('T1', 'trucks');
      for (const devEui of ['', '24E124136B5022171', '24E124136B50221G', '24 E1 24 13 6B 50 22 17', '24E1-24136B50221', '0x24E124136B502217', '０４E124136B502217', '0000000000000000']) {
        await expect(store.update('B2', { lorawanDevEui: devEui }), devEui).rejects.toMatchObject({ code: 'invalid' });
      }
      await expect(store.update('B2', { lorawanDevEui: '24E124136B502218', lorawanSensor: 'Milesight-EM310-UDL' })).rejects.toThrow(/sensor model "Milesight-EM310-UDL" has no decoder/);
      await expect(store.update('B2', { lorawanSensor: 'milesight-em310-udl' })).rejects.toThrow(new RegistryError('invalid', 'device B2 has no DevEUI; give one with the sensor model'));
      await expect(store.update('T1', { lorawanDevEui: '24E124136B502218' })).rejects.toThrow(new RegistryError('invalid', 'device T1 is of class trucks; only bins devices can be LoRaWAN sensors'));
      await expect(store.update('B2', { lorawanDevEui: '24e124136b502217' })).rejects.toThrow(new RegistryError('conflict', `DevEUI ${EUI} belongs to device B1 already`));
      await expect(store.update('NOPE', { lorawanDevEui: '24E124136B502218' })).rejects.toThrow(new RegistryError('not_found', 'no device NOPE'));
      expect(store.device('B2')).toMatchObject({ lorawan_dev_eui: null, lorawan_sensor: null });
      expect(store.lorawanDevices().map((s) => s.deviceId)).toEqual(['B1']);
      // A device keeps its own DevEUI, in whatever form it is given again.
      await store.update('B1', { lorawanDevEui: '24:e1:24:13:6b:50:22:17', lorawanSensor: 'dragino-ldds75' });
      expect(store.lorawanDevice(EUI)).toMatchObject({ deviceId: 'B1', sensor: 'dragino-ldds75' });
    });

    it('holds to the same in the schema, whatever writes to it', async () => {
      await store.add('B1', 'bins', undefined, { devEui: EUI });
      await store.add('B2', 'bins');
      await store.add('T1', 'trucks');
      const write = (sql: string) => () => db.statement(sql).run();
      expect(violationOf(write("UPDATE devices SET lorawan_dev_eui = '24e124136b502218' WHERE id = 'B2'"))).toBe('check');
      expect(violationOf(write("UPDATE devices SET lorawan_dev_eui = '24-E1-24-13-6B-50-22-18' WHERE id = 'B2'"))).toBe('check');
      expect(violationOf(write("UPDATE devices SET lorawan_dev_eui = '24E124136B5022' WHERE id = 'B2'"))).toBe('check');
      expect(violationOf(write("UPDATE devices SET lorawan_dev_eui = '0000000000000000' WHERE id = 'B2'"))).toBe('check');
      expect(violationOf(write("UPDATE devices SET lorawan_dev_eui = '24E124136B502218' WHERE id = 'T1'"))).toBe('check');
      expect(violationOf(write("UPDATE devices SET lorawan_sensor = 'dragino-ldds75' WHERE id = 'B2'"))).toBe('check');
      expect(violationOf(write(`UPDATE devices SET lorawan_dev_eui = '${EUI}' WHERE id = 'B2'`))).toBe('unique');
      // Devices without one are many: the index is over DevEUIs alone.
      await store.add('B3', 'bins');
      expect(store.list({ deviceClass: 'bins' }).total).toBe(3);
    });

    it('refuses, naming the holder, a DevEUI two additions race for: the second is stopped by the unique index', async () => {
      // Both are checked before either is written (the secret is hashed in between); whichever
      // hash is done first writes first.
      const ids = ['B1', 'B2'];
      const results = await Promise.allSettled([store.add('B1', 'bins', undefined, { devEui: EUI }), store.add('B2', 'bins', undefined, { devEui: '24:e1:24:13:6b:50:22:17' })]);
      expect(results.map((r) => r.status).sort()).toEqual(['fulfilled', 'rejected']);
      const winner = ids[results.findIndex((r) => r.status === 'fulfilled')]!;
      const loser = ids.find((id) => id !== winner)!;
      const { reason } = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
      expect(reason).toBeInstanceOf(RegistryError);
      expect(reason).toEqual(new RegistryError('conflict', `DevEUI ${EUI} belongs to device ${winner} already`));
      expect(store.device(loser)).toBeUndefined();
      expect(store.lorawanDevices()).toEqual([{ deviceId: winner, devEui: EUI, sensor: null, enabled: true }]);
    });

    it('sets, changes and clears a sensor with `enabled`, all or nothing, and tells the listeners of every change', async () => {
      await store.add('B1', 'bins');
      await store.add('B2', 'bins', undefined, { devEui: '24E124136B502218' });
      const changes = notifications();
      await store.update('B1', { lorawanDevEui: '24e124136b502217', lorawanSensor: 'milesight-em310-udl' });
      expect(store.lorawanDevice(EUI)).toEqual({ deviceId: 'B1', devEui: EUI, sensor: 'milesight-em310-udl', enabled: true });
      expect(changes.n).toBe(1);
      // The sensor model alone, with the DevEUI stored.
      await store.update('B1', { lorawanSensor: 'milesight-em400-udl' });
      expect(store.lorawanDevice(EUI)!.sensor).toBe('milesight-em400-udl');
      await store.update('B1', { lorawanSensor: null });
      expect(store.lorawanDevice(EUI)).toMatchObject({ sensor: null });
      await store.update('B1', { lorawanSensor: 'dragino-ldds75' });
      expect(changes.n).toBe(4);

      await store.update('B1', { enabled: false });
      expect(store.lorawanDevice(EUI)).toMatchObject({ enabled: false, sensor: 'dragino-ldds75' });
      // A new DevEUI (the sensor replaced): the model is kept unless given, and so is `enabled`.
      await store.update('B1', { lorawanDevEui: '24-E1-24-13-6B-50-22-19' });
      expect(store.lorawanDevice(EUI)).toBeUndefined();
      expect(store.lorawanDevice('24E124136B502219')).toEqual({ deviceId: 'B1', devEui: '24E124136B502219', sensor: 'dragino-ldds75', enabled: false });
      expect(changes.n).toBe(6);

      // A refused change writes nothing and tells no one: `enabled` stays as it was.
      await expect(store.update('B1', { enabled: true, lorawanDevEui: '24E124136B502218' })).rejects.toThrow(/DevEUI 24E124136B502218 belongs to device B2 already/);
      await expect(store.update('B1', { enabled: true, lorawanSensor: 'unknown' })).rejects.toThrow(/has no decoder/);
      await expect(store.update('B1', { enabled: true, lorawanDevEui: null, lorawanSensor: 'dragino-ldds75' })).rejects.toThrow(/has no DevEUI/);
      expect(store.device('B1')).toMatchObject({ enabled: false, lorawan_dev_eui: '24E124136B502219', lorawan_sensor: 'dragino-ldds75' });
      expect(changes.n).toBe(6);

      // null makes it no sensor: DevEUI and model go together; `enabled` changed with it.
      await store.update('B1', { enabled: true, lorawanDevEui: null });
      expect(store.device('B1')).toMatchObject({ enabled: true, lorawan_dev_eui: null, lorawan_sensor: null });
      expect(store.lorawanDevice('24E124136B502219')).toBeUndefined();
      expect(changes.n).toBe(7);
      // The freed DevEUI may be given to another device; clearing what is not there is no error.
      await store.update('B2', { lorawanDevEui: '24E124136B502219' });
      expect(store.devEuiHolder('24e124136b502219')).toBe('B2');
      await store.update('B1', { lorawanDevEui: null, lorawanSensor: null });
      expect(store.device('B1')).toMatchObject({ lorawan_dev_eui: null, lorawan_sensor: null });
    });

    it('lists every sensor with its model and state, and no other device', async () => {
      await store.add('B1', 'bins', undefined, { devEui: EUI, sensor: 'milesight-em310-udl' });
      await store.add('B2', 'bins');
      await store.add('B3', 'bins', undefined, { devEui: 'a8-40-41-00-01-81-b3-7c', sensor: 'dragino-ldds75' });
      await store.add('B4', 'bins', undefined, { devEui: '24E124136B502218' });
      await store.add('T1', 'trucks', { phone: '13800138000' });
      store.setEnabled('B3', false);
      const byId = (a: { deviceId: string }, b: { deviceId: string }) => a.deviceId.localeCompare(b.deviceId);
      expect(store.lorawanDevices().sort(byId)).toEqual([
        { deviceId: 'B1', devEui: EUI, sensor: 'milesight-em310-udl', enabled: true },
        { deviceId: 'B3', devEui: 'A84041000181B37C', sensor: 'dragino-ldds75', enabled: false },
        { deviceId: 'B4', devEui: '24E124136B502218', sensor: null, enabled: true },
      ]);
      store.remove('B1');
      expect(store.lorawanDevices().map((s) => s.deviceId).sort()).toEqual(['B3', 'B4']);
      // Removing a device frees its DevEUI.
      await store.add('B5', 'bins', undefined, { devEui: EUI });
      expect(store.lorawanDevice(EUI)?.deviceId).toBe('B5');
    });
  });
});

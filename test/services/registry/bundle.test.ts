// Bulk import on a real registry database: idempotent, all or nothing, problems listed (the first
// ones, with the count), bounded in items, safe against changes made while it runs.
import fs from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { hashSecret, verifySecret } from '../../../services/broker/secrets.ts';
import { BundleError, BundleTooLargeError, importBundle } from '../../../services/registry/bundle.ts';
import { importOffThread } from '../../../services/registry/bundle-thread.ts';
import { RegistryDb } from '../../../services/registry/db.ts';
import { DeviceStore, RegistryError } from '../../../services/registry/devices.ts';
import { ENTITIES } from '../../../services/registry/entities.ts';
import { EntityStore } from '../../../services/registry/entity-store.ts';
import { fromWgs84 } from '../../../services/registry/geometry.ts';
import { DEFAULT_LIMITS, registryLimits } from '../../../services/registry/limits.ts';
import { BACKENDS, registryLocations } from '../../helpers/registry-backends.ts';

const example = JSON.parse(fs.readFileSync('docs/examples/registry-bundle.json', 'utf8')) as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
const copy = () => structuredClone(example);

describe.each(BACKENDS)('registry bundles on %s', (backend) => {
  const location = registryLocations(backend);
  let db: RegistryDb;
  let deps: { db: RegistryDb; devices: DeviceStore; entities: EntityStore };
  beforeEach(async () => {
    db = new RegistryDb(await location());
    db.open();
    deps = { db, devices: new DeviceStore(db), entities: new EntityStore(db) };
  });
  afterEach(() => db.close());

  /** Every row of every registry table, to compare whole states. */
  function snapshot(): Record<string, unknown[]> {
    const sql =
      db.dialect === 'postgres'
        ? "SELECT table_name AS name FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY table_name"
        : "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name";
    const tables = (db.statement(sql).all() as { name: string }[]).map((t) => t.name);
    return Object.fromEntries(tables.map((t) => [t, db.statement(`SELECT * FROM ${t} ORDER BY 1, 2`).all()]));
  }

  describe('importBundle', () => {
    it('imports the documented example, with secrets for the new devices', async () => {
      const report = await importBundle(deps, copy());
      expect(report.counts).toMatchObject({
        devices: { created: 3 }, companies: { created: 1 }, districts: { created: 1 }, jurisdictions: { created: 2 }, communities: { created: 1 },
        sites: { created: 2 }, weighbridges: { created: 1 }, trucks: { created: 1 }, bins: { created: 1 }, permits: { created: 1 },
      });
      expect(report.deviceSecrets.map((d) => d.id).sort()).toEqual(['BIN-SZ-0001', 'GPS-SZ-0001', 'WB-SZ-0001']);
      const gps = report.deviceSecrets.find((d) => d.id === 'GPS-SZ-0001')!;
      expect(await verifySecret(gps.secret, deps.devices.device('GPS-SZ-0001')!.secret_hash)).toBe(true);
      expect(deps.entities.get(ENTITIES.permits, 'permit-2026-0001')).toMatchObject({ truck_ids: ['truck-e12345'], time_windows: [{ from: '21:00', to: '05:00' }] });
    });

    it('changes nothing when the same bundle comes again, and only what changed otherwise', async () => {
      await importBundle(deps, copy());
      const before = snapshot();
      const again = await importBundle(deps, copy());
      expect(Object.values(again.counts).every((c) => c.created === 0 && c.updated === 0)).toBe(true);
      expect(again.deviceSecrets).toEqual([]);
      expect(snapshot()).toEqual(before);

      const changed = copy();
      changed.companies[0].contact = '0512-6111 1111';
      changed.permits[0].status = 'suspended';
      const report = await importBundle(deps, changed);
      expect(report.counts.companies).toEqual({ created: 0, updated: 1, unchanged: 0 });
      expect(report.counts.permits).toEqual({ created: 0, updated: 1, unchanged: 0 });
      expect(report.counts.bins).toEqual({ created: 0, updated: 0, unchanged: 1 });
    });

    it('gives the same registry from a GCJ-02 bundle as from its WGS-84 original, and is idempotent in GCJ-02 too', async () => {
      const gcj = copy();
      gcj.crs = 'GCJ-02';
      for (const name of ['districts', 'jurisdictions', 'communities', 'sites']) for (const item of gcj[name]) item.geometry = fromWgs84(item.geometry, 'GCJ-02');
      for (const bin of gcj.bins) bin.location = fromWgs84(bin.location, 'GCJ-02');
      for (const permit of gcj.permits) permit.route = fromWgs84(permit.route, 'GCJ-02');
      await importBundle(deps, gcj);
      const [lon, lat] = (deps.entities.get(ENTITIES.bins, 'bin-pjl-001-k')!.location as { coordinates: number[] }).coordinates;
      expect(Math.abs(lon! - 120.6312)).toBeLessThan(1e-6);
      expect(Math.abs(lat! - 31.3141)).toBeLessThan(1e-6);
      const second = await importBundle(deps, gcj);
      expect(Object.values(second.counts).every((c) => c.created === 0 && c.updated === 0)).toBe(true);
    });

    it('writes nothing when anything is wrong, and lists every problem with its path', async () => {
      const broken = copy();
      broken.trucks.push({ id: 'truck-2', plate: '苏E·99999', company_id: 'no-such-company', fleet: 'muck', rated_gross_kg: 30000 });
      broken.sites[1].geometry = { type: 'Polygon', coordinates: [[[120.64, 31.4], [120.65, 31.41], [120.65, 31.4], [120.64, 31.41], [120.64, 31.4]]] };
      broken.bins[0].depth_mm = -5;
      broken.devices.push({ id: 'bad/id', class: 'trucks' });
      const error = await importBundle(deps, broken).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(BundleError);
      const problems = (error as BundleError).problems.map((p) => `${p.path.join('.')}: ${p.message}`);
      expect(problems).toEqual(
        expect.arrayContaining([
          expect.stringMatching(/^devices\.3\.id: /),
          expect.stringMatching(/^bins\.0\.depth_mm: /),
          expect.stringMatching(/^sites\.1\.geometry\.coordinates: geometry: the polygon crosses itself/),
          'trucks.1: company_id: no company no-such-company',
          expect.stringMatching(/^permits\.0: disposal_site_id: no site dump-xiangcheng-02/),
        ]),
      );
      const { schema_migrations: _migrations, registry_revision: revision, ...registry } = snapshot();
      expect(Object.values(registry).every((rows) => rows.length === 0)).toBe(true);
      // The rolled-back rows did not count as changes for the rules either.
      expect(revision).toEqual([{ id: 1, n: 0 }]);
    });

    it('refuses a secret hash the broker could not use, and names with control characters', async () => {
      const broken = copy();
      // Costlier than the service issues: p=64 once took 2.5 s a login attempt.
      const salt = Buffer.alloc(16, 1).toString('base64url');
      const key = Buffer.alloc(32, 2).toString('base64url');
      broken.devices.push({ id: 'GPS-COSTLY', class: 'trucks', secret_hash: `scrypt$16384$8$64$${salt}$${key}` });
      broken.companies[0].name = '运输公司\ntruck_position,device_id=X lat=1 1';
      broken.trucks[0].plate = '苏E\u0000001';
      const error = await importBundle(deps, broken).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(BundleError);
      const problems = (error as BundleError).problems.map((p) => `${p.path.join('.')}: ${p.message}`);
      expect(problems).toEqual(
        expect.arrayContaining([
          'devices.3.secret_hash: scrypt cost N=16384 r=8 p=64 exceeds the issued N=16384 r=8 p=1; import the device without a hash and give it a new secret',
          expect.stringMatching(/^companies\.0\.name: .*control characters/),
          expect.stringMatching(/^trucks\.0\.plate: .*control characters/),
        ]),
      );
      expect(deps.devices.device('GPS-COSTLY')).toBeUndefined();
    });

    it('checks without writing on a dry run', async () => {
      const report = await importBundle(deps, copy(), { dryRun: true });
      expect(report).toMatchObject({ dryRun: true, counts: { trucks: { created: 1 } }, deviceSecrets: [] });
      expect(deps.devices.list().total).toBe(0);
      expect(await importBundle(deps, { format: 'something-else', version: 1 }).catch((e: BundleError) => e.problems[0]!.path)).toEqual(['format']);
    });
  });

  describe('importBundle bounds and concurrency', () => {
    const company = (id: string) => ({ id, name: `公司 ${id}` });
    const truck = (id: string, plate: string, company_id = 'co-1') => ({ id, plate, company_id, fleet: 'muck', rated_gross_kg: 31000 });
    const bundleOf = (parts: Record<string, unknown[]>) => ({ format: 'waste-registry-bundle', version: 1, ...parts });
    const refusal = (promise: Promise<unknown>) => promise.then(() => null, (error: unknown) => error);

    it('keeps the first problems and counts all of them', async () => {
      const limited = { ...deps, entities: new EntityStore(db, undefined, registryLimits({ importMaxProblems: 10 })) };
      const error = (await refusal(importBundle(limited, bundleOf({ companies: Array.from({ length: 5000 }, () => ({})) })))) as BundleError;
      expect(error).toBeInstanceOf(BundleError);
      // Each item lacks its id and its name.
      expect(error.problemCount).toBe(10_000);
      expect(error.problems).toHaveLength(10);
      expect(error.message).toBe('the bundle was not imported: 10000 problems (the first 10 are listed); nothing was written');
    });

    it('refuses more items than the cap before checking any', async () => {
      const limited = { ...deps, entities: new EntityStore(db, undefined, registryLimits({ importMaxItems: 3 })) };
      const error = await refusal(importBundle(limited, bundleOf({ devices: [{ id: 'GPS-1', class: 'trucks' }], companies: [company('co-1'), company('co-2'), 'not even an object'] })));
      expect(error).toBeInstanceOf(BundleTooLargeError);
      expect((error as Error).message).toMatch(/^the bundle holds 4 items, more than the 3 one import takes \(registry\.importMaxItems\)/);
      expect(await importBundle(limited, bundleOf({ companies: [company('co-1'), company('co-2')] }))).toMatchObject({ counts: { companies: { created: 2 } } });
    });

    it('finds unique fields taken before writing, as writing in bundle order would', async () => {
      await importBundle(deps, bundleOf({ companies: [company('co-1')], trucks: [truck('t-1', '苏E·00001')] }));
      // Two items of the bundle want one plate; a new truck wants a stored truck's plate.
      const error = (await refusal(importBundle(deps, bundleOf({ trucks: [truck('t-2', '苏E·00002'), truck('t-3', '苏E·00002'), truck('t-4', '苏E·00001')] })))) as BundleError;
      expect(error.problems.map((p) => `${p.path.join('.')}: ${p.message}`)).toEqual(['trucks.1: plate is already used by another truck', 'trucks.2: plate is already used by another truck']);
      expect(deps.entities.list(ENTITIES.trucks, {}, 10, 0).total).toBe(1);
      // A stored truck moved off a plate earlier in the bundle frees it for a later item.
      const moved = await importBundle(deps, bundleOf({ trucks: [truck('t-1', '苏E·00009'), truck('t-5', '苏E·00001')] }));
      expect(moved.counts.trucks).toEqual({ created: 1, updated: 1, unchanged: 0 });
      expect(deps.entities.get(ENTITIES.trucks, 't-5')).toMatchObject({ plate: '苏E·00001' });
    });

    it('writes nothing when a row it compared is changed between the checks and the write', async () => {
      await importBundle(deps, bundleOf({ companies: [company('co-1'), company('co-2')] }));
      // A device without a hash: its secret is hashed after the checks, before the write; the API
      // changes a company meanwhile.
      const running = refusal(importBundle(deps, bundleOf({ devices: [{ id: 'GPS-1', class: 'trucks' }], companies: [{ id: 'co-1', name: '新名' }, company('co-2')] })));
      deps.entities.update(ENTITIES.companies, 'co-2', { contact: '0512-0000' });
      const error = (await running) as BundleError;
      expect(error).toBeInstanceOf(BundleError);
      expect(error.problems).toEqual([{ path: ['companies', 1], message: 'company co-2 was changed or removed while the bundle was checked; send the bundle again' }]);
      expect(deps.entities.get(ENTITIES.companies, 'co-1')).toMatchObject({ name: '公司 co-1' });
      expect(deps.devices.device('GPS-1')).toBeUndefined();
    });

    it('writes nothing when a row it refers to is removed between the checks and the write', async () => {
      await importBundle(deps, bundleOf({ companies: [company('co-1')] }));
      const running = refusal(importBundle(deps, bundleOf({ devices: [{ id: 'GPS-1', class: 'trucks' }], trucks: [truck('t-1', '苏E·00001')] })));
      deps.entities.remove(ENTITIES.companies, 'co-1');
      const error = (await running) as RegistryError;
      expect(error).toBeInstanceOf(RegistryError);
      expect(error).toMatchObject({ code: 'conflict', message: 'a row the bundle refers to was removed while the bundle was checked; nothing was written; send the bundle again' });
      expect(deps.entities.get(ENTITIES.trucks, 't-1')).toBeUndefined();
      expect(deps.devices.device('GPS-1')).toBeUndefined();
      expect(() => db.transaction(() => 1)).not.toThrow();
    });
  });

  describe('importBundle: JT/T 808 terminals', () => {
    const bundleOf = (devices: unknown[]) => ({ format: 'waste-registry-bundle', version: 1, devices });
    const refusal = (promise: Promise<unknown>) => promise.then(() => null, (error: unknown) => error);
    const problemsOf = async (bundle: unknown) => {
      const error = await refusal(importBundle(deps, bundle));
      expect(error).toBeInstanceOf(BundleError);
      return (error as BundleError).problems.map((p) => `${p.path.join('.')}: ${p.message}`);
    };

    it('imports terminals with their phone numbers, models and code hashes, and is idempotent', async () => {
      const codeHash = await hashSecret('imported-code');
      const bundle = bundleOf([
        { id: 'T1', class: 'trucks', jt808_phone: '013800138000', jt808_model: 'ZT-80', jt808_auth_code_hash: codeHash },
        { id: 'T2', class: 'trucks', jt808_phone: '13900139000' },
      ]);
      const changes: number[] = [];
      deps.devices.onChange(() => changes.push(1));
      expect((await importBundle(deps, bundle)).counts.devices).toEqual({ created: 2, updated: 0, unchanged: 0 });
      expect(deps.devices.terminal('13800138000')).toMatchObject({ deviceId: 'T1', model: 'ZT-80', authCodeHash: codeHash });
      expect(deps.devices.terminal('13900139000')).toMatchObject({ deviceId: 'T2', model: null, authCodeHash: null });
      expect(changes).toHaveLength(1);
      const before = snapshot();
      expect((await importBundle(deps, bundle)).counts.devices).toEqual({ created: 0, updated: 0, unchanged: 2 });
      expect(snapshot()).toEqual(before);
    });

    it('brings stored devices to the bundle\'s numbers and models, but keeps a stored code', async () => {
      await deps.devices.add('T1', 'trucks', { phone: '13800138000', authCode: 'stored-code' });
      await deps.devices.add('T2', 'trucks');
      await deps.devices.add('T3', 'trucks', { phone: '13700137000' });
      const changes: number[] = [];
      deps.devices.onChange(() => changes.push(1));
      const report = await importBundle(deps, bundleOf([
        // T1 gives its number up to T2, which comes after it; T3 is listed without terminal fields.
        { id: 'T1', class: 'trucks', jt808_phone: '13600136000', jt808_model: 'M1', jt808_auth_code_hash: await hashSecret('other') },
        { id: 'T2', class: 'trucks', jt808_phone: '13800138000', jt808_auth_code_hash: await hashSecret('for-t2') },
        { id: 'T3', class: 'trucks' },
      ]));
      expect(report.counts.devices).toEqual({ created: 0, updated: 2, unchanged: 1 });
      expect(changes).toHaveLength(1);
      expect(deps.devices.terminal('13600136000')).toMatchObject({ deviceId: 'T1', model: 'M1' });
      expect(await verifySecret('stored-code', deps.devices.terminal('13600136000')!.authCodeHash!)).toBe(true);
      expect(await verifySecret('for-t2', deps.devices.terminal('13800138000')!.authCodeHash!)).toBe(true);
      expect(deps.devices.terminal('13700137000')?.deviceId).toBe('T3');
    });

    it('refuses numbers given twice in the bundle or held by a stored device, terminals of other classes and unusable fields', async () => {
      await deps.devices.add('STORED', 'trucks', { phone: '13500135000' });
      const salt = Buffer.alloc(16, 1).toString('base64url');
      const key = Buffer.alloc(32, 2).toString('base64url');
      const problems = await problemsOf(bundleOf([
        { id: 'T1', class: 'trucks', jt808_phone: '13800138000' },
        { id: 'T2', class: 'trucks', jt808_phone: '0013800138000' },
        { id: 'T3', class: 'trucks', jt808_phone: '13500135000' },
        { id: 'B1', class: 'bins', jt808_phone: '13900139000' },
        { id: 'T4', class: 'trucks', jt808_phone: '138 0013 8000' },
        { id: 'T5', class: 'trucks', jt808_phone: '13100131000', jt808_model: 'M\u0000' },
        { id: 'T6', class: 'trucks', jt808_phone: '13200132000', jt808_auth_code_hash: `scrypt$16384$8$64$${salt}$${key}` },
        { id: 'T7', class: 'trucks', jt808_model: 'M' },
        { id: 'T1', class: 'trucks', jt808_phone: '13300133000' },
        // STORED gives its number up only after T3 wants it: written in bundle order, T3 would fail.
        { id: 'STORED', class: 'trucks', jt808_phone: '13400134000' },
      ]));
      expect(problems).toEqual([
        'devices.1.jt808_phone: terminal phone number 13800138000 is given to devices T1 (devices.0) and T2',
        'devices.2.jt808_phone: terminal phone number 13500135000 belongs to device STORED already',
        'devices.3.class: device B1 is of class bins; only trucks devices can be JT/T 808 terminals',
        'devices.4.jt808_phone: terminal phone number "138 0013 8000" must be 1-20 decimal digits (the terminal\'s SIM number)',
        'devices.5.jt808_model: terminal model "M\\u0000" contains control characters or unpaired surrogates',
        'devices.6.jt808_auth_code_hash: scrypt cost N=16384 r=8 p=64 exceeds the issued N=16384 r=8 p=1; import the device without a hash and give it a new secret',
        'devices.7.jt808_phone: jt808_model and jt808_auth_code_hash need jt808_phone',
        'devices.8.jt808_phone: device T1 appears twice in devices, with different JT/T 808 or LoRaWAN fields',
      ]);
      expect(deps.devices.list().total).toBe(1);
      expect(deps.devices.terminal('13500135000')?.deviceId).toBe('STORED');
    });

    it('writes nothing when another device takes a number between the checks and the write', async () => {
      // Devices without secret hashes: their secrets are hashed one after another after the checks,
      // before the write; the device added meanwhile needs one hash.
      const bins = Array.from({ length: 5 }, (_, i) => ({ id: `B${i}`, class: 'bins' }));
      const running = refusal(importBundle(deps, bundleOf([{ id: 'T1', class: 'trucks', jt808_phone: '13800138000' }, ...bins])));
      await deps.devices.add('OTHER', 'trucks', { phone: '13800138000' });
      const error = (await running) as BundleError;
      expect(error).toBeInstanceOf(BundleError);
      expect(error.problems).toEqual([{ path: ['devices'], message: 'terminal phone number 13800138000 of device T1 was given to another device while the bundle was checked' }]);
      expect(deps.devices.list().items.map((d) => d.id)).toEqual(['OTHER']);
    });
  });

  describe('importOffThread: JT/T 808 terminals', () => {
    it('imports terminals on the worker thread and says how many devices it created or changed', async () => {
      await deps.devices.add('T1', 'trucks');
      const bundle = { format: 'waste-registry-bundle', version: 1, devices: [{ id: 'T1', class: 'trucks', jt808_phone: '13800138000' }, { id: 'T2', class: 'trucks', jt808_phone: '13900139000', secret_hash: await hashSecret('s') }] };
      const result = await importOffThread({ location: db.location, body: Buffer.from(JSON.stringify(bundle)), dryRun: false, limits: DEFAULT_LIMITS });
      expect(result).toMatchObject({ devicesCreated: 1, devicesChanged: 2 });
      expect(deps.devices.terminal('13800138000')?.deviceId).toBe('T1');
      expect(deps.devices.terminal('13900139000')?.deviceId).toBe('T2');
      const duplicate = { ...bundle, devices: [{ id: 'T3', class: 'trucks', jt808_phone: '013900139000' }] };
      const error = await importOffThread({ location: db.location, body: Buffer.from(JSON.stringify(duplicate)), dryRun: false, limits: DEFAULT_LIMITS }).catch((e: unknown) => e);
      expect((error as BundleError).problems).toEqual([{ path: ['devices', 0, 'jt808_phone'], message: 'terminal phone number 13900139000 belongs to device T2 already' }]);
    });
  });

  describe('importBundle: LoRaWAN sensors', () => {
    const EUI = '24E124136B502217';
    const bundleOf = (devices: unknown[]) => ({ format: 'waste-registry-bundle', version: 1, devices });
    const refusal = (promise: Promise<unknown>) => promise.then(() => null, (error: unknown) => error);
    const problemsOf = async (bundle: unknown) => {
      const error = await refusal(importBundle(deps, bundle));
      expect(error).toBeInstanceOf(BundleError);
      return (error as BundleError).problems.map((p) => `${p.path.join('.')}: ${p.message}`);
    };

    it('imports sensors with their DevEUIs in the stored form and their models, and is idempotent', async () => {
      const bundle = bundleOf([
        { id: 'B1', class: 'bins', lorawan_dev_eui: '24-e1-24-13-6b-50-22-17', lorawan_sensor: 'milesight-em310-udl' },
        { id: 'B2', class: 'bins', lorawan_dev_eui: 'a8:40:41:00:01:81:b3:7c' },
        { id: 'B3', class: 'bins' },
      ]);
      const changes: number[] = [];
      deps.devices.onChange(() => changes.push(1));
      const report = await importBundle(deps, bundle);
      expect(report.counts.devices).toEqual({ created: 3, updated: 0, unchanged: 0 });
      expect(report.deviceSecrets.map((d) => d.id).sort()).toEqual(['B1', 'B2', 'B3']);
      expect(deps.devices.lorawanDevice(EUI)).toEqual({ deviceId: 'B1', devEui: EUI, sensor: 'milesight-em310-udl', enabled: true });
      expect(deps.devices.lorawanDevice('A84041000181B37C')).toEqual({ deviceId: 'B2', devEui: 'A84041000181B37C', sensor: null, enabled: true });
      expect(deps.devices.device('B3')).toMatchObject({ lorawan_dev_eui: null, lorawan_sensor: null });
      expect(deps.devices.lorawanDevices()).toHaveLength(2);
      expect(changes).toHaveLength(1);
      const before = snapshot();
      const again = await importBundle(deps, bundle);
      expect(again.counts.devices).toEqual({ created: 0, updated: 0, unchanged: 3 });
      expect(again.deviceSecrets).toEqual([]);
      expect(snapshot()).toEqual(before);
      expect(changes).toHaveLength(1);
      // The same DevEUI written another way is the same device, unchanged.
      expect((await importBundle(deps, bundleOf([{ id: 'B1', class: 'bins', lorawan_dev_eui: '24e124136b502217', lorawan_sensor: 'milesight-em310-udl' }]))).counts.devices).toEqual({ created: 0, updated: 0, unchanged: 1 });
      expect(snapshot()).toEqual(before);
    });

    it('brings stored devices to the bundle\'s DevEUIs and models, and keeps them when listed without', async () => {
      await deps.devices.add('B1', 'bins', undefined, { devEui: EUI, sensor: 'milesight-em310-udl' });
      await deps.devices.add('B2', 'bins');
      await deps.devices.add('B3', 'bins', undefined, { devEui: '24E124136B502218', sensor: 'dragino-ldds75' });
      await deps.devices.add('B4', 'bins', undefined, { devEui: '24E124136B502219' });
      deps.devices.setEnabled('B4', false);
      const changes: number[] = [];
      deps.devices.onChange(() => changes.push(1));
      const report = await importBundle(deps, bundleOf([
        // B1 gives its DevEUI up to B2, which comes after it; B3 is listed without LoRaWAN fields;
        // B4 keeps its DevEUI and is given a model.
        { id: 'B1', class: 'bins', lorawan_dev_eui: '24E124136B50221A' },
        { id: 'B2', class: 'bins', lorawan_dev_eui: '24:e1:24:13:6b:50:22:17', lorawan_sensor: 'milesight-em400-udl' },
        { id: 'B3', class: 'bins' },
        { id: 'B4', class: 'bins', lorawan_dev_eui: '24E124136B502219', lorawan_sensor: 'milesight-em310-udl' },
      ]));
      expect(report.counts.devices).toEqual({ created: 0, updated: 3, unchanged: 1 });
      expect(report.deviceSecrets).toEqual([]);
      expect(changes).toHaveLength(1);
      const byId = (a: { deviceId: string }, b: { deviceId: string }) => a.deviceId.localeCompare(b.deviceId);
      expect(deps.devices.lorawanDevices().sort(byId)).toEqual([
        // A DevEUI the bundle names without a model keeps the stored model.
        { deviceId: 'B1', devEui: '24E124136B50221A', sensor: 'milesight-em310-udl', enabled: true },
        { deviceId: 'B2', devEui: EUI, sensor: 'milesight-em400-udl', enabled: true },
        { deviceId: 'B3', devEui: '24E124136B502218', sensor: 'dragino-ldds75', enabled: true },
        { deviceId: 'B4', devEui: '24E124136B502219', sensor: 'milesight-em310-udl', enabled: false },
      ]);
    });

    it('refuses DevEUIs given twice in the bundle or held by a stored device, sensors of other classes and unusable fields', async () => {
      await deps.devices.add('STORED', 'bins', undefined, { devEui: '24E124136B502218' });
      const problems = await problemsOf(bundleOf([
        { id: 'B1', class: 'bins', lorawan_dev_eui: EUI },
        { id: 'B2', class: 'bins', lorawan_dev_eui: '24-e1-24-13-6b-50-22-17' },
        { id: 'B3', class: 'bins', lorawan_dev_eui: '24:E1:24:13:6B:50:22:18' },
        { id: 'T1', class: 'trucks', lorawan_dev_eui: '24E124136B502219' },
        { id: 'S1', class: 'scales', lorawan_sensor: 'dragino-ldds75' },
        { id: 'B4', class: 'bins', lorawan_dev_eui: '24E124136B5022' },
        { id: 'B5', class: 'bins', lorawan_dev_eui: '0000000000000000' },
        { id: 'B6', class: 'bins', lorawan_dev_eui: '24E124136B50221B', lorawan_sensor: 'milesight-em500-udl' },
        { id: 'B7', class: 'bins', lorawan_sensor: 'dragino-ldds75' },
        { id: 'B1', class: 'bins', lorawan_dev_eui: '24E124136B50221C' },
        // STORED gives its DevEUI up only after B3 wants it: written in bundle order, B3 would fail.
        { id: 'STORED', class: 'bins', lorawan_dev_eui: '24E124136B50221D' },
      ]));
      expect(problems).toEqual([
        `devices.1.lorawan_dev_eui: DevEUI ${EUI} is given to devices B1 (devices.0) and B2`,
        'devices.2.lorawan_dev_eui: DevEUI 24E124136B502218 belongs to device STORED already',
        'devices.3.class: device T1 is of class trucks; only bins devices can be LoRaWAN sensors',
        'devices.4.class: device S1 is of class scales; only bins devices can be LoRaWAN sensors',
        'devices.5.lorawan_dev_eui: DevEUI "24E124136B5022" must be 16 hex digits (8 bytes, e.g. 24E124136B502217 or 24-E1-24-13-6B-50-22-17)',
        'devices.6.lorawan_dev_eui: DevEUI "0000000000000000" is zeros only, which no device is given',
        'devices.7.lorawan_sensor: sensor model "milesight-em500-udl" has no decoder; known models: milesight-em310-udl, milesight-em400-udl, dragino-ldds75 (or none, when the network server\'s codec sends the contract\'s fields)',
        'devices.8.lorawan_dev_eui: lorawan_sensor needs lorawan_dev_eui',
        'devices.9.lorawan_dev_eui: device B1 appears twice in devices, with different JT/T 808 or LoRaWAN fields',
      ]);
      expect(deps.devices.list().total).toBe(1);
      expect(deps.devices.lorawanDevice('24E124136B502218')?.deviceId).toBe('STORED');
    });

    it('takes the same item twice when its fields are the same in any written form', async () => {
      const report = await importBundle(deps, bundleOf([
        { id: 'B1', class: 'bins', lorawan_dev_eui: EUI, lorawan_sensor: 'dragino-ldds75' },
        { id: 'B1', class: 'bins', lorawan_dev_eui: '24-e1-24-13-6b-50-22-17', lorawan_sensor: 'dragino-ldds75' },
      ]));
      expect(report.counts.devices).toEqual({ created: 1, updated: 0, unchanged: 0 });
      expect(deps.devices.lorawanDevice(EUI)).toMatchObject({ deviceId: 'B1', sensor: 'dragino-ldds75' });
    });

    it('writes nothing when another device takes a DevEUI between the checks and the write', async () => {
      // Devices without secret hashes: their secrets are hashed one after another after the checks,
      // before the write; the device added meanwhile needs one hash.
      const others = Array.from({ length: 5 }, (_, i) => ({ id: `X${i}`, class: 'bins' }));
      const running = refusal(importBundle(deps, bundleOf([{ id: 'B1', class: 'bins', lorawan_dev_eui: EUI }, ...others])));
      await deps.devices.add('OTHER', 'bins', undefined, { devEui: EUI });
      const error = (await running) as BundleError;
      expect(error).toBeInstanceOf(BundleError);
      expect(error.problems).toEqual([{ path: ['devices'], message: `DevEUI ${EUI} of device B1 was given to another device while the bundle was checked` }]);
      expect(deps.devices.list().items.map((d) => d.id)).toEqual(['OTHER']);

      // The same for a stored device the bundle would give the DevEUI to.
      await deps.devices.add('B2', 'bins');
      const changing = refusal(importBundle(deps, bundleOf([{ id: 'B2', class: 'bins', lorawan_dev_eui: '24E124136B502218' }, ...others])));
      await deps.devices.add('THIRD', 'bins', undefined, { devEui: '24E124136B502218' });
      const changed = (await changing) as BundleError;
      expect(changed).toBeInstanceOf(BundleError);
      expect(changed.problems).toEqual([{ path: ['devices', 0, 'lorawan_dev_eui'], message: 'DevEUI 24E124136B502218 was given to another device while the bundle was checked' }]);
      expect(deps.devices.device('B2')).toMatchObject({ lorawan_dev_eui: null });
      expect(deps.devices.list().items.map((d) => d.id).sort()).toEqual(['B2', 'OTHER', 'THIRD']);
    });
  });

  describe('importOffThread: LoRaWAN sensors', () => {
    it('imports sensors on the worker thread and says how many devices it created or changed', async () => {
      await deps.devices.add('B1', 'bins');
      const bundle = {
        format: 'waste-registry-bundle',
        version: 1,
        devices: [{ id: 'B1', class: 'bins', lorawan_dev_eui: '24e124136b502217' }, { id: 'B2', class: 'bins', lorawan_dev_eui: '24-E1-24-13-6B-50-22-18', lorawan_sensor: 'dragino-ldds75', secret_hash: await hashSecret('s') }],
      };
      const result = await importOffThread({ location: db.location, body: Buffer.from(JSON.stringify(bundle)), dryRun: false, limits: DEFAULT_LIMITS });
      expect(result).toMatchObject({ devicesCreated: 1, devicesChanged: 2 });
      expect(deps.devices.lorawanDevice('24E124136B502217')).toMatchObject({ deviceId: 'B1', sensor: null });
      expect(deps.devices.lorawanDevice('24E124136B502218')).toMatchObject({ deviceId: 'B2', sensor: 'dragino-ldds75' });
      const duplicate = { ...bundle, devices: [{ id: 'B3', class: 'bins', lorawan_dev_eui: '24:e1:24:13:6b:50:22:18' }] };
      const error = await importOffThread({ location: db.location, body: Buffer.from(JSON.stringify(duplicate)), dryRun: false, limits: DEFAULT_LIMITS }).catch((e: unknown) => e);
      expect((error as BundleError).problems).toEqual([{ path: ['devices', 0, 'lorawan_dev_eui'], message: 'DevEUI 24E124136B502218 belongs to device B2 already' }]);
    });
  });
});

// PostgreSQL only: SQLite compares text as bytes, whatever the locale; a PostgreSQL server
// initialised in a language's locale orders ids by that language's rules.
describe('registry bundles on PostgreSQL under a language\'s collation', () => {
  const location = registryLocations('postgres');

  it('finds a bundle imported again unchanged, whatever order the database sorts ids in', async () => {
    const registry = new RegistryDb(await location({ icuLocale: 'en-US' })).open();
    try {
      // en-US puts "a" before "B" and "JS_01" before "JS-02"; JavaScript's order is the other way round.
      expect(registry.statement("SELECT x FROM (VALUES ('B'), ('a'), ('JS-02'), ('JS_01')) v(x) ORDER BY x").all()).toEqual([{ x: 'a' }, { x: 'B' }, { x: 'JS_01' }, { x: 'JS-02' }]);
      const entities = new EntityStore(registry);
      const imports = { db: registry, devices: new DeviceStore(registry), entities };
      const geometry = { type: 'Polygon', coordinates: [[[120.62, 31.3], [120.66, 31.3], [120.66, 31.35], [120.62, 31.35], [120.62, 31.3]]] };
      const jurisdiction = (id: string, neighbour_ids: string[]) => ({ id, name: id, enforcement_unit: `${id} 中队`, geometry, neighbour_ids });
      const ids = ['a-west', 'B-east', 'JS_01', 'JS-02'];
      const bundle = { format: 'waste-registry-bundle', version: 1, jurisdictions: ids.map((id) => jurisdiction(id, ids.filter((other) => other !== id))) };
      expect((await importBundle(imports, bundle)).counts.jurisdictions).toEqual({ created: 4, updated: 0, unchanged: 0 });
      expect((await importBundle(imports, bundle)).counts.jurisdictions).toEqual({ created: 0, updated: 0, unchanged: 4 });
      expect(entities.get(ENTITIES.jurisdictions, 'a-west')!.neighbour_ids).toEqual(['B-east', 'JS-02', 'JS_01']);
      const { id, ...fields } = bundle.jurisdictions[0]!;
      expect(entities.upsert(ENTITIES.jurisdictions, id, fields)).toBe('unchanged');
    } finally {
      registry.close();
    }
  });
});

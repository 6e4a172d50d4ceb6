// The city's bins as LoRaWAN end devices: a DevEUI each, unique, deterministic and the same for a
// bin whatever the city's size; every other bin a Milesight EM400-UDL; accepted by the registry.
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { generateCity } from '../../../device-sim/city/generate.ts';
import { binDevEui } from '../../../device-sim/city/lorawan.ts';
import { hashSecret } from '../../../services/broker/secrets.ts';
import { importBundle } from '../../../services/registry/bundle.ts';
import { RegistryDb } from '../../../services/registry/db.ts';
import { DeviceStore } from '../../../services/registry/devices.ts';
import { EntityStore } from '../../../services/registry/entity-store.ts';
import { devEuiProblem } from '../../../services/lorawan/dev-eui.ts';
import { tempDir } from '../../helpers/service.ts';

type Device = Record<string, unknown> & { id: string; class: string };
const devicesOf = (city: ReturnType<typeof generateCity>) => city.bundle.devices as Device[];

describe('the bins\' LoRaWAN identities', () => {
  it('gives every bin a DevEUI: 16 hex digits after a locally administered prefix, unique, the same whatever the size of the city', () => {
    const city = generateCity({ seed: 5, bins: 400 });
    const bins = devicesOf(city).filter((d) => d.class === 'bins');
    const euis = bins.map((d) => d.lorawan_dev_eui as string);
    expect(euis.every((e) => /^025753[0-9A-F]{10}$/.test(e) && devEuiProblem(e) === null)).toBe(true);
    expect(new Set(euis).size).toBe(400);
    expect(devicesOf(city).filter((d) => d.class !== 'bins').some((d) => 'lorawan_dev_eui' in d || 'lorawan_sensor' in d)).toBe(false);
    // A smaller city of the same seed gives its bins the same DevEUIs; another seed, others.
    const euiOf = (c: ReturnType<typeof generateCity>) => new Map(devicesOf(c).map((d) => [d.id, d.lorawan_dev_eui]));
    const small = euiOf(generateCity({ seed: 5, bins: 12 }));
    const large = euiOf(city);
    for (const id of ['BIN-00001', 'BIN-00002', 'BIN-00012']) expect(small.get(id)).toBe(large.get(id));
    expect(euiOf(generateCity({ seed: 6 })).get('BIN-00001')).not.toBe(large.get('BIN-00001'));
    // The rest of the city is what it was before bins had DevEUIs: they take nothing from its random stream.
    const stripped = (c: ReturnType<typeof generateCity>) => devicesOf(c).map(({ lorawan_dev_eui: _e, lorawan_sensor: _s, ...rest }) => rest);
    expect(stripped(generateCity({ seed: 5, bins: 12 })).filter((d) => d.class === 'bins')).toEqual(Array.from({ length: 12 }, (_, i) => ({ id: `BIN-${String(i + 1).padStart(5, '0')}`, class: 'bins' })));
  });

  it('wraps around within the five bytes and is never all zeros', () => {
    expect(binDevEui('x', 1)).toMatch(/^025753/);
    const euis = Array.from({ length: 1000 }, (_, i) => binDevEui('x', i + 1));
    expect(new Set(euis).size).toBe(1000);
  });

  it('makes the even bins Milesight EM400-UDLs and leaves the odd ones without a model', () => {
    const bins = devicesOf(generateCity({ seed: 5, bins: 6 })).filter((d) => d.class === 'bins');
    expect(bins.map((d) => d.lorawan_sensor ?? null)).toEqual([null, 'milesight-em400-udl', null, 'milesight-em400-udl', null, 'milesight-em400-udl']);
  });

  it('imports into a real registry with its DevEUIs and models, as the bridge finds them', async () => {
    const city = generateCity({ seed: 3, trucks: 4, collectionTrucks: 2, bins: 40, constructionSites: 2 });
    const secret_hash = await hashSecret('city-secret');
    for (const device of devicesOf(city)) device.secret_hash = secret_hash;
    const db = new RegistryDb(path.join(await tempDir('waste-city-lorawan-'), 'registry.db'));
    db.open();
    try {
      const devices = new DeviceStore(db);
      const report = await importBundle({ db, devices, entities: new EntityStore(db) }, city.bundle);
      expect(report.counts.bins).toMatchObject({ created: 40 });
      const sensors = devices.lorawanDevices();
      expect(sensors).toHaveLength(40);
      const bin2 = devicesOf(city).find((d) => d.id === 'BIN-00002')!;
      expect(sensors.find((s) => s.deviceId === 'BIN-00002')).toEqual({ deviceId: 'BIN-00002', devEui: bin2.lorawan_dev_eui, sensor: 'milesight-em400-udl', enabled: true });
      expect(sensors.find((s) => s.deviceId === 'BIN-00001')!.sensor).toBeNull();
      // Imported again, nothing changes.
      const again = await importBundle({ db, devices, entities: new EntityStore(db) }, city.bundle);
      expect(again.counts.devices).toMatchObject({ created: 0, updated: 0 });
    } finally {
      db.close();
    }
  });
});

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { escape } from '../../../services/contract/line-protocol.ts';
import { startTestInfluxd, type TestInfluxd } from '../../helpers/influxd.ts';

describe('line-protocol escaping', () => {
  it('never lets a raw line break into a string field or a tag', () => {
    for (const value of ['a\nb', 'a\r\nb', '\n', 'x"\\\n"']) {
      expect(escape.quoted(value)).not.toMatch(/[\n\r]/);
      expect(escape.tag(value)).not.toMatch(/[\n\r]/);
    }
    expect(escape.quoted('苏E"1\\')).toBe('"苏E\\"1\\\\"');
  });

  describe('against the real InfluxDB', () => {
    let influx: TestInfluxd;
    beforeAll(async () => {
      influx = await startTestInfluxd();
      await influx.store().ensureDatabase();
    }, 30_000);
    afterAll(() => influx?.cleanup());

    it('stores each string as one point of its own series, line breaks written as \\n, quotes and backslashes exactly', async () => {
      // A plate that once held "\ntruck_position,device_id=T-9 lat=1 1" made a point of another series.
      const values = ['plain', 'q"uote', 'back\\slash\\', 'x\ntruck_position,device_id=T-9 lat=1,lon=1 1', 'cr\r'];
      const body = values.map((v, i) => `lp_test,n=${i} s=${escape.quoted(v)} ${1_700_000_000_000 + i}\n`).join('');
      await influx.store().write(Buffer.from(body));
      const series = await influx.store().query('SELECT s FROM lp_test');
      expect(series[0]!.values.map((row) => row[1])).toEqual(['plain', 'q"uote', 'back\\slash\\', 'x\\ntruck_position,device_id=T-9 lat=1,lon=1 1', 'cr\\r']);
      expect(await influx.store().query('SELECT * FROM truck_position')).toEqual([]);
    });
  });
});

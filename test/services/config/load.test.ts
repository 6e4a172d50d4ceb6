import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, configKeys, loadConfig } from '../../../services/config/load.ts';

describe('loadConfig', () => {
  it('has a default for every key', () => {
    const config = loadConfig({ env: {} });
    expect(config.broker.port).toBe(1883);
    expect(config.spool.dir).toBe(path.resolve('data/spool'));
    expect(config.broker.devicesFile).toBe(path.resolve('data/devices.json'));
    for (const key of configKeys()) expect(key.description.length, key.path).toBeGreaterThan(10);
  });

  it('reads environment variables named after the keys, typed', () => {
    const config = loadConfig({ env: { WASTE_BROKER_WS_PORT: '9001', WASTE_SPOOL_FSYNC: 'false', WASTE_INFLUX_URL: 'http://db:8086', WASTE_DATA_DIR: '/var/lib/waste' } });
    expect(config.broker.wsPort).toBe(9001);
    expect(config.spool.fsync).toBe(false);
    expect(config.influx.url).toBe('http://db:8086');
    expect(config.spool.dir).toBe('/var/lib/waste/spool');
  });

  it('stops with one sentence per bad value, naming the variable', () => {
    expect(() => loadConfig({ env: { WASTE_BROKER_PORT: 'abc', WASTE_LOG_LEVEL: 'loud' } })).toThrow(ConfigError);
    // A period Node's timers cannot hold (over 2^31 ms) would fire every millisecond: refused.
    expect(() => loadConfig({ env: { WASTE_RULES_ELSEWHERE_CHECK_S: '10000000' } })).toThrow(/rules\.elsewhereCheckS \(WASTE_RULES_ELSEWHERE_CHECK_S\)/);
    try {
      loadConfig({ env: { WASTE_BROKER_PORT: '70000' } });
    } catch (error) {
      expect((error as Error).message).toMatch(/broker\.port \(WASTE_BROKER_PORT\): .*65535/);
    }
  });

  it('reads a list (the JT/T 808 extension layouts) from the environment as JSON, and says so when it is not', () => {
    const layouts = [{ name: 'vendor-x', models: ['X1'], coverClosed: { item: 0xe3, bit: 0 } }];
    expect(loadConfig({ env: { WASTE_JT808_LAYOUTS: JSON.stringify(layouts) } }).jt808.layouts).toEqual([
      { name: 'vendor-x', models: ['X1'], source: '', coverClosed: { item: 0xe3, byte: 0, bit: 0, setMeans: true } },
    ]);
    expect(loadConfig({ env: {} }).jt808.layouts).toBeUndefined();
    expect(() => loadConfig({ env: { WASTE_JT808_LAYOUTS: '[{name' } })).toThrow(/jt808\.layouts \(WASTE_JT808_LAYOUTS\): not JSON/);
    expect(() => loadConfig({ env: { WASTE_JT808_LAYOUTS: '[{"name":"x","coverClosed":{"item":300,"bit":0}}]' } })).toThrow(/jt808\.layouts\.0\.coverClosed\.item/);
  });

  it('is documented key by key in the README', () => {
    const readme = fs.readFileSync('README.md', 'utf8');
    for (const key of configKeys()) expect(readme, key.path).toContain(`| \`${key.path}\` | \`${key.env}\` |`);
  });
});

import { describe, expect, it } from 'vitest';
import { FailureBackoff, addressSource } from '../../../services/broker/login-limits.ts';

describe('FailureBackoff', () => {
  const policy = { freeFailures: 3, baseMs: 1000, maxMs: 8000, maxKeys: 100 };

  it('makes a key wait from its freeFailures-th failure in a row on: baseMs, doubling up to maxMs', () => {
    let now = 0;
    const backoff = new FailureBackoff(policy, () => now);
    backoff.fail('X');
    backoff.fail('X');
    expect(backoff.waitFor('X')).toBe(0);
    const waits: number[] = [];
    for (let i = 0; i < 5; i++) {
      backoff.fail('X');
      waits.push(backoff.waitFor('X'));
      now += backoff.waitFor('X');
    }
    expect(waits).toEqual([1000, 2000, 4000, 8000, 8000]);
    expect(backoff.failures('X')).toBe(7);
    expect(backoff.waitFor('Y')).toBe(0);
  });

  it('forgets a key on success, and maxMs after its wait ended', () => {
    let now = 0;
    const backoff = new FailureBackoff(policy, () => now);
    for (let i = 0; i < 3; i++) backoff.fail('X');
    backoff.forget('X');
    expect(backoff.waitFor('X')).toBe(0);
    for (let i = 0; i < 3; i++) backoff.fail('Y');
    now += 1000 + 7999;
    expect(backoff.failures('Y')).toBe(3);
    now += 1;
    expect(backoff.failures('Y')).toBe(0);
    backoff.fail('Y');
    expect(backoff.waitFor('Y')).toBe(0);
  });

  it('remembers at most maxKeys keys, the least recently failed going first', () => {
    const backoff = new FailureBackoff({ ...policy, maxKeys: 10 }, () => 0);
    for (let i = 0; i < 1000; i++) backoff.fail(`spray-${i}`);
    expect(backoff.size()).toBe(10);
    expect(backoff.failures('spray-999')).toBe(1);
    expect(backoff.failures('spray-0')).toBe(0);
  });
});

describe('addressSource', () => {
  it('counts an IPv4 address as itself, also written IPv4-mapped, and an IPv6 address by its /64', () => {
    expect(addressSource('203.0.113.7')).toBe('203.0.113.7');
    expect(addressSource('::ffff:203.0.113.7')).toBe('203.0.113.7');
    expect(addressSource('2001:db8:1:2:aaaa::1')).toBe('2001:db8:1:2::/64');
    expect(addressSource('2001:db8:1:2:bbbb:cccc:dddd:eeee')).toBe('2001:db8:1:2::/64');
    expect(addressSource('2001:DB8:0001:0002::9')).toBe('2001:db8:1:2::/64');
    expect(addressSource('2001:db8::1')).toBe('2001:db8:0:0::/64');
    expect(addressSource('::1')).toBe('0:0:0:0::/64');
    expect(addressSource(undefined)).toBe('unknown');
  });
});

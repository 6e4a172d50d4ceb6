import { describe, expect, it } from 'vitest';
import { canPublish, canReceive, canSubscribe, type Identity } from '../../../services/broker/acl.ts';

const truck: Identity = { kind: 'device', deviceId: 'T1', deviceClass: 'trucks' };
const service: Identity = { kind: 'service', name: 'waste-rules' };

describe('device ACL', () => {
  it('lets a device publish under its own class and id only', () => {
    expect(canPublish(truck, 'waste/trucks/T1/position')).toBe('allow');
    expect(canPublish(truck, 'waste/trucks/T1/status')).toBe('allow');
    expect(canPublish(truck, 'waste/trucks/T2/position')).toBe('deny');
    expect(canPublish(truck, 'waste/bins/T1/telemetry')).toBe('deny');
    expect(canPublish(truck, 'waste/trucks/T10/position')).toBe('deny');
    expect(canPublish(truck, 'waste/trucks/T1/downlink/cmd')).toBe('deny');
    expect(canPublish(truck, 'waste/alerts/j1/route_deviation')).toBe('deny');
    expect(canPublish(truck, '$SYS/x')).toBe('deny');
  });

  it('lets a device subscribe to its own downlink only', () => {
    expect(canSubscribe(truck, 'waste/trucks/T1/downlink/#')).toBe(true);
    expect(canSubscribe(truck, 'waste/trucks/T1/downlink/config')).toBe(true);
    expect(canSubscribe(truck, 'waste/trucks/+/downlink/#')).toBe(false);
    expect(canSubscribe(truck, 'waste/#')).toBe(false);
    expect(canSubscribe(truck, '#')).toBe(false);
    expect(canSubscribe(truck, 'waste/trucks/T1/downlinkX')).toBe(false);
  });

  it('lets a device receive its own downlink only, whatever its subscriptions matched', () => {
    expect(canReceive(truck, 'waste/trucks/T1/downlink')).toBe(true);
    expect(canReceive(truck, 'waste/trucks/T1/downlink/cmd')).toBe(true);
    expect(canReceive(truck, 'waste/trucks/T2/downlink/cmd')).toBe(false);
    expect(canReceive(truck, 'waste/trucks/T1/position')).toBe(false);
    expect(canReceive(truck, 'waste/alerts/j1/route_deviation')).toBe(false);
    expect(canReceive(truck, '$SYS/broker/heartbeat')).toBe(false);
  });
});

describe('service ACL', () => {
  it('reads everything under waste/ and publishes alerts, reports and downlinks', () => {
    expect(canSubscribe(service, 'waste/#')).toBe(true);
    expect(canSubscribe(service, '#')).toBe(false);
    expect(canPublish(service, 'waste/alerts/j1/illegal_dump')).toBe('allow');
    expect(canPublish(service, 'waste/ingest/rejected')).toBe('allow');
    expect(canPublish(service, 'waste/trucks/T1/downlink/cmd')).toBe('allow');
    // A device may subscribe to the downlink topic itself, so the service may publish there.
    expect(canPublish(service, 'waste/trucks/T1/downlink')).toBe('allow');
    expect(canPublish(service, 'waste/trucks/T1/downlinkX')).toBe('deny');
    expect(canReceive(service, 'waste/trucks/T1/position')).toBe(true);
    expect(canReceive(service, '$SYS/broker/heartbeat')).toBe(false);
    expect(canPublish(service, 'waste/trucks/T1/position')).toBe('deny');
  });
});

// The MQTT topic map (docs/architecture.md §3): every topic the system uses is built and parsed here.

export const DEVICE_CLASSES = ['bins', 'trucks', 'scales'] as const;
export type DeviceClass = (typeof DEVICE_CLASSES)[number];

/** The one data channel each device class publishes on, besides `status`. */
export const DATA_CHANNEL = { bins: 'telemetry', trucks: 'position', scales: 'tickets' } as const satisfies Record<
  DeviceClass,
  string
>;
export type DataChannel = (typeof DATA_CHANNEL)[DeviceClass];
export type Channel = DataChannel | 'status';

/** Device ids appear in topics, so they must not contain MQTT wildcards, '/' or a leading '$'. */
export const DEVICE_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

export const ROOT = 'waste';
export const REJECTED_TOPIC = `${ROOT}/ingest/rejected`;

export interface DeviceTopic {
  deviceClass: DeviceClass;
  deviceId: string;
  channel: Channel;
}

export function isDeviceClass(value: string): value is DeviceClass {
  return (DEVICE_CLASSES as readonly string[]).includes(value);
}

export const topics = {
  data: (deviceClass: DeviceClass, deviceId: string): string => `${ROOT}/${deviceClass}/${deviceId}/${DATA_CHANNEL[deviceClass]}`,
  status: (deviceClass: DeviceClass, deviceId: string): string => `${ROOT}/${deviceClass}/${deviceId}/status`,
  /** Commands to a device; the only topics a device may subscribe to. */
  downlink: (deviceClass: DeviceClass, deviceId: string): string => `${ROOT}/${deviceClass}/${deviceId}/downlink/#`,
  alert: (jurisdiction: string, type: string): string => `${ROOT}/alerts/${jurisdiction}/${type}`,
  rejected: REJECTED_TOPIC,
  /** Subscriptions of the ingest worker on an external broker. */
  ingestSubscriptions: (): string[] => [
    ...DEVICE_CLASSES.map((c) => `${ROOT}/${c}/+/${DATA_CHANNEL[c]}`),
    ...DEVICE_CLASSES.map((c) => `${ROOT}/${c}/+/status`),
  ],
};

/** Parses `waste/{class}/{deviceId}/{channel}`; null for anything else. */
export function parseDeviceTopic(topic: string): DeviceTopic | null {
  const parts = topic.split('/');
  if (parts.length !== 4 || parts[0] !== ROOT) return null;
  const [, deviceClass, deviceId, channel] = parts as [string, string, string, string];
  if (!isDeviceClass(deviceClass) || !DEVICE_ID_PATTERN.test(deviceId)) return null;
  if (channel !== 'status' && channel !== DATA_CHANNEL[deviceClass]) return null;
  return { deviceClass, deviceId, channel };
}

/** The device a topic under waste/{class}/{deviceId}/ names, even when the rest is not contract. */
export function deviceIdOf(topic: string): string | null {
  const id = topic.split('/')[2];
  return id !== undefined && DEVICE_ID_PATTERN.test(id) ? id : null;
}

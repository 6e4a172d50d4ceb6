// ChirpStack v4's MQTT integration (chirpstack.io/docs/chirpstack/integrations/mqtt.html): it
// publishes each event of a device on application/{application_id}/device/{dev_eui}/event/{type},
// the payload the event message of integration.proto (chirpstack/api/proto/integration/
// integration.proto) in the Protobuf JSON mapping when the integration's `json = true`, the
// default (chirpstack.toml [integration.mqtt]). Fields at their default value (fCnt 0, an empty
// `data`) are left out of that JSON. `time` is when ChirpStack received the uplink; the
// deduplicationId is one UUID per uplink, however many gateways heard it.
import { z } from 'zod';
import { asObject, base64, bestRssi, counter, describe, devEuiField, fPortField, invalid, receiveTime, type NetworkEvent } from './events.ts';

export const CHIRPSTACK_TOPICS = ['application/+/device/+/event/up', 'application/+/device/+/event/join', 'application/+/device/+/event/status'];

const TOPIC = /^application\/[^/]+\/device\/([^/]+)\/event\/([^/]+)$/;

const deviceInfo = z.object({ devEui: devEuiField });
const common = z.object({ deduplicationId: z.string().min(1).max(100), time: z.unknown().optional(), deviceInfo });
const upEvent = common.extend({
  fCnt: counter,
  fPort: fPortField,
  data: base64,
  object: z.unknown().optional(),
  rxInfo: z.array(z.unknown()).max(1000).default([]),
});
const statusEvent = common.extend({
  externalPowerSource: z.boolean().default(false),
  batteryLevelUnavailable: z.boolean().default(false),
  batteryLevel: z.number().min(0).max(100).default(0),
});

export function parseChirpstackEvent(topic: string, json: unknown): NetworkEvent {
  const match = TOPIC.exec(topic);
  if (!match) return invalid(`topic ${topic} is not application/{application_id}/device/{dev_eui}/event/{type}`);
  const [, topicEui, type] = match as unknown as [string, string, string];
  if (type !== 'up' && type !== 'join' && type !== 'status') return { kind: 'other', what: type };
  const parsed = (type === 'up' ? upEvent : type === 'status' ? statusEvent : common).safeParse(json);
  if (!parsed.success) return invalid(`ChirpStack ${type} event: ${describe(parsed.error)}`);
  const { devEui } = parsed.data.deviceInfo;
  // The topic is where the broker's ACL would have let the device's data through; a payload
  // naming another device is not taken on trust.
  if (topicEui.toUpperCase() !== devEui) return invalid(`ChirpStack ${type} event for DevEUI ${devEui} on the topic of ${topicEui}`);
  if (type === 'join') return { kind: 'join', devEui };
  const time = receiveTime(parsed.data.time);
  if (!time.ok) return invalid(`ChirpStack ${type} event: ${time.message}`);
  if (type === 'status') {
    const status = parsed.data as z.infer<typeof statusEvent>;
    const known = !status.externalPowerSource && !status.batteryLevelUnavailable;
    return { kind: 'status', devEui, batteryPct: known ? status.batteryLevel : null, at: time.ms };
  }
  const up = parsed.data as z.infer<typeof upEvent>;
  return {
    kind: 'uplink',
    devEui,
    receivedAt: time.ms,
    fCnt: up.fCnt,
    fPort: up.fPort,
    payload: up.data,
    object: asObject(up.object),
    uplinkKey: up.deduplicationId,
    rssi: bestRssi(up.rxInfo),
  };
}

// The Things Stack v3's MQTT server (thethingsindustries.com/docs/integrations/mqtt/): it
// publishes an application's traffic on v3/{application id}@{tenant id}/devices/{device id}/{type},
// the payload an ApplicationUp message in JSON (docs "Data Formats"): end_device_ids (with the
// dev_eui), received_at, and for an uplink uplink_message {f_port, f_cnt, frm_payload (base64),
// decoded_payload when the device has a payload formatter, rx_metadata, received_at (when the
// network server received it), session_key_id}. The MQTT server publishes at QoS 0 only: what is
// sent while the bridge is disconnected is lost, and the gaps show in f_cnt (bridge.ts counts them).
import { z } from 'zod';
import { asObject, base64, bestRssi, counter, describe, devEuiField, fPortField, invalid, receiveTime, type NetworkEvent } from './events.ts';

export const TTS_TOPICS = ['v3/+/devices/+/up', 'v3/+/devices/+/join'];

const TOPIC = /^v3\/[^/]+\/devices\/([^/]+)\/([^/]+)$/;

const ids = z.object({ end_device_ids: z.object({ device_id: z.string().min(1).max(36), dev_eui: devEuiField }) });
const upMessage = ids.extend({
  received_at: z.unknown().optional(),
  uplink_message: z.object({
    session_key_id: z.string().max(100).optional(),
    f_port: fPortField,
    f_cnt: counter,
    frm_payload: base64,
    decoded_payload: z.unknown().optional(),
    rx_metadata: z.array(z.unknown()).max(1000).default([]),
    received_at: z.unknown().optional(),
  }),
});

export function parseTtsEvent(topic: string, json: unknown): NetworkEvent {
  const match = TOPIC.exec(topic);
  if (!match) return invalid(`topic ${topic} is not v3/{application id}@{tenant id}/devices/{device id}/{type}`);
  const [, topicDevice, type] = match as unknown as [string, string, string];
  if (type !== 'up' && type !== 'join') return { kind: 'other', what: type };
  const parsed = (type === 'up' ? upMessage : ids).safeParse(json);
  if (!parsed.success) return invalid(`The Things Stack ${type} message: ${describe(parsed.error)}`);
  const { dev_eui: devEui, device_id: deviceId } = parsed.data.end_device_ids;
  // As for ChirpStack (chirpstack.ts): a message naming another device than its topic is not taken on trust.
  if (deviceId !== topicDevice) return invalid(`The Things Stack ${type} message for device ${deviceId} on the topic of ${topicDevice}`);
  if (type === 'join') return { kind: 'join', devEui };
  const { received_at, uplink_message: up } = parsed.data as z.infer<typeof upMessage>;
  // The network server's time when there is one; the application server's, a little later, if not.
  const time = receiveTime(up.received_at ?? received_at);
  if (!time.ok) return invalid(`The Things Stack up message: ${time.message}`);
  return {
    kind: 'uplink',
    devEui,
    receivedAt: time.ms,
    fCnt: up.f_cnt,
    fPort: up.f_port,
    payload: up.frm_payload,
    object: asObject(up.decoded_payload),
    // A session key id is new with every join, when f_cnt starts again from 0.
    uplinkKey: `${up.session_key_id ?? ''}/${up.f_cnt}/${time.ms}`,
    rssi: bestRssi(up.rx_metadata),
  };
}

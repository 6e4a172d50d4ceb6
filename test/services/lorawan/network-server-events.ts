// Network-server events after the examples in the network servers' own documentation: the same
// fields, nesting, encodings and values (the comments of The Things Stack's example left out, as
// they are no JSON). Tests put their own DevEUI, fCnt and payload in with chirpstackEvent() and
// ttsUplink(), leaving every other field as documented.

/**
 * ChirpStack v4 "up" event, JSON encoding: chirpstack.io/docs/chirpstack/integrations/events.html,
 * section "up - Uplink event". Note fCnt is missing: it is 0, and the Protobuf JSON mapping leaves
 * out fields at their default value.
 */
export const CHIRPSTACK_UP_DOC = `{
    "deduplicationId": "3ac7e3c4-4401-4b8d-9386-a5c902f9202d",
    "time": "2022-07-18T09:34:15.775023242+00:00",
    "deviceInfo": {
        "tenantId": "52f14cd4-c6f1-4fbd-8f87-4025e1d49242",
        "tenantName": "ChirpStack",
        "applicationId": "17c82e96-be03-4f38-aef3-f83d48582d97",
        "applicationName": "Test application",
        "deviceProfileId": "14855bf7-d10d-4aee-b618-ebfcb64dc7ad",
        "deviceProfileName": "E1",
        "deviceName": "Test device",
        "devEui": "0101010101010101",
        "tags": {}
    },
    "devAddr": "00189440",
    "dr": 1,
    "fPort": 1,
    "data": "qg==",
    "rxInfo": [
        {
            "gatewayId": "0016c001f153a14c",
            "uplinkId": 4217106255,
            "rssi": -36,
            "snr": 10.5,
            "context": "E3OWOQ==",
            "metadata": {
                "region_name": "eu868",
                "region_common_name": "EU868"
            }
        }
    ],
    "txInfo": {
        "frequency": 867100000,
        "modulation": {
            "lora": {
                "bandwidth": 125000,
                "spreadingFactor": 11,
                "codeRate": "CR_4_5"
            }
        }
    }
}`;

/** ChirpStack v4 "join" event (same page, "join - Join event"). */
export const CHIRPSTACK_JOIN_DOC = `{
    "deduplicationId": "c9dbe358-2578-4fb7-b295-66b44369e5da",
    "time": "2022-07-18T09:33:28.823500726+00:00",
    "deviceInfo": {
        "tenantId": "52f14cd4-c6f1-4fbd-8f87-4025e1d49242",
        "tenantName": "ChirpStack",
        "applicationId": "17c82e96-be03-4f38-aef3-f83d48582d97",
        "applicationName": "Test application",
        "deviceProfileId": "14855bf7-d10d-4aee-b618-ebfcb64dc7ad",
        "deviceProfileName": "E1",
        "deviceName": "Test device",
        "devEui": "0101010101010101",
        "tags": {}
    },
    "devAddr": "00189440"
}`;

/**
 * ChirpStack v4 "status" event: the device's answer to DevStatusReq, battery in percent. The
 * fields are StatusEvent's of integration.proto (deduplication_id, time, device_info, margin,
 * external_power_source, battery_level_unavailable, battery_level) in their JSON names; the ids
 * and values are ours.
 */
export const CHIRPSTACK_STATUS_DOC = `{
    "deduplicationId": "9a5b1ee3-2a31-4c8f-9a7b-0d2f0e6f2e11",
    "time": "2022-07-18T09:35:02.112201002+00:00",
    "deviceInfo": {
        "tenantId": "52f14cd4-c6f1-4fbd-8f87-4025e1d49242",
        "tenantName": "ChirpStack",
        "applicationId": "17c82e96-be03-4f38-aef3-f83d48582d97",
        "applicationName": "Test application",
        "deviceProfileId": "14855bf7-d10d-4aee-b618-ebfcb64dc7ad",
        "deviceProfileName": "E1",
        "deviceName": "Test device",
        "devEui": "0101010101010101",
        "tags": {}
    },
    "margin": 6,
    "batteryLevel": 75.5
}`;

/**
 * The Things Stack v3 uplink message: thethingsindustries.com/docs/the-things-stack/concepts/
 * data-formats/, "Uplink Messages" (the documented example without its comments).
 */
export const TTS_UP_DOC = `{
  "end_device_ids" : {
    "device_id" : "dev1",
    "application_ids" : {
      "application_id" : "app1"
    },
    "dev_eui" : "0004A30B001C0530",
    "join_eui" : "800000000000000C",
    "dev_addr" : "00BCB929"
  },
  "correlation_ids" : [
    "as:up:01E0WZGT6SAGS4ANHV6EV4XRJ9",
    "gs:conn:01E0WDEC6T5T4XMS5TEVPXWWW4",
    "gs:uplink:01E0WZGSZ3ZQ9FYVPVDR9Q4JKN",
    "ns:uplink:01E0WZGSZBK1QHDHJ9YRGNS9RM",
    "rpc:/ttn.lorawan.v3.GsNs/HandleUplink:01E0WZGSZ3A3BAJP7K5JGPW2G6"
  ],
  "received_at" : "2020-02-12T15:15:49.860876431Z",
  "uplink_message" : {
    "session_key_id": "AXA50...",
    "f_cnt": 25,
    "f_port": 1,
    "frm_payload": "vu8=",
    "decoded_payload" : {
      "temperature": 1.0,
      "luminosity": 0.64
    },
    "rx_metadata": [{
      "gateway_ids": {
        "gateway_id": "gtw1",
        "eui": "9C5C8E00001A05C4"
      },
      "time": "2020-02-12T15:15:45.787Z",
      "timestamp": 2463457000,
      "rssi": -35,
      "channel_rssi": -35,
      "snr": 5.2,
      "uplink_token": "ChIKEAoEZ3R3MRIInFyO//8aBcQQ6Lel3gkaCwiNwZXyBRCw+IZJ",
      "channel_index": 2,
      "location": {
        "latitude": 37.97155556731436,
        "longitude": 23.72678801175413,
        "altitude": 2,
        "source": "SOURCE_REGISTRY"
      }
    }],
    "settings": {
      "data_rate": {
        "lora": {
          "bandwidth": 125000,
          "spreading_factor": 7
        }
      },
      "coding_rate": "4/6",
      "frequency": "868300000",
      "timestamp": 2463457000,
      "time": "2020-02-12T15:15:45.787Z"
    },
    "received_at": "2020-02-12T15:15:49.628054542Z",
    "consumed_airtime": "0.056576s"
  }
}`;

/** A ChirpStack event as documented, with another DevEUI, time, fCnt, payload or object. */
export function chirpstackEvent(doc: string, changes: { devEui?: string; time?: string; deduplicationId?: string; fCnt?: number; fPort?: number; data?: Buffer; object?: unknown }): string {
  const event = JSON.parse(doc) as Record<string, unknown> & { deviceInfo: Record<string, unknown> };
  if (changes.devEui !== undefined) event.deviceInfo.devEui = changes.devEui;
  if (changes.time !== undefined) event.time = changes.time;
  if (changes.deduplicationId !== undefined) event.deduplicationId = changes.deduplicationId;
  if (changes.fCnt !== undefined) event.fCnt = changes.fCnt;
  if (changes.fPort !== undefined) event.fPort = changes.fPort;
  if (changes.data !== undefined) event.data = changes.data.toString('base64');
  if (changes.object !== undefined) event.object = changes.object;
  return JSON.stringify(event);
}

/** A The Things Stack uplink as documented, with another DevEUI, time, fCnt, payload or decoded payload. */
export function ttsUplink(changes: { devEui?: string; receivedAt?: string; fCnt?: number; fPort?: number; payload?: Buffer; decoded?: unknown }): string {
  const message = JSON.parse(TTS_UP_DOC) as { end_device_ids: Record<string, unknown>; uplink_message: Record<string, unknown>; received_at: string };
  if (changes.devEui !== undefined) message.end_device_ids.dev_eui = changes.devEui;
  if (changes.receivedAt !== undefined) message.uplink_message.received_at = changes.receivedAt;
  if (changes.fCnt !== undefined) message.uplink_message.f_cnt = changes.fCnt;
  if (changes.fPort !== undefined) message.uplink_message.f_port = changes.fPort;
  if (changes.payload !== undefined) message.uplink_message.frm_payload = changes.payload.toString('base64');
  if (changes.decoded !== undefined) message.uplink_message.decoded_payload = changes.decoded;
  return JSON.stringify(message);
}

// Alert changes for subscribers on the broker: each is published as the alert's JSON on
// waste/alerts/{jurisdiction}/{type} (QoS 1), once per jurisdiction it touches, on `unassigned`
// when it touches none (docs/alerts.md). The bus is the broker the process runs or connects to.
import type { Logger } from 'pino';
import type { MessageBus } from '../contract/source.ts';
import { topics } from '../contract/topics.ts';
import { UNASSIGNED, type AlertEvent, type AlertOutput } from './alert-service.ts';

export class MqttAlertOutput implements AlertOutput {
  constructor(
    private readonly bus: MessageBus,
    private readonly log: Logger,
  ) {}

  deliver({ alert }: AlertEvent): void {
    const payload = JSON.stringify(alert);
    for (const jurisdiction of alert.jurisdictions.length > 0 ? alert.jurisdictions : [UNASSIGNED]) {
      this.bus.publish(topics.alert(jurisdiction, alert.type), payload, { qos: 1 }).catch((error: Error) => this.log.error({ alert: alert.id, error: error.message }, 'could not publish an alert on MQTT'));
    }
  }
}

// Tells the driver, on the truck's own terminal, that an alert about the truck was raised: a text
// message (JT/T 808 0x8300, shown and read aloud) naming what to do, in Chinese. Off by default
// (jt808.textOnAlert): a bureau decides whether drivers are told at once or only the officers.
import type { Logger } from 'pino';
import { DeviceOfflineError, type TextDownlink } from '../contract/downlink.ts';
import type { AlertType } from '../contract/alerts.ts';
import type { AlertEvent, AlertOutput } from './alert-service.ts';

/** What the driver is told, per truck alert type; types not listed are not sent. */
export const DRIVER_TEXTS: Partial<Record<AlertType, string>> = {
  route_deviation: '车辆已偏离核准路线，请立即返回核准线路行驶。',
  illegal_dump: '系统发现疑似违规倾倒，请立即停止倾倒，等待执法人员核查。',
  uncovered_transport: '车辆未密闭运输，请立即停车苫盖后再行驶。',
  load_loss: '系统发现疑似沿途抛洒，请立即停车检查车厢。',
  out_of_hours: '当前不在核准运输时段，请停止运输。',
  no_permit: '车辆无有效处置核准，请停止运输并联系所属企业。',
  speeding: '车辆已超速，请减速慢行。',
  overload: '车辆超载，请按核定载质量装载。',
};

export class DriverTextOutput implements AlertOutput {
  constructor(
    private readonly downlink: TextDownlink,
    private readonly log: Logger,
  ) {}

  deliver({ alert, change }: AlertEvent): void {
    const text = DRIVER_TEXTS[alert.type as AlertType];
    const deviceId = alert.subject.device_id;
    if (change !== 'raised' || alert.subject.kind !== 'truck' || !deviceId || !text) return;
    this.downlink.sendText(deviceId, text).then(
      (result) => this.log.info({ alert: alert.id, deviceId, result }, 'driver told of the alert on the terminal'),
      (error: Error) => {
        const level = error instanceof DeviceOfflineError ? 'debug' : 'warn';
        this.log[level]({ alert: alert.id, deviceId, error: error.message }, 'could not tell the driver of the alert');
      },
    );
  }
}

// Commands the service sends down to a device, whichever source holds its connection. Today: a
// text message to a truck's JT/T 808 terminal (0x8300), shown on its display and read aloud to the
// driver. The API and the alert outputs use this, not the gateway itself.

/** The device is not connected through a source that can reach it now. */
export class DeviceOfflineError extends Error {}

export interface TextDownlink {
  /**
   * Sends a text to the device; resolves with the device's answer (0 received, 1 failed, 2 message
   * error, 3 not supported: JT/T 808-2013 table 5). Throws DeviceOfflineError when it is not
   * connected, RangeError when the text is too long for one message.
   */
  sendText(deviceId: string, text: string): Promise<number>;
}

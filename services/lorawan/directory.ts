// What the LoRaWAN bridge needs of the registry: the bin sensor a DevEUI belongs to. The registry's
// DeviceStore implements it (registry/devices.ts), so provisioning stays in one place.

export interface LorawanRecord {
  deviceId: string;
  /** 16 upper-case hex digits. */
  devEui: string;
  /** The sensor model (lorawan/decoders/), or null: the network server's codec sends the contract's fields. */
  sensor: string | null;
  enabled: boolean;
}

export interface LorawanDirectory {
  /** Every LoRaWAN sensor, in one query (the bridge keeps them in memory). */
  lorawanDevices(): LorawanRecord[];
  /** Called after every registry change, from this process or another. */
  onChange(listener: () => void): void;
}

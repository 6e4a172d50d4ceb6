// What the JT/T 808 gateway needs to know about terminals. The registry's device store provides
// it (registry/devices.ts), as it provides the broker's CredentialDirectory: a terminal is a device
// of class `trucks` that also has a terminal phone number (the SIM number, JT/T 808-2013 §4.4.3).

export interface TerminalRecord {
  /** The registry device id (the truck's id in topics, alerts and InfluxDB). */
  deviceId: string;
  /** Terminal phone number: decimal digits, leading zeros removed (as header.ts reads it). */
  phone: string;
  enabled: boolean;
  /**
   * Hash of the authentication code (secrets.ts format), or null while the terminal has not
   * registered (0x0100) and was not given a code at provisioning.
   */
  authCodeHash: string | null;
  /** Terminal model, as provisioned or as the terminal reported it at registration; picks the extension layout. */
  model: string | null;
  /** Plate of the truck the device is fitted to (registry trucks.plate), which a registration must match when set. */
  plate: string | null;
}

export interface TerminalDirectory {
  /** The terminal with this phone number (normalised as above), or undefined. */
  terminal(phone: string): TerminalRecord | undefined;
  /**
   * Records a registration: the hash of the code issued and the model reported. Returns false,
   * changing nothing, when the terminal has a code already (registered before, or provisioned with
   * one), or is disabled or gone.
   */
  register(deviceId: string, authCodeHash: string, model: string | null): boolean;
  /** Every terminal, in one read (what revocation checks the connected ones against). */
  terminals(): TerminalRecord[];
  /** Called after every change of the devices, from this process or another. */
  onChange(listener: () => void): void;
}

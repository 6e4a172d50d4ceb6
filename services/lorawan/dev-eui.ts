// The DevEUI names a LoRaWAN end device everywhere: a 64-bit IEEE EUI-64 (LoRaWAN 1.0.3 §6.2.1).
// Network servers write it differently (ChirpStack v4: 16 lower-case hex digits; The Things Stack:
// upper case; people: with '-' or ':' between the bytes), so it is compared in one stored form.

const quoted = (value: string) => JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);

/** Why `devEui` cannot be a DevEUI, or null if it can: 16 hex digits, with or without '-' or ':' between the bytes. */
export function devEuiProblem(devEui: string): string | null {
  if (!/^[0-9A-Fa-f]{2}(?:[-:]?[0-9A-Fa-f]{2}){7}$/.test(devEui)) {
    return `DevEUI ${quoted(devEui)} must be 16 hex digits (8 bytes, e.g. 24E124136B502217 or 24-E1-24-13-6B-50-22-17)`;
  }
  if (/^[0:-]+$/.test(devEui)) return `DevEUI ${quoted(devEui)} is zeros only, which no device is given`;
  return null;
}

/** The stored form: 16 upper-case hex digits without separators. */
export function normaliseDevEui(devEui: string): string {
  return devEui.replace(/[-:]/g, '').toUpperCase();
}

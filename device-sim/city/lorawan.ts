// What makes a simulated bin sensor a LoRaWAN end device as well (docs/simulator.md "Bins over
// LoRaWAN"): a DevEUI, by which the network server and the service's LoRaWAN bridge know it, and a
// sensor model naming the decoder of its frames, or none (the network server's device-profile codec
// then writes the contract's own fields). Both deterministic, as the trucks' terminal phone numbers
// are (terminals.ts), so that a city generated again is the same city.
import crypto from 'node:crypto';

/** The sensor model whose real frames the simulator sends (services/lorawan/decoders/milesight-em400-udl.ts). */
export const SIM_LORAWAN_MODEL = 'milesight-em400-udl';

/**
 * The first three bytes of every simulated DevEUI, in the place of an IEEE OUI: 0x02 has the
 * universal/local bit set and the group bit clear (IEEE 802 §8.2: a locally administered,
 * individual address), so it is no manufacturer's block; 0x57 0x53 are "WS" (waste sim). Never all
 * zeros, which LoRaWAN gives no device.
 */
const PREFIX = '025753';
const SPACE = 2 ** 40;

/**
 * The DevEUI of a city's bin with ordinal `ordinal` (1 for BIN-00001): the prefix, then five bytes,
 * an offset derived from the seed plus the ordinal. Unique within a city by construction (up to 2^40
 * bins), and the same for a bin whatever the city's size, so that importing a larger or smaller city
 * of one seed into the same registry never gives one bin's DevEUI to another (the registry keeps
 * DevEUIs unique). 16 upper-case hex digits, the registry's stored form.
 */
export function binDevEui(seed: string | number, ordinal: number): string {
  const offset = crypto.createHash('sha256').update(`waste-sim-lorawan-dev-eui:${seed}`).digest().readUIntBE(0, 5);
  return `${PREFIX}${((offset + ordinal) % SPACE).toString(16).padStart(10, '0')}`.toUpperCase();
}

/**
 * The sensor model of a city's bin: every bin with an even ordinal is a Milesight EM400-UDL, whose
 * frames the bridge decodes itself; the others have none, their network server's codec making the
 * contract's fields.
 */
export function binSensorModel(ordinal: number): string | null {
  return ordinal % 2 === 0 ? SIM_LORAWAN_MODEL : null;
}

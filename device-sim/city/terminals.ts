// What makes a simulated truck's GPS unit a JT/T 808 terminal as well: a terminal phone number
// (its SIM number, in every message header) and the authentication code it logs in with. Both are
// deterministic, so that a city generated again is the same city and a run against it logs in.
import crypto from 'node:crypto';
import { WASTE_SIM_LAYOUT } from '../../services/jt808/terminal.ts';

/** The terminal model the simulator's trucks report; the gateway picks their vendor items by it. */
export const SIM_TERMINAL_MODEL = WASTE_SIM_LAYOUT.model;

/** Ordinals of collection trucks start here, so that muck and collection trucks never share a number. */
const COLLECTION_ORDINAL = 50_000_000;

/**
 * The phone number of a city's truck: 11 digits, 147 (a data-SIM block, as fitted in vehicle
 * terminals) then eight digits, an offset derived from the seed plus the truck's ordinal. Unique
 * within a city by construction, and the same for a truck whatever the city's size, so that
 * importing a larger or smaller city of one seed into the same registry never gives one truck's
 * number to another (the registry keeps numbers unique among devices).
 */
export function terminalPhone(seed: string | number, fleet: 'muck' | 'collection', index: number): string {
  const offset = crypto.createHash('sha256').update(`waste-sim-jt808-phone:${seed}`).digest().readUInt32BE(0) % 100_000_000;
  const ordinal = (fleet === 'collection' ? COLLECTION_ORDINAL : 0) + index;
  return `147${String((offset + ordinal) % 100_000_000).padStart(8, '0')}`;
}

/**
 * The authentication code of every terminal in a city, derived from the city's device secret. The
 * bundle carries its hash (jt808_auth_code_hash), so that the terminals are registered at import
 * and a run authenticates on its first connection and on every run after, as trucks with MQTT
 * log in with the shared secret. A code issued in a 0x8100 answer would live only as long as the
 * simulator that received it: the next run could not log in. It is not the secret itself: JT/T 808
 * sends it in clear, and knowing it gives no MQTT login. Printable ASCII without spaces, as the
 * registry asks of codes.
 */
export function cityAuthCode(secret: string): string {
  return crypto.createHash('sha256').update(`waste-sim-jt808-auth:${secret}`).digest('base64url').slice(0, 24);
}

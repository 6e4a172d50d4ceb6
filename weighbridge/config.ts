// The agent's configuration: one zod schema with every default in it (docs/weighbridge.md
// "Configuration" lists each key; a test keeps the two in step). Sources, later ones winning: a
// JSON file (--config), then command-line options. The device secret is never an option, since
// ps shows the command line to every user: it comes from a file (--secret-file, mqtt.secretFile)
// or the environment (WEIGHBRIDGE_SECRET).
import { z } from 'zod';
import { WASTE_CATEGORIES } from '../services/contract/payloads.ts';
import { DEVICE_ID_PATTERN } from '../services/contract/topics.ts';
import { FORMAT_NAMES } from './formats/index.ts';
import { PAIRING_DEFAULTS } from './weighing/ledger.ts';

const positive = z.number().positive();
const count = z.number().int().positive();
const port = z.number().int().min(0).max(65_535);

export const configSchema = z.object({
  input: z
    .object({
      serial: z
        .object({
          path: z.string().min(1).describe('Serial port, e.g. /dev/ttyUSB0 or /dev/serial/by-id/…'),
          baudRate: count.default(9600).describe('Baud rate, as set on the indicator'),
          dataBits: z.union([z.literal(7), z.literal(8)]).default(8).describe('Data bits: 8, or 7 with even parity for some Toledo setups'),
          parity: z.enum(['none', 'even', 'odd']).default('none'),
          stopBits: z.union([z.literal(1), z.literal(2)]).default(1),
        })
        .optional()
        .describe('The indicator on a serial port (one of serial, tcp)'),
      tcp: z
        .object({ host: z.string().min(1), port: port.min(1) })
        .optional()
        .describe('The indicator behind a serial-device server (one of serial, tcp)'),
      idleTimeoutS: positive.default(10).describe('A line silent this long is reopened (an indicator in continuous mode never stops)'),
      reconnectMinMs: count.default(1_000).describe('First wait before reopening a failed line; doubles'),
      reconnectMaxMs: count.default(30_000).describe('Longest wait before reopening a failed line'),
    })
    .refine((i) => (i.serial === undefined) !== (i.tcp === undefined), { error: 'give exactly one of --serial or --tcp (input.serial, input.tcp)' }),
  indicator: z
    .object({
      format: z.enum(FORMAT_NAMES).default('xk3190-a9').describe('Frame format the indicator sends'),
      unit: z.enum(['kg', 't']).default('kg').describe('Unit the indicator displays; t is multiplied by 1000'),
    })
    .prefault({}),
  mqtt: z.object({
    url: z.string().regex(/^(mqtts?|wss?|tcp|ssl):\/\//, { error: 'must be an mqtt://, mqtts://, ws:// or wss:// URL' }).default('mqtt://127.0.0.1:1883').describe('Broker URL'),
    deviceId: z
      .string({ error: 'is required' })
      .regex(DEVICE_ID_PATTERN, { error: 'must be a device id (letters, digits, _ . -; up to 64)' }).describe('The scale device id: MQTT username and client id; required'),
    secret: z
      .string({ error: 'is required: put it in a file (--secret-file, mqtt.secretFile) or WEIGHBRIDGE_SECRET' })
      .min(1).describe('From secretFile or WEIGHBRIDGE_SECRET, never a key of its own'),
    secretFile: z.string().optional().describe('File holding the device secret (first line)'),
    keepaliveS: count.default(30).describe('MQTT keepalive'),
    connectTimeoutMs: count.default(10_000).describe('Longest wait for CONNACK'),
    maxInFlight: count.max(100).default(10).describe('Tickets awaiting PUBACK at once'),
    reconnectMinMs: count.default(1_000).describe('First wait before reconnecting; doubles'),
    reconnectMaxMs: count.default(30_000).describe('Longest wait before reconnecting'),
  }),
  site: z.object({
    direction: z.enum(['in', 'out'], { error: (issue) => (issue.input === undefined ? 'is required' : 'must be "in" or "out"') }).describe('in: loads arrive (disposal site, plant); out: loads leave (construction site); required'),
    category: z.enum(WASTE_CATEGORIES, { error: (issue) => (issue.input === undefined ? 'is required' : `must be one of ${WASTE_CATEGORIES.join(', ')}`) }).describe('Waste category of every ticket; required'),
    origin: z.string().min(1).max(64).optional().describe('Community id put on every ticket (a station serving one community)'),
    ticketPrefix: z.string().regex(/^[A-Za-z0-9_.-]{1,40}$/, { error: 'must be 1-40 letters, digits, _ . -' }).optional().describe('First part of ticket numbers; default the device id'),
    utcOffsetMinutes: z.number().int().min(-720).max(840).default(480).describe("Site's offset from UTC (China: 480), for ticket dates and ts"),
  }),
  stability: z
    .object({
      // At most 1000: the window is kept in memory and scanned on every reading.
      count: count.min(2).max(1_000).default(8).describe('Readings in a row that must agree for a weighing (2-1000)'),
      toleranceKg: z.number().min(0).default(20).describe('Largest spread among them, kg'),
      minKg: positive.default(500).describe('Below this the bridge is empty, kg'),
      emptyCount: count.max(1_000).default(3).describe('Readings in a row below minKg before the truck counts as gone (one stray reading does not split a weighing)'),
      // At most the contract's largest weight (services/contract/payloads.ts): more is in no ticket.
      capacityKg: positive.max(100_000).default(PAIRING_DEFAULTS.capacityKg).describe("Readings above this are refused and counted, never weighed, kg (at most and by default the contract's 100 t)"),
      newTruckKg: positive.default(2_000).describe('A new steady weight this far (or 10 × toleranceKg, if more) from the weighed one is the next truck, kg'),
    })
    .refine((s) => s.capacityKg > s.minKg, { error: 'must be above stability.minKg', path: ['capacityKg'] })
    .prefault({}),
  pairing: z
    .object({
      expireAfterH: positive.default(12).describe('An unpaired weighing is dropped after this many hours'),
      plateWindowS: positive.default(120).describe('A plate given before a truck drives on applies to a truck arriving within this many seconds'),
      minPairIntervalS: z.number().min(0).default(PAIRING_DEFAULTS.minPairIntervalS).describe('Two weighings of a plate closer than this are the same truck weighed again, never a ticket'),
      minNetKg: z.number().min(0).default(PAIRING_DEFAULTS.minNetKg).describe('Two weighings of a plate closer in weight than this are the same truck weighed again, never a ticket, kg'),
    })
    .prefault({}),
  queueFile: z.string().min(1).default('data/weighbridge.db').describe('SQLite file of open weighings and unsent tickets'),
  page: z
    .object({
      enabled: z.boolean().default(true).describe('Serve the local page and camera endpoint'),
      host: z.string().min(1).default('127.0.0.1').describe('Address the page listens on; 0.0.0.0 for a camera on the LAN'),
      port: port.default(8090).describe('Port of the page'),
      cameraToken: z.string().min(8).optional().describe('From cameraTokenFile or WEIGHBRIDGE_CAMERA_TOKEN: camera pushes must carry it'),
      cameraTokenFile: z.string().optional().describe('File holding the camera token'),
    })
    .prefault({}),
  log: z
    .object({
      level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
      statusIntervalS: positive.default(60).describe('A status line (queue, broker, line) is logged this often'),
    })
    .prefault({}),
  prompt: z.boolean().default(true).describe('Ask for plates on the terminal when stdin is one'),
});

export type AgentConfig = z.infer<typeof configSchema>;

/** The command-line option of a key, where it has one. */
const FLAGS: Record<string, string> = {
  'input.serial.path': '--serial',
  'input.serial.baudRate': '--baud',
  'input.serial.dataBits': '--data-bits',
  'input.serial.parity': '--parity',
  'input.serial.stopBits': '--stop-bits',
  'indicator.format': '--format',
  'indicator.unit': '--unit',
  'mqtt.url': '--mqtt-url',
  'mqtt.deviceId': '--device-id',
  'site.direction': '--direction',
  'site.category': '--category',
  'site.origin': '--origin',
  'site.ticketPrefix': '--ticket-prefix',
  'stability.count': '--stable-count',
  'stability.toleranceKg': '--tolerance-kg',
  'stability.minKg': '--min-kg',
  'stability.emptyCount': '--empty-count',
  'stability.capacityKg': '--capacity-kg',
  'stability.newTruckKg': '--new-truck-kg',
  'pairing.expireAfterH': '--expire-after-h',
  'pairing.plateWindowS': '--plate-window-s',
  'pairing.minPairIntervalS': '--min-pair-interval-s',
  'pairing.minNetKg': '--min-net-kg',
  'page.host': '--page-host',
  'page.port': '--page-port',
  'log.level': '--log-level',
};

/** One line per problem, each naming the key and its option. */
export function describeIssues(error: z.ZodError): string {
  return error.issues
    .map((issue) => {
      const key = issue.path.join('.');
      const message = /received undefined/.test(issue.message) ? 'is required' : issue.message;
      return `${key || 'config'}${FLAGS[key] ? ` (${FLAGS[key]})` : ''}: ${message}`;
    })
    .join('\n');
}

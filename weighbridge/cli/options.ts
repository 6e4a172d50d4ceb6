// Command line and files → the raw configuration the schema (config.ts) checks. Options override
// the config file's keys; secrets come from files or the environment only.
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import { configSchema, describeIssues, type AgentConfig } from '../config.ts';

export const SECRET_ENV = 'WEIGHBRIDGE_SECRET';
export const CAMERA_TOKEN_ENV = 'WEIGHBRIDGE_CAMERA_TOKEN';

const OPTIONS = {
  config: { type: 'string' },
  serial: { type: 'string' },
  baud: { type: 'string' },
  'data-bits': { type: 'string' },
  parity: { type: 'string' },
  'stop-bits': { type: 'string' },
  tcp: { type: 'string' },
  format: { type: 'string' },
  unit: { type: 'string' },
  'mqtt-url': { type: 'string' },
  'device-id': { type: 'string' },
  'secret-file': { type: 'string' },
  direction: { type: 'string' },
  category: { type: 'string' },
  origin: { type: 'string' },
  'ticket-prefix': { type: 'string' },
  'stable-count': { type: 'string' },
  'tolerance-kg': { type: 'string' },
  'min-kg': { type: 'string' },
  'empty-count': { type: 'string' },
  'capacity-kg': { type: 'string' },
  'new-truck-kg': { type: 'string' },
  'expire-after-h': { type: 'string' },
  'plate-window-s': { type: 'string' },
  'min-pair-interval-s': { type: 'string' },
  'min-net-kg': { type: 'string' },
  'queue-file': { type: 'string' },
  'page-host': { type: 'string' },
  'page-port': { type: 'string' },
  'no-page': { type: 'boolean' },
  'camera-token-file': { type: 'string' },
  'log-level': { type: 'string' },
  'no-prompt': { type: 'boolean' },
  status: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

export class UsageError extends Error {}

export type Command = { kind: 'help' } | { kind: 'status'; queueFile: string } | { kind: 'run'; config: AgentConfig };

type Raw = Record<string, unknown>;

function section(raw: Raw, key: string): Raw {
  const value = raw[key];
  if (value !== undefined && (typeof value !== 'object' || value === null || Array.isArray(value))) throw new UsageError(`${key} in the config file must be an object`);
  return (raw[key] = { ...(value as Raw | undefined) });
}

function number(flag: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const value = Number(text);
  if (text.trim() === '' || !Number.isFinite(value)) throw new UsageError(`--${flag} must be a number, not "${text}"`);
  return value;
}

/** The first line of a secret file, which must exist and not be empty. */
function readSecret(file: string, what: string): string {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (error) {
    throw new UsageError(`cannot read the ${what} file ${file}: ${(error as Error).message}`);
  }
  const secret = text.split(/\r?\n/)[0]!.trim();
  if (!secret) throw new UsageError(`the ${what} file ${file} is empty`);
  return secret;
}

function set(target: Raw, key: string, value: unknown): void {
  if (value !== undefined) target[key] = value;
}

function readConfigFile(file: string): Raw {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (error) {
    throw new UsageError(`cannot read the config file ${file}: ${(error as Error).message}`);
  }
  try {
    const parsed: unknown = JSON.parse(text);
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('not a JSON object');
    return parsed as Raw;
  } catch (error) {
    throw new UsageError(`the config file ${file} is not a JSON object: ${(error as Error).message}`);
  }
}

export function parseCommand(argv: string[], env: NodeJS.ProcessEnv): Command {
  let values;
  try {
    ({ values } = parseArgs({ args: argv, options: OPTIONS, strict: true, allowPositionals: false }));
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  if (values.help) return { kind: 'help' };
  const raw: Raw = values.config ? readConfigFile(values.config) : {};

  const input = section(raw, 'input');
  if (values.serial !== undefined || values.tcp !== undefined) {
    delete input.serial;
    delete input.tcp;
  }
  if (values.serial !== undefined) {
    input.serial = { path: values.serial };
  }
  if (input.serial !== undefined) {
    const serial = section(input, 'serial');
    set(serial, 'baudRate', number('baud', values.baud));
    set(serial, 'dataBits', number('data-bits', values['data-bits']));
    set(serial, 'parity', values.parity);
    set(serial, 'stopBits', number('stop-bits', values['stop-bits']));
  } else if (values.baud ?? values['data-bits'] ?? values.parity ?? values['stop-bits']) {
    throw new UsageError('--baud, --data-bits, --parity and --stop-bits go with --serial (a serial-device server has its own serial settings)');
  }
  if (values.tcp !== undefined) {
    const match = /^\[?([^\]]+?)\]?:(\d{1,5})$/.exec(values.tcp);
    if (!match) throw new UsageError(`--tcp must be host:port, e.g. 192.168.1.7:8234, not "${values.tcp}"`);
    input.tcp = { host: match[1], port: Number(match[2]) };
  }

  const indicator = section(raw, 'indicator');
  set(indicator, 'format', values.format);
  set(indicator, 'unit', values.unit);

  const mqtt = section(raw, 'mqtt');
  set(mqtt, 'url', values['mqtt-url']);
  set(mqtt, 'deviceId', values['device-id']);
  set(mqtt, 'secretFile', values['secret-file']);
  if ('secret' in mqtt) throw new UsageError('mqtt.secret cannot be in the config file: put the secret in its own file (mqtt.secretFile, --secret-file) or WEIGHBRIDGE_SECRET');
  if (typeof mqtt.secretFile === 'string') mqtt.secret = readSecret(mqtt.secretFile, 'secret');
  else set(mqtt, 'secret', env[SECRET_ENV]?.trim() || undefined);

  const site = section(raw, 'site');
  set(site, 'direction', values.direction);
  set(site, 'category', values.category);
  set(site, 'origin', values.origin);
  set(site, 'ticketPrefix', values['ticket-prefix']);

  const stability = section(raw, 'stability');
  set(stability, 'count', number('stable-count', values['stable-count']));
  set(stability, 'toleranceKg', number('tolerance-kg', values['tolerance-kg']));
  set(stability, 'minKg', number('min-kg', values['min-kg']));
  set(stability, 'emptyCount', number('empty-count', values['empty-count']));
  set(stability, 'capacityKg', number('capacity-kg', values['capacity-kg']));
  set(stability, 'newTruckKg', number('new-truck-kg', values['new-truck-kg']));

  const pairing = section(raw, 'pairing');
  set(pairing, 'expireAfterH', number('expire-after-h', values['expire-after-h']));
  set(pairing, 'plateWindowS', number('plate-window-s', values['plate-window-s']));
  set(pairing, 'minPairIntervalS', number('min-pair-interval-s', values['min-pair-interval-s']));
  set(pairing, 'minNetKg', number('min-net-kg', values['min-net-kg']));

  set(raw, 'queueFile', values['queue-file']);
  if (values.status) return { kind: 'status', queueFile: typeof raw.queueFile === 'string' ? raw.queueFile : (configSchema.shape.queueFile.parse(undefined) as string) };

  const page = section(raw, 'page');
  set(page, 'host', values['page-host']);
  set(page, 'port', number('page-port', values['page-port']));
  if (values['no-page']) page.enabled = false;
  set(page, 'cameraTokenFile', values['camera-token-file']);
  if ('cameraToken' in page) throw new UsageError('page.cameraToken cannot be in the config file: use page.cameraTokenFile or WEIGHBRIDGE_CAMERA_TOKEN');
  if (typeof page.cameraTokenFile === 'string') page.cameraToken = readSecret(page.cameraTokenFile, 'camera token');
  else set(page, 'cameraToken', env[CAMERA_TOKEN_ENV]?.trim() || undefined);

  const log = section(raw, 'log');
  set(log, 'level', values['log-level']);
  if (values['no-prompt']) raw.prompt = false;

  const parsed = configSchema.safeParse(raw);
  if (!parsed.success) throw new UsageError(describeIssues(parsed.error));
  return { kind: 'run', config: parsed.data };
}

// Loads the configuration once at boot: schema defaults, then an optional JSON file, then
// environment variables (WASTE_<KEY_IN_SNAKE_CASE>, e.g. WASTE_BROKER_WS_PORT). Invalid values stop
// the boot with one sentence per problem.
import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { configSchema, type Config } from './schema.ts';

export interface ConfigKey {
  /** Dotted path, e.g. broker.wsPort. */
  path: string;
  /** Environment variable that overrides it. */
  env: string;
  /** json: a list or object, given in the environment as JSON. */
  kind: 'string' | 'number' | 'boolean' | 'enum' | 'json';
  defaultValue: unknown;
  description: string;
}

type AnySchema = z.ZodType & { def: { type: string; innerType?: AnySchema; defaultValue?: unknown } };

function unwrap(schema: AnySchema): { leaf: AnySchema; defaultValue: unknown; description: string } {
  let current = schema;
  let defaultValue: unknown;
  const description = schema.description ?? '';
  while (current.def.innerType && ['default', 'prefault', 'optional'].includes(current.def.type)) {
    if (current.def.type === 'default') defaultValue = current.def.defaultValue;
    current = current.def.innerType;
  }
  return { leaf: current, defaultValue, description: description || (current.description ?? '') };
}

function envName(dotted: string): string {
  return 'WASTE_' + dotted.replace(/\./g, '_').replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase();
}

/** Every leaf key of the schema, in declaration order. */
export function configKeys(): ConfigKey[] {
  const keys: ConfigKey[] = [];
  const walk = (shape: Record<string, AnySchema>, prefix: string): void => {
    for (const [name, field] of Object.entries(shape)) {
      const dotted = prefix ? `${prefix}.${name}` : name;
      const { leaf, defaultValue, description } = unwrap(field);
      if (leaf instanceof z.ZodObject) {
        walk(leaf.shape as Record<string, AnySchema>, dotted);
        continue;
      }
      const kind = leaf instanceof z.ZodNumber ? 'number' : leaf instanceof z.ZodBoolean ? 'boolean' : leaf instanceof z.ZodEnum ? 'enum' : leaf instanceof z.ZodArray ? 'json' : 'string';
      keys.push({ path: dotted, env: envName(dotted), kind, defaultValue, description });
    }
  };
  walk(configSchema.shape as unknown as Record<string, AnySchema>, '');
  return keys;
}

function setPath(target: Record<string, unknown>, dotted: string, value: unknown): void {
  const parts = dotted.split('.');
  let node = target;
  for (const part of parts.slice(0, -1)) {
    const next = node[part];
    node[part] = typeof next === 'object' && next !== null ? next : {};
    node = node[part] as Record<string, unknown>;
  }
  node[parts.at(-1)!] = value;
}

function fromEnv(key: ConfigKey, raw: string): unknown {
  if (key.kind === 'number') return raw.trim() === '' ? Number.NaN : Number(raw);
  if (key.kind === 'boolean') return raw === 'true' || raw === '1' ? true : raw === 'false' || raw === '0' ? false : raw;
  if (key.kind === 'json') {
    try {
      return JSON.parse(raw) as unknown;
    } catch {
      throw new ConfigError(`${key.path} (${key.env}): not JSON: ${raw.slice(0, 80)}`);
    }
  }
  return raw;
}

export class ConfigError extends Error {}

export interface LoadOptions {
  file?: string | undefined;
  env?: NodeJS.ProcessEnv;
  overrides?: Record<string, unknown>;
}

/** Parses and validates the configuration; throws ConfigError with every problem listed. */
export function loadConfig(options: LoadOptions = {}): Config {
  const env = options.env ?? process.env;
  const file = options.file ?? env.WASTE_CONFIG;
  let raw: Record<string, unknown> = {};
  if (file) {
    try {
      raw = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
    } catch (error) {
      throw new ConfigError(`cannot read config file ${file}: ${(error as Error).message}`);
    }
  }
  for (const key of configKeys()) {
    const value = env[key.env];
    if (value !== undefined) setPath(raw, key.path, fromEnv(key, value));
  }
  for (const [dotted, value] of Object.entries(options.overrides ?? {})) setPath(raw, dotted, value);
  const parsed = configSchema.safeParse(raw);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => {
      const dotted = issue.path.join('.');
      const key = configKeys().find((k) => k.path === dotted);
      return `${dotted}${key ? ` (${key.env})` : ''}: ${issue.message}`;
    });
    throw new ConfigError(`invalid configuration:\n  ${problems.join('\n  ')}`);
  }
  return resolvePaths(parsed.data);
}

/** Fills the paths that default to a place under dataDir. */
function resolvePaths(config: Config): Config {
  const dataDir = path.resolve(config.dataDir);
  return {
    ...config,
    dataDir,
    broker: { ...config.broker, devicesFile: path.resolve(config.broker.devicesFile || path.join(dataDir, 'devices.json')) },
    spool: { ...config.spool, dir: path.resolve(config.spool.dir || path.join(dataDir, 'spool')) },
    registry: { ...config.registry, file: path.resolve(config.registry.file || path.join(dataDir, 'registry.db')) },
  };
}

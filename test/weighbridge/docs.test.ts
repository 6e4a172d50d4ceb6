// docs/weighbridge.md documents every configuration key (with its default) and every option.
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { z } from 'zod';
import { HELP } from '../../weighbridge/cli/help.ts';
import { configSchema } from '../../weighbridge/config.ts';

type Def = { type: string; shape?: Record<string, z.ZodType>; innerType?: z.ZodType };

/** The dotted paths of the schema's leaves. */
function leaves(schema: z.ZodType, prefix = ''): string[] {
  const def = (schema as unknown as { _zod: { def: Def } })._zod.def;
  if (def.innerType) return leaves(def.innerType, prefix);
  if (def.type === 'object') return Object.entries(def.shape!).flatMap(([key, child]) => leaves(child, prefix ? `${prefix}.${key}` : key));
  return [prefix];
}

const doc = fs.readFileSync('docs/weighbridge.md', 'utf8');

describe('docs/weighbridge.md', () => {
  it('has a row for every configuration key', () => {
    const keys = leaves(configSchema);
    expect(keys.length).toBeGreaterThan(30);
    expect(keys.filter((key) => !doc.includes(`\`${key}\``))).toEqual([]);
  });

  it('names every option of --help', () => {
    const options = [...new Set(HELP.match(/^\s+(--[a-z-]+)/gm)!.map((line) => line.trim()))];
    expect(options.filter((option) => !doc.includes(option) && !['--config', '--status', '--help'].includes(option))).toEqual([]);
  });
});

// Prints the README's configuration table from the config schema (npm run config:table).
import { configKeys } from '../services/config/load.ts';

if (process.argv.includes('--help')) {
  process.stdout.write('Usage: npm run config:table\nPrints the configuration table (Markdown) generated from services/config/schema.ts.\n');
  process.exit(0);
}

const format = (value: unknown): string => (value === '' ? '(empty)' : `\`${JSON.stringify(value)}\``);
const rows = configKeys().map((k) => `| \`${k.path}\` | \`${k.env}\` | ${format(k.defaultValue)} | ${k.description.replace(/\|/g, '\\|')} |`);
process.stdout.write(['| key | environment variable | default | meaning |', '|---|---|---|---|', ...rows].join('\n') + '\n');

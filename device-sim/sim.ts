// `npm run sim -- <command>`: the city simulator.
import { CITY_HELP, cityCommand } from './run/city-command.ts';
import { DEMO_HELP, demoCommand } from './run/demo.ts';
import { UsageError } from './run/options.ts';
import { RUN_HELP, runCommand } from './run/run-command.ts';
import { SCORE_HELP, scoreCommand } from './run/score-command.ts';

const COMMANDS: Record<string, { help: string; run: (argv: string[]) => Promise<number> }> = {
  city: { help: CITY_HELP, run: cityCommand },
  run: { help: RUN_HELP, run: runCommand },
  score: { help: SCORE_HELP, run: scoreCommand },
  demo: { help: DEMO_HELP, run: demoCommand },
};

const HELP = `Usage: npm run sim -- <command> [options]

Commands:
  city    generate a city (roads, sites, permits, trucks, bins) and import it into the service
  run     drive the city's devices against the broker (trucks over MQTT or JT/T 808) and write
          ground-truth labels
  score   compare the alerts the service raised with the labels: precision, recall, delay
  demo    start the service with a small simulated city, in one process

\`npm run sim -- <command> --help\` describes each.
`;

const [name, ...argv] = process.argv.slice(2);
const command = name ? COMMANDS[name] : undefined;
if (!command) {
  process.stdout.write(HELP);
  process.exitCode = name === undefined || name === '--help' || name === '-h' ? 0 : 2;
} else {
  try {
    process.exitCode = await command.run(argv);
  } catch (error) {
    process.stderr.write(`error: ${(error as Error).message}\n`);
    if (!(error instanceof UsageError) && !(error instanceof TypeError && 'code' in error)) process.stderr.write(`${(error as Error).stack ?? ''}\n`);
    process.exitCode = 2;
  }
}

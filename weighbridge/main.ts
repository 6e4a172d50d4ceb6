// `npm run weighbridge -- …`: the agent on the weighbridge-house PC (docs/weighbridge.md).
import { WeighbridgeAgent } from './agent.ts';
import { HELP } from './cli/help.ts';
import { UsageError, parseCommand } from './cli/options.ts';
import { startPrompt } from './cli/prompt.ts';
import { statusReport } from './cli/status-report.ts';
import { agentLogger } from './log.ts';

async function main(): Promise<void> {
  let command;
  try {
    command = parseCommand(process.argv.slice(2), process.env);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`错误 error:\n${error.message}\n\nnpm run weighbridge -- --help 查看用法 for usage\n`);
    process.exit(2);
  }
  if (command.kind === 'help') return void process.stdout.write(HELP);
  if (command.kind === 'status') return void process.stdout.write(statusReport(command.queueFile));

  const { config } = command;
  const log = agentLogger(config.log.level);
  // From the environment, not the config, for now (docs/weighbridge.md "Plates", "Store-and-forward").
  const agent = new WeighbridgeAgent(config, log, {
    operatorToken: process.env.WEIGHBRIDGE_OPERATOR_TOKEN || null,
    sendOldTickets: process.env.WEIGHBRIDGE_SEND_OLD_TICKETS === '1',
  });
  let pagePort: number | null;
  try {
    ({ pagePort } = await agent.start());
  } catch (error) {
    log.fatal((error as Error).message);
    process.exit(1);
  }
  if (pagePort !== null) log.info({ url: `http://${config.page.host}:${pagePort}/` }, '本地页面 local page');
  const prompt = config.prompt && process.stdin.isTTY ? startPrompt(agent, process.stdin, process.stderr) : null;
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'stopping');
    prompt?.close();
    agent.stop().then(
      () => process.exit(0),
      (error: unknown) => {
        log.error({ err: error }, 'stop failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGTERM', () => shutdown('SIGTERM'));
}

await main();

// Plates typed at the terminal when the agent runs in one: "苏E12345" for the truck on the
// bridge (or the next one), "12 苏E12345" for open weighing 12; "list" shows the open weighings.
import readline from 'node:readline';
import type { WeighbridgeAgent } from '../agent.ts';
import { parsePlate } from '../weighing/plates.ts';

const PROMPT = '车牌 plate> ';

export function startPrompt(agent: WeighbridgeAgent, input: NodeJS.ReadableStream, output: NodeJS.WritableStream): readline.Interface {
  const rl = readline.createInterface({ input, output, prompt: PROMPT });
  const say = (text: string) => output.write(`${text}\n`);
  say('输入车牌 type a plate (苏E12345), or "编号 车牌" for an open weighing (12 苏E12345), "list" to list them');
  rl.on('line', (text) => {
    const line = text.trim();
    if (line === 'list' || line === 'ls') {
      const open = agent.status().open_weighings;
      if (open.length === 0) say('没有待配对的称重 no open weighing');
      for (const w of open) say(`  ${w.id}  ${w.ts}  ${w.kg} kg  ${w.plate ?? '需车牌 needs a plate'}`);
    } else if (line) {
      const match = /^(\d+)\s+(.+)$/.exec(line);
      const plate = parsePlate(match ? match[2] : line);
      if (!plate.ok) say(plate.message);
      else {
        const answer = agent.offerPlate(plate.plate, 'terminal', match ? Number(match[1]) : null);
        if (!answer.ok) say(answer.message);
        else if (answer.placed === 'ignored') say(`${plate.plate}: ${answer.message}`);
        else if (answer.saved === false) say(`${plate.plate}: 队列文件暂不可写，稍后写入 / the queue file is busy: kept, written once it is free`);
        else if (answer.placed === 'next') say(`${plate.plate}: 给下一辆车 for the next truck, until ${answer.until}`);
        else if (answer.placed === 'pass') say(`${plate.plate}: 给磅上车辆 for the truck on the bridge`);
        else say(`${plate.plate}: 已记到称重 set on weighing ${answer.weighing_id}${answer.ticket_id ? ` → 磅单 ticket ${answer.ticket_id}` : ''}`);
      }
    }
    rl.prompt();
  });
  rl.prompt();
  return rl;
}

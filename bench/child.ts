// Child processes of the benchmarks (bench:ingest, bench:jt808): node with tsx, cwd the
// repository, stdout read as JSON lines (one event each), stderr passed through; and what the
// benchmarks share besides: the repository's root, their progress lines, percentiles.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';

export const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
export const say = (message: string): void => void process.stderr.write(`[bench] ${message}\n`);
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface Child {
  child: ChildProcess;
  events: Record<string, unknown>[];
  waitFor(event: string, timeoutMs?: number): Promise<Record<string, unknown>>;
}

export function run(args: string[], env: Record<string, string> = {}, onEvent?: (e: Record<string, unknown>) => void, nodeArgs: string[] = []): Child {
  const child = spawn(process.execPath, [...nodeArgs, '--import', 'tsx', ...args], { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
  const events: Record<string, unknown>[] = [];
  readline.createInterface({ input: child.stdout! }).on('line', (line) => {
    try {
      const event = JSON.parse(line) as Record<string, unknown>;
      events.push(event);
      onEvent?.(event);
    } catch {
      // not one of ours
    }
  });
  return {
    child,
    events,
    async waitFor(event, timeoutMs = 300_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const found = events.find((e) => e.event === event || e.msg === event);
        if (found) return found;
        if (child.exitCode !== null) {
          const failed = events.find((e) => e.event === 'failed');
          throw new Error(`${args[0]} exited with ${child.exitCode} before "${event}"${failed ? `: ${failed.message as string}` : ''}`);
        }
        if (Date.now() > deadline) throw new Error(`timed out waiting for "${event}" from ${args[0]}`);
        await sleep(20);
      }
    },
  };
}

export function percentile(sorted: ArrayLike<number>, p: number): number {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]! : Number.NaN;
}

/**
 * Resets a process's peak resident set size (VmHWM) to its current size, so that the peak of one
 * phase is read alone (proc(5), /proc/pid/clear_refs, value 5). False where Linux refuses it.
 */
export function resetPeakRss(pid: number | undefined): boolean {
  if (!pid) return false;
  try {
    fs.writeFileSync(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

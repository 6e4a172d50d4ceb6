// What Linux says of a benchmarked process ([proc(5)]): its CPU time and peak memory.
import fs from 'node:fs';

/** CPU time (user + system) a process has used so far, in ms (/proc/pid/stat fields 14 and 15, in clock ticks of 10 ms). */
export function cpuMs(pid: number | undefined): number {
  if (!pid || !fs.existsSync(`/proc/${pid}/stat`)) return 0;
  const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/** Peak resident set size of a process, MB (/proc/pid/status VmHWM). */
export function peakRssMb(pid: number | undefined): number {
  if (!pid || !fs.existsSync(`/proc/${pid}/status`)) return 0;
  return Number(/VmHWM:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;
}

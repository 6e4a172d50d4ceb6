// Real parts for the agent's tests: a pseudo-terminal pair from socat, a Mosquitto with a scale
// device and an observer, the agent's config, and waiting on events rather than on sleeps.
import { spawn, type ChildProcess } from 'node:child_process';
import type { EventEmitter } from 'node:events';
import fs from 'node:fs';
import path from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { configSchema, type AgentConfig } from '../../weighbridge/config.ts';
import { tempDir } from '../helpers/service.ts';

export const DEVICE_ID = 'WB-TEST-01';
export const SECRET = 'scale-secret-0123456789';
export const OBSERVER = 'observer';
export const OBSERVER_PASSWORD = 'observer-password-0123';

/** Devices write their own ticket and status topics (patterns first: they apply to every user); the observer reads. */
export const ACL = `pattern write waste/scales/%u/tickets
pattern write waste/scales/%u/status

user ${OBSERVER}
topic read waste/#
`;

export async function until(check: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Resolves at the first event whose arguments pass `test`. */
export function next<T extends unknown[]>(emitter: EventEmitter, event: string, test: (...args: T) => boolean = () => true, timeoutMs = 15_000): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      emitter.off(event, listener);
      reject(new Error(`timed out waiting for ${event}`));
    }, timeoutMs);
    const listener = (...args: unknown[]) => {
      if (!test(...(args as T))) return;
      clearTimeout(timer);
      emitter.off(event, listener);
      resolve(args as T);
    };
    emitter.on(event, listener);
  });
}

export interface PtyPair {
  /** The end the agent opens. */
  agentEnd: string;
  /** Writes bytes onto the line, as the indicator would. */
  write(bytes: Buffer): void;
  close(): Promise<void>;
}

/** `socat -d -d pty,raw,echo=0,link=A pty,raw,echo=0,link=B` in a temp directory, or again in `dir` (a replugged adapter). */
export async function startPty(dir?: string): Promise<PtyPair> {
  dir ??= await tempDir('wb-pty-');
  const agentEnd = path.join(dir, 'indicator-agent');
  const testEnd = path.join(dir, 'indicator-test');
  const child: ChildProcess = spawn('socat', ['-d', '-d', `pty,raw,echo=0,link=${agentEnd}`, `pty,raw,echo=0,link=${testEnd}`], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise((resolve) => child.once('exit', resolve));
  // socat says "starting data transfer loop" once both ends exist.
  await until(() => stderr.includes('starting data transfer loop'), `socat (${stderr})`, 10_000);
  const fd = fs.openSync(testEnd, 'r+');
  return {
    agentEnd,
    write: (bytes) => {
      let at = 0;
      while (at < bytes.length) at += fs.writeSync(fd, bytes, at);
    },
    close: async () => {
      fs.closeSync(fd);
      child.kill('SIGTERM');
      await exited;
    },
  };
}

export async function agentConfig(input: Record<string, unknown>, overrides: Record<string, unknown> = {}): Promise<AgentConfig> {
  const dir = await tempDir('wb-agent-');
  return configSchema.parse({
    input: { reconnectMinMs: 50, reconnectMaxMs: 300, ...input },
    mqtt: { url: 'mqtt://127.0.0.1:1', deviceId: DEVICE_ID, secret: SECRET, reconnectMinMs: 50, reconnectMaxMs: 300, connectTimeoutMs: 2_000 },
    site: { direction: 'in', category: 'construction' },
    stability: { count: 5, toleranceKg: 20, minKg: 500 },
    queueFile: path.join(dir, 'queue.db'),
    page: { port: 0 },
    log: { level: process.env.TEST_LOG_LEVEL ?? 'silent' },
    prompt: false,
    ...overrides,
  });
}

export interface Observer {
  client: MqttClient;
  /** Every ticket payload received, duplicates included, as text. */
  payloads: string[];
  ticketIds(): Set<string>;
  close(): Promise<void>;
}

/** A persistent QoS 1 subscription to every scale's tickets, so that nothing published while it reconnects is lost. */
export async function observe(url: string, clientId = 'wb-test-observer'): Promise<Observer> {
  const client = mqtt.connect(url, { username: OBSERVER, password: OBSERVER_PASSWORD, clientId, clean: clientId === 'wb-test-observer' ? false : true, reconnectPeriod: 100 });
  const payloads: string[] = [];
  client.on('message', (topic, payload) => {
    if (topic.endsWith('/tickets')) payloads.push(payload.toString());
  });
  await new Promise<void>((resolve, reject) => {
    client.once('connect', () => resolve());
    client.once('error', reject);
  });
  await client.subscribeAsync('waste/scales/+/tickets', { qos: 1 });
  return {
    client,
    payloads,
    ticketIds: () => new Set(payloads.map((p) => (JSON.parse(p) as { ticket_id: string }).ticket_id)),
    close: () => client.endAsync(true),
  };
}

/** Writes bytes in pieces of 1-13 bytes, so frames arrive split anywhere. */
export function writeSplit(write: (bytes: Buffer) => void, bytes: Buffer): void {
  for (let at = 0, i = 0; at < bytes.length; i++) {
    const size = 1 + ((i * 7) % 13);
    write(bytes.subarray(at, at + size));
    at += size;
  }
}

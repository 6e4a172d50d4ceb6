// A throwaway RabbitMQ cluster from Debian's rabbitmq-server (3.10): N nodes on loopback, each
// with its own node name, ports and data directory, clustered through classic peer discovery
// (the nodes list each other in rabbitmq.conf and join on their first start). Plugins: MQTT (TCP
// and WebSocket), the consistent-hash exchange, the HTTP authentication backend and management.
//  - The nodes share an Erlang cookie through HOME (rabbitmqctl reads ~/.erlang.cookie) and the
//    machine's epmd, which the first node starts.
//  - The scripts in /usr/lib/rabbitmq/bin run as the calling user; /usr/sbin/rabbitmq-server
//    would switch to the rabbitmq user, which could not write the temp directory.
//  - An admin account (internal to RabbitMQ) is made for the tests and the service's workers;
//    devices log in through the HTTP backend when `authHttp` is given.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import mqtt from 'mqtt';
import { freePort } from './ports.ts';

const run = promisify(execFile);
const BIN = '/usr/lib/rabbitmq/bin';
const PLUGINS = ['rabbitmq_mqtt', 'rabbitmq_web_mqtt', 'rabbitmq_consistent_hash_exchange', 'rabbitmq_auth_backend_http', 'rabbitmq_management'];
export const RABBIT_ADMIN = { username: 'waste-admin', password: 'admin-secret' };

export interface RabbitNode {
  name: string;
  amqpPort: number;
  mqttPort: number;
  wsPort: number;
  httpPort: number;
  /** amqp://admin@127.0.0.1:PORT */
  amqpUrl: string;
  mqttUrl: string;
  /** ws://127.0.0.1:PORT/ws (the Web MQTT plugin's path) */
  wsUrl: string;
  managementUrl: string;
}

export interface TestRabbitCluster {
  nodes: RabbitNode[];
  /** SIGKILL a node's Erlang VM: a crash, not a shutdown. */
  kill(index: number): Promise<void>;
  /** Starts a killed node again; resolves once it runs and is back in the cluster. */
  start(index: number): Promise<void>;
  /** rabbitmqctl against one node. */
  ctl(index: number, ...args: string[]): Promise<string>;
  /** The process id of each running node's Erlang VM (undefined for a node that is down). */
  pids(): (number | undefined)[];
  cleanup(): Promise<void>;
}

export interface TestRabbitOptions {
  size?: number;
  /** Base URL of the HTTP authentication backend (the service's /broker/rabbitmq), tried after the internal accounts. */
  authHttp?: string;
}

export function rabbitmqInstalled(): boolean {
  return fs.existsSync(path.join(BIN, 'rabbitmq-server'));
}

export async function startTestRabbitCluster(options: TestRabbitOptions = {}): Promise<TestRabbitCluster> {
  if (!rabbitmqInstalled()) throw new Error('rabbitmq-server is not installed; on Debian: apt-get install -y rabbitmq-server');
  const size = options.size ?? 3;
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'waste-rabbit-'));
  await fsp.writeFile(path.join(dir, '.erlang.cookie'), randomBytes(20).toString('hex'), { mode: 0o400 });
  const tag = randomBytes(3).toString('hex');
  const nodes: RabbitNode[] = [];
  for (let i = 0; i < size; i++) {
    const [amqpPort, mqttPort, wsPort, httpPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
    nodes.push({
      name: `waste-${tag}-${i + 1}@localhost`,
      amqpPort,
      mqttPort,
      wsPort,
      httpPort,
      amqpUrl: `amqp://${RABBIT_ADMIN.username}:${RABBIT_ADMIN.password}@127.0.0.1:${amqpPort}`,
      mqttUrl: `mqtt://127.0.0.1:${mqttPort}`,
      wsUrl: `ws://127.0.0.1:${wsPort}/ws`,
      managementUrl: `http://127.0.0.1:${httpPort}`,
    });
  }
  const distPorts = await Promise.all(nodes.map(() => freePort()));
  const env = (i: number): NodeJS.ProcessEnv => {
    const base = path.join(dir, `node${i + 1}`);
    return {
      ...process.env,
      HOME: dir,
      RABBITMQ_NODENAME: nodes[i]!.name,
      RABBITMQ_NODE_PORT: String(nodes[i]!.amqpPort),
      RABBITMQ_DIST_PORT: String(distPorts[i]),
      RABBITMQ_CONFIG_FILE: path.join(base, 'rabbitmq'),
      RABBITMQ_ADVANCED_CONFIG_FILE: path.join(base, 'advanced.config'),
      RABBITMQ_ENABLED_PLUGINS_FILE: path.join(base, 'enabled_plugins'),
      RABBITMQ_MNESIA_BASE: path.join(base, 'mnesia'),
      RABBITMQ_LOG_BASE: path.join(base, 'log'),
      RABBITMQ_PID_FILE: path.join(base, 'pid'),
      RABBITMQ_PLUGINS_EXPAND_DIR: path.join(base, 'plugins'),
    };
  };
  for (const [i, node] of nodes.entries()) {
    const base = path.join(dir, `node${i + 1}`);
    await fsp.mkdir(base, { recursive: true });
    await fsp.writeFile(path.join(base, 'enabled_plugins'), `[${PLUGINS.join(',')}].\n`);
    await fsp.writeFile(path.join(base, 'rabbitmq.conf'), nodeConfig(node, nodes, options));
  }

  const children: (ChildProcess | null)[] = nodes.map(() => null);
  const exited: Promise<unknown>[] = nodes.map(() => Promise.resolve());
  const ctl = async (i: number, ...args: string[]): Promise<string> => {
    const { stdout } = await run(path.join(BIN, 'rabbitmqctl'), ['-n', nodes[i]!.name, ...args], { env: env(i), timeout: 120_000 });
    return stdout;
  };
  const launch = (i: number) => {
    // In its own directory: a node that crashes writes erl_crash.dump where it runs.
    const child = spawn(path.join(BIN, 'rabbitmq-server'), [], { cwd: path.join(dir, `node${i + 1}`), env: env(i), stdio: ['ignore', 'ignore', 'pipe'], detached: false });
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-4000)));
    children[i] = child;
    exited[i] = new Promise((resolve) => child.once('exit', (code) => resolve(code === 0 ? null : stderr)));
  };
  const awaitStartup = async (i: number) => {
    // A node opens its listeners last, once it has booted and joined the cluster: its AMQP port
    // answering says it runs. (rabbitmqctl await_startup says the same, but each call boots an
    // Erlang VM of its own, a second or two.)
    const deadline = Date.now() + 120_000;
    while (!(await accepts(nodes[i]!.amqpPort))) {
      if (Date.now() > deadline || children[i]?.exitCode !== null) throw new Error(`RabbitMQ node ${nodes[i]!.name} did not start${children[i]?.exitCode !== null ? `: ${(await exited[i]) ?? 'it exited'}` : ' within 120 s'}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  };

  // A test process that ends without cleanup() (a hook that timed out, a crash) must not leave its
  // nodes running: they would slow every later cluster on the machine.
  const killAll = () => {
    for (const [i, child] of children.entries()) {
      if (!child) continue;
      try {
        process.kill(Number(fs.readFileSync(path.join(dir, `node${i + 1}`, 'pid'), 'utf8').trim()), 'SIGKILL');
      } catch {
        // gone already, or its pid file not written yet
      }
      child.kill('SIGKILL');
    }
  };
  process.once('exit', killAll);
  // The first node starts alone and the others join it: started all at once, the MQTT plugin's
  // cluster-wide client-id tracker (a Raft cluster in 3.10) sometimes formed without a node, whose
  // MQTT logins then failed for minutes ("client ID registration timed out", CONNACK 3).
  launch(0);
  await awaitStartup(0);
  nodes.slice(1).forEach((_, i) => launch(i + 1));
  await Promise.all(nodes.slice(1).map((_, i) => awaitStartup(i + 1)));
  await Promise.all(nodes.map((node) => mqttReady(node)));

  const kill = async (i: number) => {
    const pid = Number((await fsp.readFile(path.join(dir, `node${i + 1}`, 'pid'), 'utf8').catch(() => '0')).trim());
    if (pid > 0) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone already
      }
    }
    children[i]?.kill('SIGKILL');
    await exited[i];
    children[i] = null;
  };
  return {
    nodes,
    kill,
    start: async (i) => {
      launch(i);
      await awaitStartup(i);
      await mqttReady(nodes[i]!);
    },
    ctl,
    pids: () => nodes.map((_, i) => {
      if (!children[i]) return undefined;
      const pid = Number(fs.readFileSync(path.join(dir, `node${i + 1}`, 'pid'), 'utf8').trim());
      return pid > 0 ? pid : undefined;
    }),
    cleanup: async () => {
      process.removeListener('exit', killAll);
      await Promise.all(nodes.map((_, i) => kill(i)));
      await fsp.rm(dir, { recursive: true, force: true });
    },
  };
}

/** Whether something accepts TCP connections on the loopback port. */
function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/**
 * Resolves once the node's MQTT plugin takes a login: for a while after await_startup it answers
 * CONNACK 3 (server unavailable).
 */
async function mqttReady(node: RabbitNode): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      const client = await mqtt.connectAsync(node.mqttUrl, { ...RABBIT_ADMIN, clientId: 'waste-helper-ready', reconnectPeriod: 0, connectTimeout: 5000 });
      await client.endAsync();
      return;
    } catch (error) {
      if (Date.now() > deadline) throw new Error(`the MQTT plugin of ${node.name} refused logins for 60 s: ${(error as Error).message}`);
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }
}

function nodeConfig(node: RabbitNode, all: RabbitNode[], options: TestRabbitOptions): string {
  const lines = [
    `listeners.tcp.default = 127.0.0.1:${node.amqpPort}`,
    `mqtt.listeners.tcp.default = 127.0.0.1:${node.mqttPort}`,
    'web_mqtt.tcp.ip = 127.0.0.1',
    `web_mqtt.tcp.port = ${node.wsPort}`,
    'management.tcp.ip = 127.0.0.1',
    `management.tcp.port = ${node.httpPort}`,
    'mqtt.allow_anonymous = false',
    // As documented (docs/scale-out.md): RabbitMQ's own limit is 128 MiB a message.
    'max_message_size = 1048576',
    'loopback_users = none',
    // The admin, made on the first node's first boot (the others take it from the cluster); with
    // no topic permissions of its own it may use every topic.
    `default_user = ${RABBIT_ADMIN.username}`,
    `default_pass = ${RABBIT_ADMIN.password}`,
    'default_user_tags.administrator = true',
    'default_permissions.configure = .*',
    'default_permissions.read = .*',
    'default_permissions.write = .*',
    'cluster_formation.peer_discovery_backend = classic_config',
    ...all.map((n, i) => `cluster_formation.classic_config.nodes.${i + 1} = ${n.name}`),
    'log.console = false',
    'log.file.level = warning',
  ];
  if (options.authHttp) {
    lines.push(
      'auth_backends.1 = internal',
      'auth_backends.2 = http',
      'auth_http.http_method = post',
      `auth_http.user_path = ${options.authHttp}/user`,
      `auth_http.vhost_path = ${options.authHttp}/vhost`,
      `auth_http.resource_path = ${options.authHttp}/resource`,
      `auth_http.topic_path = ${options.authHttp}/topic`,
    );
  }
  return lines.join('\n') + '\n';
}

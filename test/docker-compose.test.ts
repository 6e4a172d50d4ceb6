// docker-compose.yml validates with Debian's docker-compose (1.29, which has no engine to talk to
// here: `config` only reads and checks the file), refuses to start without the secrets, and the
// env writer gives it random ones.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { tempDir } from './helpers/service.ts';

const run = promisify(execFile);
const root = path.resolve(import.meta.dirname, '..');
const compose = (args: string[], cwd = root) => run('docker-compose', args, { cwd, env: { PATH: process.env.PATH ?? '' } });

describe('docker-compose.yml', () => {
  it('validates with .env.example; the simulator and the several-process cluster are optional profiles', async () => {
    await compose(['--env-file', '.env.example', 'config', '--quiet']);
    await compose(['--env-file', '.env.example', '--profile', 'cluster', 'config', '--quiet']);
    const cluster = ['api', 'ingest-1', 'ingest-2', 'postgres', 'rabbitmq-1', 'rabbitmq-2', 'rabbitmq-3', 'scheduler', 'scheduler-standby'];
    expect((await compose(['--env-file', '.env.example', 'config', '--services'])).stdout.trim().split('\n').sort()).toEqual([...cluster, 'grafana', 'influxdb', 'service', 'simulator'].sort());
    // A plain `up` starts grafana, influxdb and the service; each other service is in one profile.
    const { stdout } = await compose(['--env-file', '.env.example', 'config']);
    const profiles = Object.fromEntries(
      [...stdout.matchAll(/^ {2}([\w-]+):\n((?: {4}.*\n|\n)*)/gm)].map((m) => [m[1], /^ {4}profiles:\n {4}- (\w+)$/m.exec(m[2]!)?.[1] ?? null]),
    );
    expect(profiles).toMatchObject({ grafana: null, influxdb: null, service: null, simulator: 'sim', ...Object.fromEntries(cluster.map((name) => [name, 'cluster'])) });
  });

  it('runs the cluster profile on three RabbitMQ nodes: workers on AMQP to all three, logins answered by the api process from the cluster network only', async () => {
    const { stdout } = await compose(['--env-file', '.env.example', '--profile', 'cluster', 'config']);
    const service = (name: string) => new RegExp(`^ {2}${name}:\n((?: {4}.*\n|\n)*)`, 'm').exec(stdout)?.[1] ?? '';
    for (const worker of ['ingest-1', 'ingest-2']) {
      expect(service(worker)).toContain(`WASTE_RABBITMQ_AMQP_URLS: '["amqp://waste-admin:change-me-rabbitmq@rabbitmq-1:5672","amqp://waste-admin:change-me-rabbitmq@rabbitmq-2:5672","amqp://waste-admin:change-me-rabbitmq@rabbitmq-3:5672"]'`);
      expect(service(worker)).toContain('WASTE_ROLE: ingest');
    }
    expect(service('api')).toContain('WASTE_RABBITMQ_AUTH_BACKEND: "true"');
    expect(service('api')).toContain(`WASTE_RABBITMQ_AUTH_ALLOW_FROM: '["10.208.0.0/24"]'`);
    expect(stdout).toMatch(/subnet: 10\.208\.0\.0\/24/);
    // Every node runs the same configuration, which names all three and the api process's login paths.
    const conf = fs.readFileSync(path.join(root, 'scripts', 'compose', 'rabbitmq.conf'), 'utf8');
    for (const n of [1, 2, 3]) {
      expect(service(`rabbitmq-${n}`)).toContain('scripts/compose/rabbitmq.conf:/etc/rabbitmq/rabbitmq.conf:ro');
      expect(conf).toContain(`cluster_formation.classic_config.nodes.${n} = rabbit@rabbitmq-${n}`);
    }
    for (const path of ['user', 'vhost', 'resource', 'topic']) expect(conf).toContain(`auth_http.${path}_path = http://api:8080/broker/rabbitmq/${path}`);
  });

  it('starts no RabbitMQ node without the shared cookie and the admin password, saying which', async () => {
    const script = path.join(root, 'scripts', 'compose', 'rabbitmq.sh');
    const refusal = (env: Record<string, string>) => run('sh', [script], { env: { PATH: process.env.PATH ?? '', ...env } }).then(() => '', (error: { stderr: string }) => error.stderr);
    expect(await refusal({})).toMatch(/set RABBITMQ_CLUSTER_COOKIE in \.env/);
    expect(await refusal({ RABBITMQ_CLUSTER_COOKIE: 'x' })).toMatch(/set RABBITMQ_ADMIN_PASSWORD in \.env/);
  });

  it('takes the secrets from the env file, with anonymous Grafana viewers off, and never hard-codes them', async () => {
    const { stdout } = await compose(['--env-file', '.env.example', 'config']);
    expect(stdout).toContain('DOCKER_INFLUXDB_INIT_ADMIN_TOKEN: change-me-to-a-long-random-token');
    expect(stdout).toContain('GF_AUTH_ANONYMOUS_ENABLED: "false"');
    const file = fs.readFileSync(path.join(root, 'docker-compose.yml'), 'utf8');
    expect(file).not.toContain('change-me');
    for (const f of fs.readdirSync(path.join(root, 'dashboards', 'json'))) expect(fs.readFileSync(path.join(root, 'dashboards', 'json', f), 'utf8')).not.toMatch(/Token |password/i);
  });

  it('refuses to run without the secrets, saying which', async () => {
    const dir = await tempDir('waste-compose-');
    fs.copyFileSync(path.join(root, 'docker-compose.yml'), path.join(dir, 'docker-compose.yml'));
    const failure = await compose(['config', '--quiet'], dir).then(
      () => '',
      (error: { stderr: string }) => error.stderr,
    );
    expect(failure).toMatch(/set INFLUX_ADMIN_PASSWORD in \.env/);
  });

  it('scripts/compose/env.mjs writes an env file with random secrets that validates, and leaves an existing one alone', async () => {
    const dir = await tempDir('waste-compose-env-');
    const out = path.join(dir, '.env');
    await run(process.execPath, [path.join(root, 'scripts', 'compose', 'env.mjs'), '--out', out]);
    const env = fs.readFileSync(out, 'utf8');
    const token = /^INFLUX_TOKEN=(.+)$/m.exec(env)?.[1] ?? '';
    expect(token).toMatch(/^[\w-]{43}$/);
    expect(env).not.toMatch(/change-me/);
    expect((fs.statSync(out).mode & 0o777).toString(8)).toBe('600');
    await compose(['--env-file', out, 'config', '--quiet']);
    await run(process.execPath, [path.join(root, 'scripts', 'compose', 'env.mjs'), '--out', out]);
    expect(fs.readFileSync(out, 'utf8')).toBe(env);
  });
});

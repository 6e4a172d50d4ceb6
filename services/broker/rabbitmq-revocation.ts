// Closes the RabbitMQ connections of devices whose credentials no longer hold: disabled, removed,
// or given a new secret. RabbitMQ asks the HTTP authentication backend (api/routes/broker-auth.ts)
// only when a connection logs in, so without this a device disabled in the registry would keep
// publishing over the connection it has. Through the management API (rabbitmq_management:
// GET /api/connections, DELETE /api/connections/{name}), at every change of the registry's devices
// and again STATISTICS_LAG_MS later, and every SWEEP_MS besides, in case a change notice was
// missed. Accounts RabbitMQ knows itself (the workers', the administrators': GET /api/users) are
// not the registry's and are never closed; any other account on a connection logged in through the
// service, and is closed once the registry no longer has it.
import type { Logger } from 'pino';
import type { CredentialDirectory } from './credentials.ts';
import { managementRequest, type RabbitmqManagementOptions } from './rabbitmq-management.ts';

const SWEEP_MS = 15_000;
/**
 * RabbitMQ's management API lists a connection only once its statistics have been collected
 * (collect_statistics_interval, 5 s by default): a change is swept again this much later, for a
 * device that connected just before it.
 */
const STATISTICS_LAG_MS = 6000;
/** Changes of the registry come in bursts (an import); one sweep after the burst does for all. */
const DEBOUNCE_MS = 200;

interface ManagementConnection {
  name: string;
  user: string;
}

export class RabbitmqRevocation {
  /** Registry accounts seen on connections, with their secret's hash then (to notice a new secret). */
  private readonly seen = new Map<string, string>();
  private timer: NodeJS.Timeout | null = null;
  private pending: NodeJS.Timeout | null = null;
  private followUp: NodeJS.Timeout | null = null;
  private sweeping: Promise<void> | null = null;
  private stopped = true;
  readonly stats = { sweeps: 0, closed: 0, failedSweeps: 0 };

  constructor(
    private readonly options: RabbitmqManagementOptions,
    private readonly credentials: CredentialDirectory & { onChange(listener: () => void): void },
    private readonly log: Logger,
  ) {}

  start(): void {
    this.stopped = false;
    this.credentials.onChange(() => {
      this.soon();
      if (this.followUp) clearTimeout(this.followUp);
      this.followUp = setTimeout(() => this.soon(), STATISTICS_LAG_MS);
      this.followUp.unref();
    });
    this.timer = setInterval(() => this.soon(), SWEEP_MS);
    this.timer.unref();
    this.soon();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    if (this.pending) clearTimeout(this.pending);
    if (this.followUp) clearTimeout(this.followUp);
    this.timer = this.pending = this.followUp = null;
    await this.sweeping;
  }

  private soon(): void {
    if (this.stopped || this.pending) return;
    this.pending = setTimeout(() => {
      this.pending = null;
      if (this.sweeping) return this.soon();
      this.sweeping = this.sweep().finally(() => (this.sweeping = null));
    }, DEBOUNCE_MS);
    this.pending.unref();
  }

  /** One pass over the cluster's connections. */
  async sweep(): Promise<void> {
    this.stats.sweeps++;
    let connections: ManagementConnection[];
    let internal: Set<string>;
    try {
      connections = (await this.request('GET', '/api/connections?columns=name,user')) as ManagementConnection[];
      internal = new Set(((await this.request('GET', '/api/users?columns=name')) as { name: string }[]).map((u) => u.name));
    } catch (error) {
      this.stats.failedSweeps++;
      this.log.warn({ managementUrl: this.options.managementUrl, error: (error as Error).message }, `cannot list RabbitMQ's connections at ${this.options.managementUrl}: a device disabled now keeps its open connection until this works (check rabbitmq.managementUrl, managementUsername and managementPassword, and that the management plugin runs)`);
      return;
    }
    // Decided once per account: a device given a new secret has all its connections closed, the
    // one it may have opened with the new secret too (it logs in again at once).
    const reasons = new Map<string, string | null>();
    for (const { user } of connections) if (!reasons.has(user) && !internal.has(user)) reasons.set(user, this.revoked(user));
    for (const { name, user } of connections) {
      const reason = reasons.get(user);
      if (!reason) continue;
      try {
        await this.request('DELETE', `/api/connections/${encodeURIComponent(name)}`, { 'x-reason': `credentials revoked: ${reason}` });
        this.stats.closed++;
        this.log.info({ username: user, connection: name, reason }, `closed the RabbitMQ connection of ${user}: ${reason}`);
      } catch (error) {
        this.log.warn({ username: user, connection: name, error: (error as Error).message }, `could not close the RabbitMQ connection of ${user}`);
      }
    }
  }

  /** Why a registry account on a connection no longer holds, or null while it does. */
  private revoked(user: string): string | null {
    let record;
    try {
      record = this.credentials.device(user) ?? this.credentials.service(user);
    } catch {
      return null; // the registry does not answer: nothing is decided now
    }
    const before = this.seen.get(user);
    if (!record) {
      this.seen.delete(user);
      return 'not in the registry';
    }
    this.seen.set(user, record.secret_hash);
    if ('enabled' in record && !record.enabled) return 'disabled';
    if (before !== undefined && before !== record.secret_hash) return 'given a new secret';
    return null;
  }

  private request(method: 'GET' | 'DELETE', path: string, headers: Record<string, string> = {}): Promise<unknown> {
    return managementRequest(this.options, method, path, headers);
  }
}

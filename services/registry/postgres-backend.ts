// The shared backend of the registry (db.ts): PostgreSQL 13+, for a service that runs as several
// processes (docs/deployment.md). The registry's interface is synchronous, so each statement is
// sent to a worker thread (postgres-worker.mjs) that holds the connection, while this thread
// waits on a shared flag for the answer (Atomics.wait, then receiveMessageOnPort: the way Node's
// own synchronous hooks talk to a worker). A statement that takes longer than
// database.statementTimeoutMs is cancelled by the server; a server that does not answer at all
// is given up on a little after that, so the process never hangs on it.
// One connection per process for statements, and one more, asynchronous, that LISTENs for the
// changes other processes make to devices (migration 8's triggers NOTIFY waste_devices).
import { MessageChannel, Worker, receiveMessageOnPort, type MessagePort } from 'node:worker_threads';
import pg from 'pg';
import { ConstraintViolation, DatabaseUnreachableError, DatabaseValueError, type ConstraintKind, type SqlBackend } from './db.ts';

export interface PostgresOptions {
  /** A statement running longer is cancelled by the server (statement_timeout). */
  statementTimeoutMs: number;
  /** Longest wait for a connection to be made. */
  connectTimeoutMs: number;
  /** Shown in pg_stat_activity, so an operator can tell the processes apart. */
  applicationName: string;
}

export const POSTGRES_DEFAULTS: PostgresOptions = { statementTimeoutMs: 10_000, connectTimeoutMs: 5_000, applicationName: 'waste-telemetry' };

/** Holds a key until the transaction ends, waiting for any other process that holds it (db.ts serialize()). */
export const LOCK_SQL = 'SELECT pg_advisory_xact_lock(hashtextextended(?, 0))';

/** The channel migration 8's triggers notify on every change to devices and service accounts. */
export const DEVICES_CHANNEL = 'waste_devices';

/** What the driver says of a failure (pg's DatabaseError, a socket's error), as the worker passes it on. */
export interface WorkerError {
  message: string;
  code: string | null;
  constraint: string | null;
  detail: string | null;
  column: string | null;
}

type Reply = { id: number; ok: true; rows?: Record<string, unknown>[]; changes?: number } | { id: number; ok: false; error: WorkerError };

/** SQLSTATE classes that mean the server cannot be used as configured (PostgreSQL docs, Appendix A). */
const CONNECTION_CODES: Record<string, string> = {
  '28P01': 'the password was refused',
  '28000': 'the user may not connect',
  '3D000': 'the database does not exist (create it: createdb -O USER NAME)',
  '57P03': 'the server is starting up or shutting down',
  '53300': 'the server has no connection slots left (max_connections)',
};

const CONSTRAINT_CODES: Record<string, ConstraintKind> = { '23505': 'unique', '23503': 'foreign_key', '23514': 'check', '23502': 'not_null' };

/**
 * `?` and `@name` placeholders as PostgreSQL's `$n`, outside quoted text and comments; `names` is
 * the order of named parameters, or null for positional ones.
 */
export function toPostgresPlaceholders(sql: string): { text: string; names: string[] | null } {
  let text = '';
  let positional = 0;
  const names: string[] = [];
  for (let i = 0; i < sql.length; ) {
    const c = sql[i]!;
    if (c === "'" || c === '"') {
      const end = sql.indexOf(c, i + 1);
      const stop = end === -1 ? sql.length : end + 1;
      text += sql.slice(i, stop);
      i = stop;
    } else if (c === '-' && sql[i + 1] === '-') {
      const end = sql.indexOf('\n', i);
      const stop = end === -1 ? sql.length : end;
      text += sql.slice(i, stop);
      i = stop;
    } else if (c === '?') {
      text += `$${++positional}`;
      i++;
    } else if (c === '@' && /[A-Za-z_]/.test(sql[i + 1] ?? '')) {
      const name = /^[A-Za-z_][A-Za-z0-9_]*/.exec(sql.slice(i + 1))![0];
      let index = names.indexOf(name);
      if (index === -1) index = names.push(name) - 1;
      text += `$${index + 1}`;
      i += 1 + name.length;
    } else {
      text += c;
      i++;
    }
  }
  if (positional > 0 && names.length > 0) throw new Error('a statement mixes ? and @name placeholders');
  return { text, names: names.length > 0 ? names : null };
}

/** A named parameter's value; a name the values do not have is an error, as better-sqlite3 makes it. */
function namedValue(values: unknown, name: string): unknown {
  if (typeof values !== 'object' || values === null || !(name in values)) throw new RangeError(`Missing named parameter "${name}"`);
  return (values as Record<string, unknown>)[name] ?? null;
}

const translated = new Map<string, { text: string; names: string[] | null }>();

/** A statement in PostgreSQL's placeholders, and its values in their order. */
export function bindPostgres(sql: string, params: unknown[]): { text: string; values: unknown[] } {
  let statement = translated.get(sql);
  if (!statement) {
    statement = toPostgresPlaceholders(sql);
    translated.set(sql, statement);
  }
  const { names } = statement;
  // One plain object is named values, as better-sqlite3 takes them, also for a statement that
  // happens to name none (a list without filters): then nothing is bound.
  const named = params.length === 1 && typeof params[0] === 'object' && params[0] !== null && [Object.prototype, null].includes(Object.getPrototypeOf(params[0]));
  const values = names ? names.map((name) => namedValue(params[0], name)) : named ? [] : params.length === 1 && Array.isArray(params[0]) ? params[0] : params;
  return { text: statement.text, values: values.map((v) => (v === undefined ? null : v)) };
}

/** A failure as the registry's own errors: a constraint, a value, an unreachable server, or the driver's message. */
export function postgresFailure(error: WorkerError, where: string, connecting: boolean): Error {
  const kind = error.code ? CONSTRAINT_CODES[error.code] : undefined;
  if (kind) {
    const primary = kind === 'unique' && (error.constraint ?? '').endsWith('_pkey');
    // "Key (plate)=(苏E12345) already exists." / "Key (company_id)=(C9) is not present in table …"
    const columns = /^Key \(([^)]*)\)/.exec(error.detail ?? '')?.[1]?.split(', ') ?? (error.column ? [error.column] : []);
    return new ConstraintViolation(primary ? 'primary_key' : kind, columns, error.message);
  }
  if (error.code === '22021') return new DatabaseValueError(`a text value the database cannot store: ${error.message}`);
  const refused = error.code ? CONNECTION_CODES[error.code] : undefined;
  if (refused) return new DatabaseUnreachableError(`PostgreSQL at ${where}: ${refused} (${error.message}); check database.url (WASTE_DATABASE_URL)`);
  // Class 08 (connection exception) and 57P (the server shutting down or crashed), the socket's
  // own errors, and the driver's when the connection ends under a statement.
  const code = error.code ?? '';
  if (connecting || (code.startsWith('08') && code !== '08P01') || code.startsWith('57P') || ['ECONNREFUSED', 'ENOTFOUND', 'EHOSTUNREACH', 'ETIMEDOUT', 'ECONNRESET', 'EPIPE'].includes(code) || /timeout expired|Query read timeout|Connection terminated|not queryable|broke inside a transaction/i.test(error.message)) {
    return new DatabaseUnreachableError(`PostgreSQL at ${where} is unreachable (${error.message}); start it, or point database.url (WASTE_DATABASE_URL) at a running PostgreSQL 13+`);
  }
  return Object.assign(new Error(error.message), { code: error.code });
}

/** The options given, without those left undefined (so that defaults stay). */
export function definedOnly<T extends object>(options: T): Partial<T> {
  return Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** Host, port and database of a URL, without user or password. */
export function describePostgresUrl(url: string): string {
  try {
    const u = new URL(url);
    return `postgres://${u.hostname}:${u.port || 5432}${u.pathname || '/'}`;
  } catch {
    return 'postgres://(an invalid URL)';
  }
}

export class PostgresBackend implements SqlBackend {
  readonly dialect = 'postgres' as const;
  readonly where: string;
  private readonly options: PostgresOptions;
  private worker: Worker | null = null;
  private port: MessagePort | null = null;
  private signal: Int32Array | null = null;
  private sequence = 0;
  /** Listeners per NOTIFY channel, and the connection that listens for them. */
  private readonly channels = new Map<string, Set<(payload: string | null) => void>>();
  private listenerClient: pg.Client | null = null;
  private listening: pg.Client | null = null;
  private listenRetry: NodeJS.Timeout | null = null;

  constructor(
    private readonly url: string,
    options: Partial<PostgresOptions> = {},
  ) {
    this.options = { ...POSTGRES_DEFAULTS, ...definedOnly(options) };
    this.where = describePostgresUrl(url);
  }

  open(): void {
    if (this.worker) return;
    const signal = new Int32Array(new SharedArrayBuffer(4));
    const { port1, port2 } = new MessageChannel();
    const { statementTimeoutMs, connectTimeoutMs, applicationName } = this.options;
    this.worker = new Worker(new URL('./postgres-worker.mjs', import.meta.url), {
      workerData: { url: this.url, statementTimeoutMs, connectTimeoutMs, applicationName, signal, port: port2 },
      transferList: [port2],
      // Plain JavaScript with one dependency: none of this process's flags (a TypeScript loader,
      // an --eval) is the worker's.
      execArgv: [],
    });
    // The worker holds no work of its own: it must not keep the process alive.
    this.worker.unref();
    port1.unref();
    this.port = port1;
    this.signal = signal;
    try {
      this.call({ op: 'connect' });
    } catch (error) {
      this.close();
      throw error;
    }
  }

  /** Sends one request and waits for its answer. */
  private call(request: Record<string, unknown>): { rows: Record<string, unknown>[]; changes: number } {
    if (!this.port || !this.signal) throw new Error('registry database is not open');
    const id = ++this.sequence;
    const deadline = Date.now() + this.options.statementTimeoutMs + this.options.connectTimeoutMs + 2_000;
    this.port.postMessage({ ...request, id });
    for (;;) {
      Atomics.store(this.signal, 0, 0);
      // Answers to requests given up on earlier are read and dropped.
      for (let message = receiveMessageOnPort(this.port); message; message = receiveMessageOnPort(this.port)) {
        const reply = message.message as Reply;
        if (reply.id !== id) continue;
        if (!reply.ok) throw postgresFailure(reply.error, this.where, request.op === 'connect');
        return { rows: reply.rows ?? [], changes: reply.changes ?? 0 };
      }
      const left = deadline - Date.now();
      if (left <= 0) {
        // What was asked must not run later, after its caller has gone on: the worker drops the connection.
        this.port.postMessage({ op: 'abandon' });
        throw new DatabaseUnreachableError(`PostgreSQL at ${this.where} did not answer within ${Math.round((this.options.statementTimeoutMs + this.options.connectTimeoutMs) / 1000) + 2} s; check the server and the network to it`);
      }
      Atomics.wait(this.signal, 0, 0, left);
    }
  }

  query(sql: string, params: unknown[]): { rows: Record<string, unknown>[]; changes: number } {
    const { text, values } = bindPostgres(sql, params);
    return this.call({ op: 'query', text, values, ...this.beginning() });
  }

  exec(sql: string): void {
    this.call({ op: 'exec', sql, ...this.beginning() });
  }

  // A transaction's BEGIN goes with its first statement, and its notices with its COMMIT: each is
  // one wait fewer for the caller (an alert is about ten statements).
  private pendingBegin = false;
  private pendingNotices: [channel: string, payload: string][] = [];

  /** Statements whose answer nobody needs (a lock taken), sent with the next request. */
  private pendingBefore: { text: string; values: unknown[] }[] = [];

  private beginning(): { begin?: true; before?: { text: string; values: unknown[] }[] } {
    const before = this.pendingBefore;
    this.pendingBefore = [];
    const begin = this.pendingBegin;
    this.pendingBegin = false;
    return { ...(begin ? { begin: true as const } : {}), ...(before.length > 0 ? { before } : {}) };
  }

  /** Runs `sql` (no answer wanted) in the transaction under way, with its next statement. */
  deferred(sql: string, params: unknown[]): void {
    const { text, values } = bindPostgres(sql, params);
    this.pendingBefore.push({ text, values });
  }

  begin(): void {
    this.pendingBegin = true;
    this.pendingNotices = [];
  }

  commit(): void {
    const notices = this.pendingNotices;
    this.pendingNotices = [];
    // Nothing was sent: there is nothing to commit.
    if (this.pendingBegin && notices.length === 0 && this.pendingBefore.length === 0) {
      this.pendingBegin = false;
      return;
    }
    this.call({ op: 'commit', notices, ...this.beginning() });
  }

  rollback(): void {
    this.pendingNotices = [];
    this.pendingBefore = [];
    if (this.pendingBegin) {
      this.pendingBegin = false;
      return;
    }
    this.call({ op: 'rollback' });
  }

  /** NOTIFY at the COMMIT of the transaction under way, or at once outside one. */
  notify(channel: string, payload: string, inTransaction: boolean): void {
    if (inTransaction) this.pendingNotices.push([channel, payload]);
    else this.call({ op: 'query', text: 'SELECT pg_notify($1, $2)', values: [channel, payload] });
  }

  watchDevices(listener: () => void, _pollMs: number): () => void {
    return this.listen(DEVICES_CHANNEL, () => listener());
  }

  /**
   * Calls `listener` with the payload of every NOTIFY on `channel`, from any process, this one
   * included; with null after the listening connection was made (again), when notices may have
   * been missed. One connection listens for every channel of the process.
   */
  listen(channel: string, listener: (payload: string | null) => void): () => void {
    let listeners = this.channels.get(channel);
    if (!listeners) this.channels.set(channel, (listeners = new Set()));
    listeners.add(listener);
    if (this.listening) void this.listening.query(`LISTEN ${pg.escapeIdentifier(channel)}`).then(() => listener(null), () => {});
    else this.connectListener();
    return () => {
      listeners.delete(listener);
      if (listeners.size > 0) return;
      this.channels.delete(channel);
      if (this.channels.size === 0) this.stopListening();
      else void this.listening?.query(`UNLISTEN ${pg.escapeIdentifier(channel)}`).catch(() => {});
    };
  }

  private connectListener(): void {
    if (this.listenerClient) return;
    const client = new pg.Client({ connectionString: this.url, connectionTimeoutMillis: this.options.connectTimeoutMs, application_name: `${this.options.applicationName} (listen)`, keepAlive: true });
    this.listenerClient = client;
    const again = () => {
      if (this.listenerClient !== client) return;
      this.listenerClient = null;
      this.listening = null;
      client.end().catch(() => {});
      if (this.channels.size === 0) return;
      this.listenRetry = setTimeout(() => this.connectListener(), 1000);
      this.listenRetry.unref();
    };
    client.on('error', again);
    client.on('end', again);
    client.on('notification', ({ channel, payload }) => {
      for (const listener of this.channels.get(channel) ?? []) listener(payload ?? '');
    });
    void (async () => {
      try {
        await client.connect();
        for (const channel of this.channels.keys()) await client.query(`LISTEN ${pg.escapeIdentifier(channel)}`);
        this.listening = client;
        // Changes made while no connection listened are not told: the listeners look again now.
        for (const listeners of this.channels.values()) for (const listener of listeners) listener(null);
      } catch {
        again();
      }
    })();
  }

  private stopListening(): void {
    if (this.listenRetry) clearTimeout(this.listenRetry);
    this.listenRetry = null;
    const client = this.listenerClient;
    this.listenerClient = null;
    this.listening = null;
    client?.end().catch(() => {});
  }

  close(): void {
    this.pendingBegin = false;
    this.pendingBefore = [];
    this.pendingNotices = [];
    this.channels.clear();
    this.stopListening();
    if (!this.worker) return;
    try {
      this.call({ op: 'close' });
    } catch {
      // Closing a connection that is gone already.
    }
    void this.worker.terminate();
    this.port?.close();
    this.worker = null;
    this.port = null;
    this.signal = null;
  }
}

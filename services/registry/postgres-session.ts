// Transactions on PostgreSQL that do not hold the process's thread (RegistryDb.runAsync): each is
// a generator of steps (steps.ts) driven over a connection of its own, on this thread's event
// loop, while the thread goes on with other work. The registry's own connection (postgres-backend.ts)
// makes its caller wait for every answer; recording an alert that way stopped the ingest path for
// each of its round trips.
// Everything a step can go without an answer for (the BEGIN, a lock, writes, the NOTIFYs) is sent
// with the next statement whose rows are wanted, or with the COMMIT, in pg's pipeline mode: a
// new alert and a merge into one are two round trips each.
// Transactions run one after the other, in the order given.
import pg from 'pg';
import { LOCK_SQL, bindPostgres, describePostgresUrl, postgresFailure, type PostgresOptions, type WorkerError } from './postgres-backend.ts';
import type { Rows, Steps } from './steps.ts';
import { within } from '../within.ts';

/** Longest wait at close for the transaction under way. */
const CLOSE_GRACE_MS = 1000;

/** Statements prepared per connection under a name, as the worker does (postgres-worker.mjs). */
const PREPARED_MAX = 1000;

/** int8 and numeric as numbers, as the registry's own connection reads them (postgres-worker.mjs). */
const types = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') => ((oid === 20 || oid === 1700) && format !== 'binary' ? Number : pg.types.getTypeParser(oid, format))) as typeof pg.types.getTypeParser,
};

interface Bound {
  text: string;
  values: unknown[];
}

export class PostgresSession {
  readonly where: string;
  private client: pg.Client | null = null;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly prepared = new Map<string, string>();
  private names = 0;
  private closed = false;

  constructor(
    private readonly url: string,
    private readonly options: PostgresOptions,
  ) {
    this.where = describePostgresUrl(url);
  }

  /** Runs the transaction `make` gives, after those given before; a plan no longer valid (0A000) is prepared again once. */
  run<T>(make: () => Steps<T>): Promise<T> {
    const result = this.queue.then(async () => {
      try {
        return await this.transaction(make());
      } catch (error) {
        if ((error as { code?: string }).code !== '0A000') throw error;
        return this.transaction(make());
      }
    });
    this.queue = result.catch(() => {});
    return result;
  }

  /**
   * Ends the connection once the transactions given so far are done. A server that does not
   * answer would hold this up to the statement timeout, or for ever (pg waits for it to close the
   * connection): after a second each, the connection is cut off instead, and a transaction still
   * under way is not committed.
   */
  async close(): Promise<void> {
    this.closed = true;
    await within(this.queue, CLOSE_GRACE_MS);
    const client = this.client;
    this.client = null;
    if (!client) return;
    const ending = client.end().catch(() => {});
    if (!(await within(ending, CLOSE_GRACE_MS))) (client as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy();
    await ending;
  }

  private async transaction<T>(steps: Steps<T>): Promise<T> {
    const client = await this.connection();
    let begun = false;
    const pending: Bound[] = [];
    const notices: [channel: string, payload: string][] = [];
    const leading = (): Promise<pg.QueryResult>[] => {
      const sent = begun ? [] : [client.query('BEGIN')];
      begun = true;
      return [...sent, ...pending.splice(0).map((s) => this.execute(client, s))];
    };
    try {
      let answer: Rows | undefined;
      for (;;) {
        const next = steps.next(answer);
        answer = undefined;
        if (next.done) {
          if (!begun && pending.length === 0 && notices.length === 0) return next.value;
          const sent = leading();
          for (const [channel, payload] of notices) sent.push(client.query({ name: 'waste_notify', text: 'SELECT pg_notify($1, $2)', values: [channel, payload] }));
          sent.push(client.query('COMMIT'));
          const result = await this.settled(sent);
          // A statement of it failed and its error was caught by the steps: COMMIT rolled back.
          if (result.command === 'ROLLBACK') throw Object.assign(new Error('the transaction was rolled back, not committed: a statement in it failed; nothing of it was written'), { code: '25P02' });
          return next.value;
        }
        const step = next.value;
        if (step.kind === 'select') {
          // Bound before anything is sent: a statement that cannot be bound leaves nothing answering.
          const statement = bindPostgres(step.sql, step.params);
          answer = (await this.settled([...leading(), this.execute(client, statement)])).rows;
        }
        else if (step.kind === 'write') pending.push(bindPostgres(step.sql, step.params));
        else if (step.kind === 'lock') pending.push(bindPostgres(LOCK_SQL, [step.key]));
        else notices.push([step.channel, step.payload]);
      }
    } catch (error) {
      if (begun && this.client === client) await client.query('ROLLBACK').catch(() => {});
      throw error;
    }
  }

  private async connection(): Promise<pg.Client> {
    if (this.closed) throw new Error('the registry database is closed');
    if (this.client) return this.client;
    const { statementTimeoutMs, connectTimeoutMs, applicationName } = this.options;
    const client = new pg.Client({
      connectionString: this.url,
      connectionTimeoutMillis: connectTimeoutMs,
      statement_timeout: statementTimeoutMs,
      // A server that does not answer at all (stopped, the network cut) is given up on a little
      // after the statement timeout; pg then drops the connection, and the next transaction makes another.
      query_timeout: statementTimeoutMs + 2_000,
      application_name: `${applicationName} (alerts)`,
      keepAlive: true,
      keepAliveInitialDelayMillis: 10_000,
      pipeline: true,
      types,
    } as pg.ClientConfig);
    const drop = () => {
      if (this.client === client) this.client = null;
    };
    client.on('error', drop);
    client.on('end', drop);
    try {
      await client.connect();
    } catch (error) {
      client.end().catch(() => {});
      throw postgresFailure(error as WorkerError, this.where, true);
    }
    this.client = client;
    return client;
  }

  /** A statement, prepared under a name the first time (PostgreSQL docs, "PREPARE"). */
  private execute(client: pg.Client, { text, values }: Bound): Promise<pg.QueryResult> {
    let name = this.prepared.get(text);
    if (name === undefined && this.prepared.size < PREPARED_MAX) this.prepared.set(text, (name = `waste_async_${this.names++}`));
    return client.query({ name, text, values }).catch((error: { code?: string }) => {
      // A table changed under a prepared plan (another process migrating): prepared again next time.
      if (error.code === '0A000') this.prepared.delete(text);
      throw error;
    });
  }

  /** Waits for every statement sent (none is left answering behind the next), then gives the last result or the first failure. */
  private async settled(sent: Promise<pg.QueryResult>[]): Promise<pg.QueryResult> {
    const results = await Promise.allSettled(sent);
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) {
      const error = failed.reason as WorkerError & Error;
      throw postgresFailure({ message: error.message, code: error.code ?? null, constraint: error.constraint ?? null, detail: error.detail ?? null, column: error.column ?? null }, this.where, false);
    }
    return (results.at(-1) as PromiseFulfilledResult<pg.QueryResult>).value;
  }
}

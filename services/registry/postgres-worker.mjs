// The worker thread of the PostgreSQL backend (postgres-backend.ts): holds the registry's
// connection and runs each statement the main thread asks for, while that thread waits on a
// shared flag (Atomics.wait) and then takes the answer with receiveMessageOnPort. Plain JavaScript
// on purpose: it needs only the driver, and so starts without a TypeScript loader in any thread.
// One request at a time: the main thread sends the next only after it has the answer.
import { workerData } from 'node:worker_threads';
import pg from 'pg';

const { url, statementTimeoutMs, connectTimeoutMs, applicationName, signal, port } = workerData;

// int8 (COUNT(*), epoch milliseconds in BIGINT columns) and numeric (SUM over them) come back as
// strings by default, so that no precision is lost past 2^53; the registry's values stay far below.
pg.types.setTypeParser(20, (value) => Number(value));
pg.types.setTypeParser(1700, (value) => Number(value));

/** @type {pg.Client | null} */
let client = null;
/** The connection a transaction began on: every statement until its end must go there. */
let transaction = null;
/** The transaction under way lost its connection: nothing more of it may run, anywhere. */
let broken = false;

async function connection() {
  if (client) return client;
  const next = new pg.Client({
    connectionString: url,
    connectionTimeoutMillis: connectTimeoutMs,
    statement_timeout: statementTimeoutMs,
    application_name: applicationName,
    keepAlive: true,
    keepAliveInitialDelayMillis: 10_000,
  });
  // A connection that breaks (server restarted, network cut) is replaced at the next request; a
  // transaction it held is lost with it, and its caller is told.
  next.on('error', () => {
    if (client === next) client = null;
  });
  next.on('end', () => {
    if (client === next) client = null;
  });
  await next.connect();
  client = next;
  return next;
}

function describe(error) {
  return {
    message: error.message || String(error),
    code: error.code ?? null,
    constraint: error.constraint ?? null,
    detail: error.detail ?? null,
    column: error.column ?? null,
  };
}

/** The connection for the next statement: within a transaction, the one it began on, or none. */
async function statementConnection() {
  if (broken) throw new Error('the connection to PostgreSQL broke inside a transaction; nothing of the transaction was written');
  if (transaction === null) return connection();
  if (transaction !== client) throw new Error('the connection to PostgreSQL broke inside a transaction; nothing of the transaction was written');
  return transaction;
}

/**
 * Statements are prepared once per connection under a name (PostgreSQL docs, "PREPARE"): parsing
 * and planning are not repeated on every call. Statements built from a filter (IN lists of
 * varying length) come in a few shapes only; past this many the rest run unnamed.
 */
const PREPARED_MAX = 1000;
const prepared = new Map();
let names = 0;

function statementName(text) {
  let name = prepared.get(text);
  if (name === undefined && prepared.size < PREPARED_MAX) {
    name = `waste_${names++}`;
    prepared.set(text, name);
  }
  return name;
}

/**
 * Runs a statement prepared by name. A table changed under it by another connection (ALTER TABLE:
 * "cached plan must not change result type", SQLSTATE 0A000) makes PostgreSQL refuse the prepared
 * plan for good: it is prepared again under a new name, and run again at once outside a
 * transaction (inside one, the transaction has failed, and its caller is told).
 */
async function runPrepared(connection, text, values) {
  try {
    return await connection.query({ name: statementName(text), text, values });
  } catch (error) {
    if (error.code !== '0A000') throw error;
    prepared.delete(text);
    if (transaction !== null) throw error;
    return connection.query({ name: statementName(text), text, values });
  }
}

async function handle(request) {
  // The BEGIN of a transaction comes with its first request (postgres-backend.ts).
  if (request.begin) {
    broken = false;
    if (transaction !== null) throw new Error('a transaction is open already');
    transaction = await connection();
    await transaction.query('BEGIN');
  }
  // Statements sent ahead of this one, whose answers nobody waits for (a lock taken).
  for (const statement of request.before ?? []) await runPrepared(await statementConnection(), statement.text, statement.values);
  switch (request.op) {
    case 'commit': {
      if (broken) {
        broken = false;
        throw new Error('the connection to PostgreSQL broke inside a transaction; nothing of the transaction was written');
      }
      const open = await statementConnection();
      for (const [channel, payload] of request.notices ?? []) await open.query({ name: 'waste_notify', text: 'SELECT pg_notify($1, $2)', values: [channel, payload] });
      transaction = null;
      const result = await open.query('COMMIT');
      // A transaction in which a statement failed is rolled back by COMMIT, answered with the
      // tag ROLLBACK and no error: the caller, who caught that statement's error and went on
      // (SQLite would have kept the rest), must not take it as written.
      if (result.command === 'ROLLBACK') {
        throw Object.assign(new Error('the transaction was rolled back, not committed: a statement in it failed (and its error was caught); nothing of it was written. Run such a statement in a nested transaction (a savepoint).'), { code: '25P02' });
      }
      return {};
    }
    case 'rollback': {
      const open = transaction;
      transaction = null;
      broken = false;
      if (open !== null && open === client) await open.query('ROLLBACK');
      return {};
    }
    case 'connect':
      await connection();
      return {};
    case 'query': {
      const result = await runPrepared(await statementConnection(), request.text, request.values);
      return { rows: result.rows, changes: result.rowCount ?? 0 };
    }
    case 'exec':
      await (await statementConnection()).query(request.sql);
      return {};
    case 'close': {
      const open = client;
      client = null;
      transaction = null;
      await open?.end().catch(() => {});
      return {};
    }
    default:
      throw new Error(`unknown request ${request.op}`);
  }
}

/**
 * The caller gave up waiting (postgres-backend.ts): the connection may be stalled (a cut network
 * answers nothing) or busy with what was given up. It is dropped at once, so that nothing given up
 * runs later, and the transaction under way with it, which no later statement may continue.
 */
function abandon() {
  const open = client;
  client = null;
  if (transaction !== null) broken = true;
  transaction = null;
  open?.connection?.stream?.destroy();
  open?.end().catch(() => {});
}

/** One request at a time, in the order sent; an abandon is taken at once. */
let queue = Promise.resolve();

port.on('message', (request) => {
  if (request.op === 'abandon') return abandon();
  queue = queue.then(async () => {
    let reply;
    try {
      reply = { id: request.id, ok: true, ...(await handle(request)) };
    } catch (error) {
      reply = { id: request.id, ok: false, error: describe(error) };
    }
    port.postMessage(reply);
    Atomics.store(signal, 0, 1);
    Atomics.notify(signal, 0);
  });
});

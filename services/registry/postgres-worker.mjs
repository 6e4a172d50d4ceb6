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
    pipeline: true,
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
  // Whether it is sent inside a transaction, known now: a COMMIT sent with it ends the transaction
  // before its answer comes.
  const inTransaction = transaction !== null;
  try {
    return await connection.query({ name: statementName(text), text, values });
  } catch (error) {
    if (error.code !== '0A000') throw error;
    prepared.delete(text);
    if (inTransaction) throw error;
    return connection.query({ name: statementName(text), text, values });
  }
}

/**
 * Waits for every statement sent (so that none is left answering behind the next request) and
 * gives the last one's result, or the first failure.
 */
async function settled(sent) {
  const results = await Promise.allSettled(sent);
  const failed = results.find((r) => r.status === 'rejected');
  if (failed) throw failed.reason;
  return results.at(-1)?.value;
}

async function handle(request) {
  if (request.op === 'connect') {
    await connection();
    return {};
  }
  if (request.op === 'close') {
    const open = client;
    client = null;
    transaction = null;
    await open?.end().catch(() => {});
    return {};
  }
  if (request.op === 'rollback') {
    const open = transaction;
    transaction = null;
    broken = false;
    if (open !== null && open === client) await open.query('ROLLBACK');
    return {};
  }
  // Everything a request carries is written at once, without waiting for each answer (pg's
  // pipeline mode, each statement with its own Sync): the BEGIN of a transaction that comes with
  // its first request (postgres-backend.ts), the statements sent ahead whose answers nobody waits
  // for (a lock taken, rows written), the statement itself, and at a COMMIT its NOTIFYs. One round
  // trip to the server instead of one per statement. After a failure in a transaction, the
  // server answers the rest with "current transaction is aborted"; the first failure is told.
  if (request.begin) {
    broken = false;
    if (transaction !== null) throw new Error('a transaction is open already');
  }
  if (request.op === 'commit' && broken) {
    broken = false;
    throw new Error('the connection to PostgreSQL broke inside a transaction; nothing of the transaction was written');
  }
  const open = request.begin ? await connection() : await statementConnection();
  const sent = [];
  if (request.begin) {
    transaction = open;
    sent.push(open.query('BEGIN'));
  }
  for (const statement of request.before ?? []) sent.push(runPrepared(open, statement.text, statement.values));
  switch (request.op) {
    case 'commit': {
      for (const [channel, payload] of request.notices ?? []) sent.push(open.query({ name: 'waste_notify', text: 'SELECT pg_notify($1, $2)', values: [channel, payload] }));
      transaction = null;
      sent.push(open.query('COMMIT'));
      const result = await settled(sent);
      // A transaction in which a statement failed is rolled back by COMMIT, answered with the
      // tag ROLLBACK and no error: the caller, who caught that statement's error and went on
      // (SQLite would have kept the rest), must not take it as written.
      if (result.command === 'ROLLBACK') {
        throw Object.assign(new Error('the transaction was rolled back, not committed: a statement in it failed (and its error was caught); nothing of it was written. Run such a statement in a nested transaction (a savepoint).'), { code: '25P02' });
      }
      return {};
    }
    case 'query': {
      sent.push(runPrepared(open, request.text, request.values));
      const result = await settled(sent);
      return { rows: result.rows, changes: result.rowCount ?? 0 };
    }
    case 'exec':
      sent.push(open.query(request.sql));
      await settled(sent);
      return {};
    default:
      await settled(sent);
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

// The worker thread of one registry import (bundle-thread.ts): parses the bundle, checks it and
// writes it on a connection of its own, and posts back the report or what refused it.
import { parentPort, workerData } from 'node:worker_threads';
import { BundleError, BundleTooLargeError, importBundle } from './bundle.ts';
import { RegistryDb } from './db.ts';
import { DeviceStore, RegistryError } from './devices.ts';
import { EntityStore } from './entity-store.ts';
import type { ImportJob, ImportOutcome } from './bundle-thread.ts';

// The API's own JSON parser refuses these keys (fastify's prototype-poisoning protection, as in
// secure-json-parse); a bundle is held to the same. The text is searched first, escapes included,
// so that only a body that names one pays for the reviver.
const SUSPECT_KEY = /"(?:_|\\u005[Ff])(?:_|\\u005[Ff])(?:p|\\u0070)(?:r|\\u0072)(?:o|\\u006[Ff])(?:t|\\u0074)(?:o|\\u006[Ff])(?:_|\\u005[Ff])(?:_|\\u005[Ff])"|"(?:c|\\u0063)(?:o|\\u006[Ff])(?:n|\\u006[Ee])(?:s|\\u0073)(?:t|\\u0074)(?:r|\\u0072)(?:u|\\u0075)(?:c|\\u0063)(?:t|\\u0074)(?:o|\\u006[Ff])(?:r|\\u0072)"/;

function parse(text: string): unknown {
  if (!SUSPECT_KEY.test(text)) return JSON.parse(text);
  return JSON.parse(text, (key, value: unknown) => {
    if (key === '__proto__') throw new SyntaxError('the key "__proto__" is not allowed');
    if (key === 'constructor' && typeof value === 'object' && value !== null && 'prototype' in value) throw new SyntaxError('a "constructor" key holding "prototype" is not allowed');
    return value;
  });
}

async function run(job: ImportJob): Promise<ImportOutcome> {
  let input: unknown;
  try {
    input = parse(Buffer.from(job.body.buffer, job.body.byteOffset, job.body.byteLength).toString('utf8'));
  } catch (error) {
    return { kind: 'invalid_json', message: `the body is not JSON: ${(error as Error).message.slice(0, 200)}` };
  }
  const db = new RegistryDb(job.location);
  db.open();
  try {
    const report = await importBundle({ db, devices: new DeviceStore(db), entities: new EntityStore(db, undefined, job.limits) }, input, { dryRun: job.dryRun });
    // Serialised here: 60,000 new devices' secrets are megabytes of JSON, not the main thread's work.
    const { created = 0, updated = 0 } = report.counts.devices ?? {};
    return { kind: 'ok', json: JSON.stringify(report), devicesCreated: created, devicesChanged: created + updated };
  } catch (error) {
    if (error instanceof BundleError) return { kind: 'bundle', problems: error.problems, problemCount: error.problemCount };
    if (error instanceof BundleTooLargeError) return { kind: 'too_large', message: error.message };
    if (error instanceof RegistryError) return { kind: 'registry', code: error.code, message: error.message };
    return { kind: 'failed', message: (error as Error).message, stack: (error as Error).stack };
  } finally {
    db.close();
  }
}

parentPort!.postMessage(await run(workerData as ImportJob));

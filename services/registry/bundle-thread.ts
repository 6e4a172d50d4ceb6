// Runs a registry import (bundle.ts) on a worker thread with a database connection of its own, so
// that parsing, checking and writing a city's registry never hold the event loop: a bundle of
// 100,000 entities held it for 3.8 s in the report that found it (14-19 s on a busy 2-core
// machine), stalling MQTT acknowledgements and /health. The main thread only passes the bytes over and the report back. The worker's heap
// is capped, so a bundle that needs more memory than a city's would fails alone; one thread per
// import, ended with it, so its memory goes back to the system afterwards.
import { Worker } from 'node:worker_threads';
import { BundleError, BundleTooLargeError, SPLIT_ADVICE, type BundleProblem } from './bundle.ts';
import { RegistryError } from './devices.ts';
import type { RegistryLimits } from './limits.ts';

export interface ImportJob {
  /** The registry database: a file (not ':memory:', which one connection alone can see) or a PostgreSQL URL. */
  location: string;
  /** The bundle as sent (JSON, UTF-8); transferred to the worker, not copied. */
  body: Uint8Array;
  dryRun: boolean;
  limits: RegistryLimits;
}

export type ImportOutcome =
  | { kind: 'ok'; json: string; devicesCreated: number; devicesChanged: number }
  | { kind: 'bundle'; problems: BundleProblem[]; problemCount: number }
  | { kind: 'too_large'; message: string }
  | { kind: 'invalid_json'; message: string }
  | { kind: 'registry'; code: RegistryError['code']; message: string }
  | { kind: 'failed'; message: string; stack?: string };

/** A body that is not JSON (HTTP 400); `code` and `statusCode` are the API's. */
export class InvalidJsonError extends Error {
  readonly statusCode = 400;
  readonly code = 'INVALID_JSON';
}

/**
 * Heap of the worker: a bundle's parsed items and their checked rows take some ten times its
 * bytes; the cap leaves room for that and stops a bundle built to take more.
 */
export function workerHeapMb(limits: RegistryLimits): number {
  return Math.max(256, Math.ceil((16 * limits.importMaxBytes) / 2 ** 20));
}

/**
 * Imports a bundle on a worker thread; resolves with the report as JSON text (the API sends it as
 * is), the devices it created, and those it created or changed (a terminal's phone number or
 * model): the worker's connection is not the caller's, so the caller's device store learns of
 * them from data_version only at its next poll unless told.
 */
export function importOffThread(job: ImportJob): Promise<{ json: string; devicesCreated: number; devicesChanged: number }> {
  const heapMb = workerHeapMb(job.limits);
  // Transferring detaches the whole ArrayBuffer: a Buffer sharing Node's pool (small ones do) is
  // copied out first.
  const body = job.body.byteOffset === 0 && job.body.byteLength === job.body.buffer.byteLength ? job.body : new Uint8Array(job.body);
  job = { ...job, body };
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL('./bundle-worker.mjs', import.meta.url), {
      workerData: job,
      transferList: [job.body.buffer as ArrayBuffer],
      resourceLimits: { maxOldGenerationSizeMb: heapMb },
    });
    let outcome: ImportOutcome | null = null;
    worker.once('message', (message: ImportOutcome) => (outcome = message));
    worker.once('error', (error: Error & { code?: string }) => {
      if (error.code === 'ERR_WORKER_OUT_OF_MEMORY') {
        reject(new BundleTooLargeError(`checking the bundle needed more than the ${heapMb} MB an import may use; nothing was written; ${SPLIT_ADVICE}`));
      } else reject(error);
    });
    worker.once('exit', () => {
      const result = outcome as ImportOutcome | null;
      if (!result) return reject(new Error('the import worker ended without an answer'));
      switch (result.kind) {
        case 'ok':
          return resolve({ json: result.json, devicesCreated: result.devicesCreated, devicesChanged: result.devicesChanged });
        case 'bundle':
          return reject(new BundleError(result.problems, result.problemCount));
        case 'too_large':
          return reject(new BundleTooLargeError(result.message));
        case 'invalid_json':
          return reject(new InvalidJsonError(result.message));
        case 'registry':
          return reject(new RegistryError(result.code, result.message));
        case 'failed':
          return reject(Object.assign(new Error(`import failed: ${result.message}`), { stack: result.stack }));
      }
    });
  });
}

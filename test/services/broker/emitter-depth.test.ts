// boundedEmitter (services/broker/library-patches.ts) against the real aedes and mqemitter: a burst
// of publishes, each started from the callback of the one before, delivered to a subscriber that
// completes at once. mqemitter calls the callback from inside _do (mqemitter.js, _do and
// fastparallel), so every publish goes a few stack frames deeper: aedes on mqemitter as it comes
// overflows the stack within the burst; on the bounded emitter all of it is delivered.
import { Aedes } from 'aedes';
import mqemitter, { type MQEmitter } from 'mqemitter';
import { describe, expect, it } from 'vitest';
import { boundedEmitter } from '../../../services/broker/library-patches.ts';

const BURST = 5000;

/** Publishes BURST messages through a real aedes broker on `mq`, each from the previous one's callback. */
async function burst(mq: MQEmitter): Promise<{ delivered: number; error: Error | undefined }> {
  const aedes = await Aedes.createBroker({ mq });
  let delivered = 0;
  await new Promise<void>((resolve) =>
    aedes.subscribe(
      'burst/t',
      (_packet, done) => {
        delivered++;
        done();
      },
      () => resolve(),
    ),
  );
  let error: Error | undefined;
  await new Promise<void>((resolve) => {
    const next = (i: number): void => {
      if (i === BURST) return resolve();
      aedes.publish({ cmd: 'publish', topic: 'burst/t', payload: Buffer.from(`fix ${i}`), qos: 0, retain: false, dup: false }, (publishError) => {
        if (publishError) {
          error = publishError;
          return resolve();
        }
        next(i + 1);
      });
    };
    try {
      next(0);
    } catch (thrown) {
      error = thrown as Error;
      resolve();
    }
  });
  await new Promise<void>((resolve) => aedes.close(() => resolve()));
  return { delivered, error };
}

describe('boundedEmitter', () => {
  it('is needed: on mqemitter as it comes, a burst of synchronous deliveries overflows the stack', async () => {
    const { delivered, error } = await burst(mqemitter({ concurrency: 0, matchEmptyLevels: true }));
    expect(error).toBeInstanceOf(RangeError);
    expect(error!.message).toMatch(/Maximum call stack size exceeded/);
    expect(delivered).toBeLessThan(BURST);
  });

  it('delivers the whole burst, with no overflow', async () => {
    const { delivered, error } = await burst(boundedEmitter(0));
    expect(error).toBeUndefined();
    expect(delivered).toBe(BURST);
  });
});

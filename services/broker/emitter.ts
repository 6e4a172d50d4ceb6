// The message emitter under aedes, kept from recursing without bound. aedes passes every publish
// through mqemitter, and a delivery that completes at once can start the next one from inside its
// callback: a burst of thousands (a spool group commit releasing that many publishes, or a queue
// drained after the in-flight limit) goes one stack level deeper per message, overflows the stack
// and kills the process (mqemitter pull request #204, unresolved upstream). Here an emit nested
// deeper than MAX_DEPTH continues on the next turn of the event loop instead.
import mqemitter, { type MQEmitter } from 'mqemitter';

const MAX_DEPTH = 200;

type Do = (message: unknown, callback: () => void) => unknown;

export function boundedEmitter(concurrency: number): MQEmitter {
  // Empty levels match as aedes sets them up itself ([MQTT-4.7.1-3]).
  const mq = mqemitter({ concurrency, matchEmptyLevels: true });
  const internals = mq as unknown as { _do: Do };
  const original = internals._do;
  let depth = 0;
  internals._do = function (message, callback) {
    if (depth >= MAX_DEPTH) {
      setImmediate(() => original.call(mq, message, callback));
      return mq;
    }
    depth++;
    try {
      return original.call(mq, message, callback);
    } finally {
      depth--;
    }
  };
  return mq;
}

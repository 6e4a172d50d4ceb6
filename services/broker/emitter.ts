// The message emitter under aedes, with its queue drained without deep recursion. aedes passes
// every publish through mqemitter; once `concurrency` deliveries are in flight (a slow subscriber
// holds them), further messages queue, and the queue is drained recursively: a message nobody
// subscribes to completes synchronously and starts the next one a few stack frames deeper. A
// burst of thousands (a spool group commit releasing that many publishes) then overflows the stack
// and kills the process (mqemitter pull request #204, unresolved upstream). Here a drain deeper
// than MAX_DEPTH continues on the next turn of the event loop instead.
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

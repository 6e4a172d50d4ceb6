// Entry of the registry import's worker thread (bundle-thread.ts). Module hooks registered in the
// main thread (tsx, through --import) do not reach worker threads on Node 20, so this plain module
// registers tsx here and then loads the TypeScript worker.
import { register } from 'tsx/esm/api';

register();
await import('./bundle-worker.ts');

// Temp directories of a test file, removed when the file is done (test/setup.ts). Kept apart from
// service.ts, which loads the whole service: every test file loads this one.
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

const tempDirs: string[] = [];

/** Removes the temp directories made by tempDir(); test/setup.ts calls it after each test file. */
export async function removeTempDirs(): Promise<void> {
  await Promise.all(tempDirs.splice(0).map((dir) => fsp.rm(dir, { recursive: true, force: true })));
}

/** A temp directory removed when the test file is done. */
export async function tempDir(prefix: string): Promise<string> {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), prefix));
  tempDirs.push(dir);
  return dir;
}

import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Spool, SpoolFullError } from '../../../services/spool/spool.ts';

let dir: string;
const open = async (options: Partial<ConstructorParameters<typeof Spool>[0]> = {}) => {
  const spool = new Spool({ dir, quotaBytes: 1024 * 1024, segmentBytes: 1024, fsync: true, ...options });
  await spool.open();
  return spool;
};

async function readAll(spool: Spool, commit = true): Promise<string[]> {
  const lines: string[] = [];
  for (let batch = await spool.read(7); batch; batch = await spool.read(7)) {
    lines.push(...batch.body.toString().split('\n').filter(Boolean));
    if (commit) await spool.commit(batch.end);
    else break;
  }
  return lines;
}

beforeEach(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'spool-test-'));
});
afterEach(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

describe('Spool', () => {
  it('keeps taking data under a quota smaller than one segment while what it holds is delivered', async () => {
    // 2 MB quota, 16 MiB segments: delivered bytes of the open segment once filled the quota.
    const spool = await open({ quotaBytes: 2_000_000, segmentBytes: 16 * 1024 ** 2 });
    const line = `m,device_id=d v="${'x'.repeat(1000)}" 1\n`;
    for (let i = 0; i < 4000; i++) {
      await spool.append(line);
      if (i % 100 === 99) await readAll(spool);
      expect(spool.usedBytes()).toBeLessThanOrEqual(2_000_000);
    }
    expect(spool.isFull(256 * 1024)).toBe(false);
    await spool.close();
  });

  it('returns appended lines in order across segments and batches', async () => {
    const spool = await open();
    const expected = Array.from({ length: 200 }, (_, i) => `m,device_id=d${i % 3} v=${i} ${i}`);
    for (const line of expected) await spool.append(line + '\n');
    expect((await fs.readdir(dir)).filter((f) => f.endsWith('.lp')).length).toBeGreaterThan(3);
    expect(await readAll(spool)).toEqual(expected);
    expect(spool.backlogBytes()).toBe(0);
    await spool.close();
  });

  it('counts multi-byte text in bytes, so segments and positions stay exact', async () => {
    const spool = await open();
    const expected = Array.from({ length: 100 }, (_, i) => `m,road=长安街${i},site=朝阳区消纳场 v=${i} ${i}`);
    for (const line of expected) await spool.append(line + '\n');
    const bytes = expected.reduce((sum, line) => sum + Buffer.byteLength(line) + 1, 0);
    expect(spool.appendedBytes()).toBe(bytes);
    expect(bytes).toBeGreaterThan(3 * 1024); // several 1 KiB segments, cut between multi-byte lines
    expect(await readAll(spool)).toEqual(expected);
    await spool.close();
  });

  it('delivers what was not committed after a reopen, and not what was', async () => {
    let spool = await open();
    for (let i = 0; i < 20; i++) await spool.append(`m v=${i} ${i}\n`);
    const first = (await spool.read(5))!;
    await spool.commit(first.end);
    await spool.close();

    spool = await open();
    expect(await readAll(spool)).toEqual(Array.from({ length: 15 }, (_, i) => `m v=${i + 5} ${i + 5}`));
    await spool.close();
  });

  it('says how far delivery has come against what was appended, across a reopen', async () => {
    let spool = await open();
    await spool.append('m v=1 1\nm v=2 2\n');
    const upTo = spool.appendedBytes();
    expect(spool.deliveredBytes()).toBe(0);
    const batch = (await spool.read(10))!;
    await spool.append('m v=3 3\n');
    await spool.commit(batch.end);
    // Delivered up to where it was asked, while a later line still waits.
    expect(spool.deliveredBytes()).toBe(upTo);
    expect(spool.appendedBytes()).toBeGreaterThan(upTo);
    await spool.close();
    spool = await open();
    expect(spool.appendedBytes()).toBe('m v=3 3\n'.length);
    expect(spool.deliveredBytes()).toBe(0);
    await readAll(spool);
    expect(spool.deliveredBytes()).toBe(spool.appendedBytes());
    await spool.close();
  });

  it('drops a torn last line (never acknowledged) and keeps every complete one', async () => {
    let spool = await open();
    await spool.append('m v=1 1\nm v=2 2\n');
    await spool.close();
    const segment = (await fs.readdir(dir)).find((f) => f.endsWith('.lp'))!;
    await fs.appendFile(path.join(dir, segment), 'm v=3 3'); // a crash in the middle of a write
    spool = await open();
    await spool.append('m v=4 4\n');
    expect(await readAll(spool)).toEqual(['m v=1 1', 'm v=2 2', 'm v=4 4']);
    await spool.close();
  });

  it('refuses appends past the quota without writing them, and accepts again once drained', async () => {
    const spool = await open({ quotaBytes: 100, segmentBytes: 40 });
    await spool.append('a'.repeat(59) + '\n');
    await expect(spool.append('b'.repeat(59) + '\n')).rejects.toBeInstanceOf(SpoolFullError);
    expect(spool.isFull(41)).toBe(true);
    expect(await readAll(spool)).toEqual(['a'.repeat(59)]);
    await spool.append('c'.repeat(59) + '\n');
    expect(await readAll(spool)).toEqual(['c'.repeat(59)]);
    await spool.close();
  });

  it('groups concurrent appends into few writes', async () => {
    const spool = await open({ segmentBytes: 1024 * 1024 });
    let groups = 0;
    spool.on('data', () => groups++);
    await Promise.all(Array.from({ length: 1000 }, (_, i) => spool.append(`m v=${i} ${i}\n`)));
    expect(groups).toBeLessThan(10);
    await spool.close();
  });
});

// The broker's self-check of its library patches (services/broker/library-patches.ts): the probe
// session on a real throwaway aedes broker finds every shape the patches rely on in the libraries
// installed, and a shape that changed is told in one sentence naming the package, the version
// installed, the version the patch was written for, and what stops working; a required patch that
// no longer fits stops the broker, the others are logged.
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  LIBRARY_PATCHES,
  LibraryPatchError,
  PATCHED_FOR,
  checkLibraryShape,
  installedVersion,
  probeLibraries,
  reportPatchFailures,
  type LibraryShape,
  type PatchedPackage,
} from '../../../services/broker/library-patches.ts';

let shape: LibraryShape;
beforeAll(async () => {
  shape = await probeLibraries();
});

/** A pino logger whose lines are kept, parsed. */
function recordingLogger(): { log: pino.Logger; lines: Array<{ level: number; msg: string; patch?: string }> } {
  const lines: Array<{ level: number; msg: string; patch?: string }> = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(line) as (typeof lines)[number]);
      callback();
    },
  });
  return { log: pino({ level: 'info' }, sink), lines };
}

const patch = (name: string) => LIBRARY_PATCHES.find((p) => p.name === name)!;

describe('the library self-check', () => {
  it('finds every shape the patches rely on in the installed libraries, over a whole probe session', () => {
    expect(shape.unfinished).toBeNull();
    expect(shape).toMatchObject({ dataListeners: 0, samePayloadForwarded: true, disconnectedBefore: false, disconnectedAfter: true });
    expect(shape.chunksChecked).toBeGreaterThan(0);
    expect(shape.emitsThroughDo).toBeGreaterThan(0);
    expect(shape.filtersStored).toBeGreaterThan(0);
    expect(checkLibraryShape(shape)).toEqual([]);
    expect(LIBRARY_PATCHES.map((p) => p.name)).toEqual(['limitFramesBeforeParsing', 'parseIntoFreshPackets', 'boundedEmitter', 'cleanlyDisconnected', 'keepRefusedFiltersOutOfSessions', 'DroppedPayloads']);
  });

  it('runs on the versions the patches were written for (an upgrade: rerun test/services/broker, then move PATCHED_FOR)', () => {
    for (const pkg of Object.keys(PATCHED_FOR) as PatchedPackage[]) expect(`${pkg} ${installedVersion(pkg)}`).toBe(`${pkg} ${PATCHED_FOR[pkg]}`);
  });

  it('says which package, which version and what stops working when a member the patch uses is gone', () => {
    const [emitter] = checkLibraryShape({ ...shape, emitter: {} });
    expect(emitter!.patch.name).toBe('boundedEmitter');
    expect(emitter!.message).toBe(
      `The broker's patch boundedEmitter (services/broker/library-patches.ts) no longer fits the library: ` +
        `mqemitter ${installedVersion('mqemitter')} is installed (the patch was written for ${PATCHED_FOR.mqemitter}), ` +
        `and the mqemitter instance has no _do method [mqemitter/mqemitter.js (emit and _released call _do)]; ` +
        'so a burst of a few hundred deliveries that complete at once overflows the stack and kills the process.',
    );

    const [parser] = checkLibraryShape({ ...shape, client: { _parser: { packet: {} } } });
    expect(parser!.patch.name).toBe('parseIntoFreshPackets');
    expect(parser!.message).toContain(`mqtt-packet ${installedVersion('mqtt-packet')} is installed (the patch was written for ${PATCHED_FOR['mqtt-packet']}), aedes ${installedVersion('aedes')} is installed`);
    expect(parser!.message).toContain('the aedes client has no _parser with a _parseHeader function and a packet object');

    const [sessions] = checkLibraryShape({ ...shape, aedes: { persistence: {} } });
    expect(sessions!.patch.name).toBe('keepRefusedFiltersOutOfSessions');
    expect(sessions!.message).toContain("aedes' persistence has no addSubscriptions method");
    expect(sessions!.message).toContain('every QoS 1 message they match');
  });

  it('says what the library did instead when its behaviour changed', () => {
    const failures = checkLibraryShape({ ...shape, disconnectedAfter: false, samePayloadForwarded: false, dataListeners: 1 });
    expect(failures.map((f) => f.patch.name)).toEqual(['limitFramesBeforeParsing', 'cleanlyDisconnected', 'DroppedPayloads']);
    expect(failures[0]!.message).toContain("aedes listens for 'data' on the connection");
    expect(failures[1]!.message).toContain('a client that sent DISCONNECT has _disconnected false, not true');
    expect(failures[1]!.message).toContain('is no longer recorded offline');
    expect(failures[2]!.message).toContain('authorizeForward got another payload Buffer');
    // A probe that stopped early says where, instead of blaming the step it never reached.
    const stopped = checkLibraryShape({ ...shape, unfinished: 'its SUBSCRIBE', filtersStored: 0, samePayloadForwarded: null });
    expect(stopped.map((f) => f.message.match(/and (the probe session stopped at [^[]*)/)?.[1])).toEqual([
      'the probe session stopped at its SUBSCRIBE, before its SUBSCRIBE was stored ',
      'the probe session stopped at its SUBSCRIBE, before its publish was forwarded ',
    ]);
  });

  it('stops the broker for a required patch that no longer fits, and logs the others', () => {
    const { log, lines } = recordingLogger();
    const optional = checkLibraryShape({ ...shape, client: {} });
    expect(optional.map((f) => f.patch.required)).toEqual([false]);
    expect(() => reportPatchFailures(optional, log)).not.toThrow();
    expect(lines).toEqual([expect.objectContaining({ level: 40, patch: 'parseIntoFreshPackets', msg: `${optional[0]!.message} The broker runs without it.` })]);

    const required = checkLibraryShape({ ...shape, emitter: {}, client: {} });
    let thrown: unknown;
    try {
      reportPatchFailures(required, log);
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(LibraryPatchError);
    expect((thrown as LibraryPatchError).failures.map((f) => f.patch.name)).toEqual(['boundedEmitter']);
    expect((thrown as Error).message).toBe(required.find((f) => f.patch === patch('boundedEmitter'))!.message);
    expect(lines.slice(1).map((l) => [l.level, l.patch])).toEqual([
      [40, 'parseIntoFreshPackets'],
      [50, 'boundedEmitter'],
    ]);
  });
});

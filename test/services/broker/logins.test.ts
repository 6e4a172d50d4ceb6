// The work logins can cause, against the real embedded broker over TCP from many loopback
// addresses. Once, 500 CONNECTs with wrong secrets in 10 ms made a valid device logging in for the
// first time wait 10-11 s: every verification (scrypt, two at a time) queued without bound, ran
// after its client had gone, and a connection that had sent CONNECT had no deadline. These tests
// count scrypt runs and refusals rather than time them.
import net from 'node:net';
import mqtt from 'mqtt';
import { afterEach, describe, expect, it } from 'vitest';
import { rawLogin, startBroker, until, type RawLogin, type StandaloneBroker } from './standalone.ts';

const brokers: StandaloneBroker[] = [];
const sockets: RawLogin[] = [];
afterEach(async () => {
  for (const login of sockets.splice(0)) login.socket.destroy();
  for (const broker of brokers.splice(0)) await broker.stop();
});

async function broker(config: Parameters<typeof startBroker>[0] = {}, clock?: () => number): Promise<StandaloneBroker> {
  const started = await startBroker(config, clock);
  brokers.push(started);
  return started;
}

function login(options: Parameters<typeof rawLogin>[0]): RawLogin {
  const started = rawLogin(options);
  sockets.push(started);
  return started;
}

/** Until every login of `logins` is answered or has its verification pending. */
async function settled(b: StandaloneBroker, logins: RawLogin[]): Promise<void> {
  let answered = 0;
  for (const l of logins) void l.answer.then(() => answered++);
  await until(() => answered + b.broker.pendingLogins() >= logins.length, 'every login is answered or pending');
}

const answers = (logins: RawLogin[]) => Promise.all(logins.map((l) => l.answer));
const tally = (codes: (number | 'closed')[]) => codes.reduce<Record<string, number>>((t, c) => ({ ...t, [c]: (t[c] ?? 0) + 1 }), {});

describe('a flood of wrong secrets', () => {
  it('does not hold up a valid device logging in for the first time, from one attacking address or many', async () => {
    // Once X has failed broker.loginFailuresBeforeBackoff (5) times it waits for the rest of the test.
    const b = await broker({ loginBackoffMs: 60_000 });
    await b.store.add('X', 'trucks');
    const secretY = await b.store.add('Y', 'trucks');
    // 200 CONNECTs for X from one address, 100 more from 20 others.
    const flood = [
      ...Array.from({ length: 200 }, () => login({ port: b.port, from: '127.0.0.2', username: 'X', password: 'wrong' })),
      ...Array.from({ length: 100 }, (_, i) => login({ port: b.port, from: `127.0.0.${10 + (i % 20)}`, username: 'X', password: 'wrong' })),
    ];
    await settled(b, flood);
    const runsBefore = b.broker.verification.scryptRuns;
    const valid = login({ port: b.port, from: '127.0.0.3', username: 'Y', password: secretY });
    expect(await valid.answer).toBe(0);
    // At most two verifications of X (broker.maxPendingLoginsPerSource) were pending, so Y waited
    // for those at most, not for 300.
    expect(b.broker.verification.scryptRuns - runsBefore).toBeLessThanOrEqual(3);
    const codes = tally(await answers(flood));
    // Verified and wrong (4), or refused at once without a verification (3, server unavailable).
    expect(codes[4]).toBe(b.broker.verification.scryptRuns - 1);
    expect(codes[3]).toBe(b.broker.stats.busyLoginRefusals);
    // X backs off per address after its 5th failure there (two more may be pending then): 21 addresses.
    expect(codes[4]).toBeLessThanOrEqual(21 * 7);
    expect(b.broker.verification.mostPending).toBeLessThanOrEqual(3);
  });

  it('bounds the verifications pending (broker.maxPendingLogins); a valid device from another address still gets in', async () => {
    const b = await broker({ maxPendingLogins: 6 });
    const secretY = await b.store.add('Y', 'bins');
    // 40 unknown usernames from 4 addresses: up to 10 pending each (of 16 allowed) would be 40, more than the bound.
    const flood = Array.from({ length: 40 }, (_, i) => login({ port: b.port, from: `127.0.1.${1 + (i % 4)}`, username: `nobody-${i}`, password: 'wrong' }));
    await settled(b, flood);
    const runsBefore = b.broker.verification.scryptRuns;
    // A newcomer holding nothing takes the place of the newest queued request of an address holding
    // two, or finds room: either way it waits behind at most the bound.
    const valid = login({ port: b.port, from: '127.0.2.1', username: 'Y', password: secretY });
    expect(await valid.answer).toBe(0);
    expect(b.broker.verification.scryptRuns - runsBefore).toBeLessThanOrEqual(6 + 1);
    const codes = tally(await answers(flood));
    const { scryptRuns, refusedBusy, mostPending } = b.broker.verification;
    expect(mostPending).toBeLessThanOrEqual(6);
    expect(refusedBusy).toBeGreaterThanOrEqual(1);
    expect(codes[4]).toBe(scryptRuns - 1);
    expect(codes[3]).toBe(b.broker.stats.busyLoginRefusals);
  });

  it('lets the terminals of a fleet behind one NAT address log in together after a restart (broker.maxPendingLoginsPerAddress)', async () => {
    const b = await broker();
    const secrets = await Promise.all(Array.from({ length: 16 }, (_, i) => b.store.add(`NAT-${i}`, 'trucks')));
    const storm = secrets.map((secret, i) => login({ port: b.port, from: '127.0.4.1', username: `NAT-${i}`, password: secret }));
    expect(tally(await answers(storm))).toEqual({ 0: 16 });
    expect(b.broker.stats.busyLoginRefusals).toBe(0);
  });

  it('drops the queued verifications of clients that have gone, without computing them', async () => {
    const b = await broker();
    const gone = Array.from({ length: 30 }, (_, i) => login({ port: b.port, from: `127.0.3.${1 + i}`, username: `nobody-${i}`, password: 'wrong' }));
    for (const l of gone) l.socket.end();
    const { verification } = b.broker;
    await until(() => verification.scryptRuns + verification.abandoned === gone.length, 'every login is verified or dropped');
    // Two run at once; the others were still queued when their connections closed.
    expect(verification.abandoned).toBeGreaterThanOrEqual(gone.length - 4);
  });
});

describe('deadlines', () => {
  it('refuses a login not answered within broker.loginTimeoutMs of its CONNECT (CONNACK 3), dropping its verification', async () => {
    const b = await broker({ loginTimeoutMs: 50 });
    const slow = Array.from({ length: 30 }, (_, i) => login({ port: b.port, from: `127.0.4.${1 + i}`, username: `nobody-${i}`, password: 'wrong' }));
    const codes = tally(await answers(slow));
    const { verification, stats } = b.broker;
    // Every connection got an answer: 4 for those verified in time, 3 for those that were not.
    expect((codes[3] ?? 0) + (codes[4] ?? 0)).toBe(slow.length);
    expect(codes[3]).toBe(stats.loginTimeouts);
    // An scrypt run takes tens of ms: at most a handful fit in 50 ms two at a time.
    expect(stats.loginTimeouts).toBeGreaterThanOrEqual(10);
    expect(verification.scryptRuns + verification.abandoned).toBe(slow.length);
  });

  it('closes a connection whose CONNECT does not arrive whole within broker.connectTimeoutMs', async () => {
    const b = await broker({ connectTimeoutMs: 200 });
    const socket = net.connect({ host: '127.0.0.1', port: b.port });
    socket.on('error', () => {});
    const closed = new Promise<boolean>((resolve) => socket.once('close', () => resolve(true)));
    // The fixed header and 4 of the 48 bytes it announces: the broker waits for the rest, then gives up.
    socket.write(Buffer.from([0x10, 0x30, 0x00, 0x04, 0x4d, 0x51]));
    // aedes' own default is 30 s.
    expect(await Promise.race([closed, new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 5000))])).toBe(true);
    expect(b.broker.verification.scryptRuns).toBe(0);
  });
});

describe('failed logins back off', () => {
  it('per username and address: past its free failures a username waits there without a verification; the device itself from elsewhere, other devices and the cached secret are not held back', async () => {
    const b = await broker({ loginFailuresBeforeBackoff: 3, loginBackoffMs: 60_000, loginFailuresPerAddressBeforeBackoff: 1000 });
    const secretX = await b.store.add('X', 'trucks');
    const secretZ = await b.store.add('Z', 'trucks');
    const secretC = await b.store.add('C', 'trucks');
    // C logs in once: the broker knows its secret from then on.
    const first = login({ port: b.port, username: 'C', password: secretC });
    expect(await first.answer).toBe(0);
    first.socket.destroy();
    const { verification } = b.broker;
    for (const username of ['X', 'C']) {
      for (let i = 0; i < 3; i++) expect(await login({ port: b.port, from: '127.0.6.1', username, password: 'wrong' }).answer).toBe(4);
    }
    const runs = verification.scryptRuns;
    for (let i = 0; i < 5; i++) expect(await login({ port: b.port, from: '127.0.6.1', username: 'X', password: 'wrong' }).answer).toBe(3);
    // Even X's own secret waits from that address: telling it from a wrong one needs scrypt.
    expect(await login({ port: b.port, from: '127.0.6.1', username: 'X', password: secretX }).answer).toBe(3);
    expect(verification.scryptRuns).toBe(runs);
    // Device ids are not secret: wrong secrets sent for X from one address must not lock X out elsewhere.
    expect(await login({ port: b.port, from: '127.0.6.2', username: 'X', password: secretX }).answer).toBe(0);
    // C's secret is known without scrypt, so C logs in while its username is backing off there.
    expect(await login({ port: b.port, from: '127.0.6.1', username: 'C', password: secretC }).answer).toBe(0);
    expect(await login({ port: b.port, from: '127.0.6.2', username: 'Z', password: secretZ }).answer).toBe(0);
    expect(verification.scryptRuns).toBe(runs + 2);
  });

  it('per address, counting of one username only the failures up to its own limit: a device failing for ever does not hold back its neighbours', async () => {
    let now = Date.now();
    const b = await broker({ loginFailuresBeforeBackoff: 2, loginBackoffMs: 1000, loginBackoffMaxMs: 8000, loginFailuresPerAddressBeforeBackoff: 4 }, () => now);
    await b.store.add('BAD', 'bins');
    const secret = await b.store.add('GOOD', 'bins');
    // BAD, behind the same NAT address as GOOD, retries a wrong secret whenever its wait is over.
    const bad = () => login({ port: b.port, from: '127.0.8.1', username: 'BAD', password: 'wrong' }).answer;
    expect([await bad(), await bad(), await bad()]).toEqual([4, 4, 3]);
    for (const wait of [1000, 2000, 4000]) {
      now += wait;
      expect([await bad(), await bad()]).toEqual([4, 3]);
    }
    expect(b.broker.verification.scryptRuns).toBe(5);
    // The address has counted 2 of those 5 failures, fewer than its 4.
    expect(await login({ port: b.port, from: '127.0.8.1', username: 'GOOD', password: secret }).answer).toBe(0);
  });

  it('per address: an address spraying usernames waits while logins queue, not while the verifier has room; the wait ends', async () => {
    let now = Date.now();
    const b = await broker({ loginFailuresPerAddressBeforeBackoff: 5, loginBackoffMs: 300, loginFailuresBeforeBackoff: 1000, maxPendingLogins: 8 }, () => now);
    const secret = await b.store.add('D', 'bins');
    for (let i = 0; i < 5; i++) expect(await login({ port: b.port, from: '127.0.7.1', username: `guess-${i}`, password: 'wrong' }).answer).toBe(4);
    // The verifier has room: the address's devices (one NAT, one TLS terminator) still log in.
    expect(await login({ port: b.port, from: '127.0.7.1', username: 'D', password: secret }).answer).toBe(0);
    // Logins queue (from 20 other addresses): now the address waits, without a verification.
    const queue = Array.from({ length: 20 }, (_, i) => login({ port: b.port, from: `127.0.9.${1 + i}`, username: `other-${i}`, password: 'wrong' }));
    await until(() => b.broker.pendingLogins() >= 4, 'half the verifier is taken');
    const runs = b.broker.verification.scryptRuns;
    expect(await login({ port: b.port, from: '127.0.7.1', username: 'guess-5', password: 'wrong' }).answer).toBe(3);
    expect(b.broker.verification.scryptRuns).toBe(runs);
    await answers(queue);
    // And the wait ends after loginBackoffMs.
    now += 300;
    expect(await login({ port: b.port, from: '127.0.7.1', username: 'guess-7', password: 'wrong' }).answer).toBe(4);
  });
});

describe('what a refusal tells', () => {
  it('costs one scrypt run of the issued cost for an unknown username as for a known one, and says 4 for both', async () => {
    const b = await broker();
    const secret = await b.store.add('K', 'scales');
    await b.store.add('OFF', 'scales');
    b.store.setEnabled('OFF', false);
    const { verification } = b.broker;
    const runsFor = async (username: string, password: string) => {
      const before = verification.scryptRuns;
      const code = await login({ port: b.port, username, password }).answer;
      return { code, runs: verification.scryptRuns - before };
    };
    expect(await runsFor('K', 'wrong')).toEqual({ code: 4, runs: 1 });
    expect(await runsFor('NOT-A-DEVICE', 'wrong')).toEqual({ code: 4, runs: 1 });
    expect(await runsFor('waste-not-a-service', 'wrong')).toEqual({ code: 4, runs: 1 });
    // A disabled device says so only to a holder of its secret.
    expect(await runsFor('OFF', 'wrong')).toEqual({ code: 4, runs: 1 });
    expect(await runsFor('K', secret)).toEqual({ code: 0, runs: 1 });
  });

  it('refuses a stored hash costlier than the issued scrypt cost without computing it', async () => {
    const b = await broker();
    const now = new Date().toISOString();
    // p = 64 took 2.5 s of the thread pool per login attempt.
    const costly = 'scrypt$16384$8$64$c2FsdHNhbHRzYWx0c2FsdA$' + Buffer.alloc(32, 7).toString('base64url');
    b.store.importCredentials([{ id: 'COSTLY', class: 'trucks', secret_hash: costly, enabled: true, created_at: now }], []);
    const code = await login({ port: b.port, username: 'COSTLY', password: 'anything' }).answer;
    expect(code).toBe(4);
    expect(b.broker.verification).toMatchObject({ scryptRuns: 0, refusedHashes: 1 });
  });

  it('lets mqtt.js devices log in as before', async () => {
    const b = await broker();
    const secret = await b.store.add('M1', 'bins');
    const client = await mqtt.connectAsync(b.url, { username: 'M1', password: secret, reconnectPeriod: 0 });
    expect(client.connected).toBe(true);
    await client.endAsync();
  });
});

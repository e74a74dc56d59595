import { X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  type CaEvent,
  type CaOptions,
  type CaRoots,
  type CertificateAuthority,
  openCa,
} from '../../src/ca/index.js';
import { silentLogger } from '../../src/log.js';
import { serviceSpiffeId } from '../../src/mesh/names.js';
import { openLmdbStore, type Store } from '../../src/store/index.js';
import { waitFor } from '../helpers/wait.js';

let dir: string;
let store: Store;
const cas: CertificateAuthority[] = [];

beforeEach(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'isthmus-ca-rot-'));
  store = await openLmdbStore(dir);
});

afterEach(async () => {
  await Promise.all(cas.splice(0).map((ca) => ca.close()));
  await store.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

async function open(opts: Partial<CaOptions> = {}): Promise<CertificateAuthority> {
  const ca = await openCa(store, {
    dataDir: dir,
    logger: silentLogger(),
    rotation: { phaseMs: 150 },
    ...opts,
  });
  cas.push(ca);
  return ca;
}

function record(ca: CertificateAuthority): CaEvent[] {
  const events: CaEvent[] = [];
  ca.subscribe((e) => events.push(e));
  return events;
}

/** The roots as `[id, active]` pairs, active first. */
const shape = (roots: CaRoots) => roots.roots.map((r) => [r.id, r.active] as const);
const rootsEvents = (events: CaEvent[]) =>
  events.flatMap((e) => (e.kind === 'roots-changed' ? [e.roots] : []));
const keyFile = (id: string) => path.join(dir, 'ca', `${id.replaceAll(':', '')}.key`);
const signedBy = (certPem: string, roots: CaRoots, id: string) =>
  new X509Certificate(certPem).verify(
    new X509Certificate(roots.roots.find((r) => r.id === id)!.certPem).publicKey,
  );

describe('CA root rotation', () => {
  it('goes trust-both → reissue → retire, re-issuing every cached leaf under the new root, each instance its own', async () => {
    const ca = await open();
    const web = serviceSpiffeId(ca.trustDomain, 'dc1', { name: 'web' });
    const api = serviceSpiffeId(ca.trustDomain, 'dc1', { name: 'api' });
    const oldId = ca.roots().activeRootId;
    // Two instances of api hold a leaf each (issue 18); web's is the server's kind, per identity.
    const [oldWeb, oldApi1, oldApi2] = await Promise.all([
      ca.leaf({ spiffeId: web }),
      ca.leaf({ spiffeId: api, holder: 'api-1-sidecar-proxy' }),
      ca.leaf({ spiffeId: api, holder: 'api-2-sidecar-proxy' }),
    ]);
    const events = record(ca);
    const startedAt = Date.now();
    await ca.rotate();

    // Phase 1: both trusted, the old root still active and still signing.
    const phase1 = ca.roots();
    expect(phase1.roots).toHaveLength(2);
    const newId = phase1.roots[1]!.id;
    expect(shape(phase1)).toEqual([
      [oldId, true],
      [newId, false],
    ]);
    expect(await ca.leaf({ spiffeId: web })).toBe(oldWeb);
    expect(await ca.leaf({ spiffeId: api, holder: 'api-2-sidecar-proxy' })).toBe(oldApi2);
    expect(fs.statSync(keyFile(newId)).mode & 0o777).toBe(0o600);

    // Phase 2: the new root is active; every leaf was re-issued under it before roots-changed.
    await waitFor(() => rootsEvents(events).length >= 2, { timeoutMs: 5_000, what: 'phase 2' });
    expect(Date.now() - startedAt).toBeGreaterThanOrEqual(140);
    const phase2 = rootsEvents(events)[1]!;
    expect(shape(phase2)).toEqual([
      [newId, true],
      [oldId, false],
    ]);
    const renewed = events.slice(1, 4).flatMap((e) => (e.kind === 'leaf-renewed' ? [e.leaf] : []));
    expect(renewed.map((l) => `${l.spiffeId} ${l.holder ?? '-'}`).sort()).toEqual(
      [`${api} api-1-sidecar-proxy`, `${api} api-2-sidecar-proxy`, `${web} -`].sort(),
    );
    for (const leaf of renewed) {
      expect(leaf.rootId).toBe(newId);
      expect(signedBy(leaf.certPem, phase2, newId)).toBe(true);
    }
    const keys = [oldApi1, oldApi2, ...renewed].map((l) => l.keyPem);
    expect(new Set(keys).size, 'a new key pair for every leaf, none shared').toBe(keys.length);
    expect((await ca.leaf({ spiffeId: web })).rootId).toBe(newId);
    expect((await ca.leaf({ spiffeId: api, holder: 'api-1-sidecar-proxy' })).rootId).toBe(newId);
    expect(signedBy(oldApi1.certPem, phase2, oldId)).toBe(true);

    // Phase 3: the old root is retired and its key file removed.
    await waitFor(() => rootsEvents(events).length >= 3, { timeoutMs: 5_000, what: 'phase 3' });
    expect(shape(rootsEvents(events)[2]!)).toEqual([[newId, true]]);
    expect(shape(ca.roots())).toEqual([[newId, true]]);
    expect(events.map((e) => e.kind)).toEqual([
      'roots-changed',
      'leaf-renewed',
      'leaf-renewed',
      'leaf-renewed',
      'roots-changed',
      'roots-changed',
    ]);
    expect(fs.existsSync(keyFile(oldId))).toBe(false);
    expect(await store.get('ca/rotation')).toBeUndefined();
  });

  it('gives proxies a whole phase with their new leaves when re-issuing took longer than a phase', async () => {
    let t = Date.now();
    const phaseMs = 300;
    const ca = await open({ rotation: { phaseMs }, clock: () => t });
    await ca.leaf({ spiffeId: serviceSpiffeId(ca.trustDomain, 'dc1', { name: 'web' }) });
    const events = record(ca);
    // Re-issuing thousands of leaves can take longer than a phase: this clock jumps 10 phases per
    // leaf.
    ca.subscribe((e) => {
      if (e.kind === 'leaf-renewed') t += 10 * phaseMs;
    });
    const seen: number[] = [];
    ca.subscribe((e) => {
      if (e.kind === 'roots-changed') seen.push(performance.now());
    });
    await ca.rotate();
    await waitFor(() => rootsEvents(events).length >= 3, {
      timeoutMs: 10_000,
      what: 'the old root retired',
    });
    // Timed from activation, the retire step was already due when the leaves went out (0 ms later).
    expect(seen[2]! - seen[1]!).toBeGreaterThanOrEqual(phaseMs - 20);
    expect(await store.get('ca/rotation')).toBeUndefined();
  });

  it('refuses a rotation while one is in progress, and allows the next one after', async () => {
    const ca = await open({ rotation: { phaseMs: 50 } });
    const events = record(ca);
    const results = await Promise.allSettled([ca.rotate(), ca.rotate()]);
    expect(results.map((r) => r.status).sort()).toEqual(['fulfilled', 'rejected']);
    expect(results.find((r) => r.status === 'rejected')).toMatchObject({
      reason: { code: 'failed_precondition' },
    });
    await expect(ca.rotate()).rejects.toMatchObject({
      code: 'failed_precondition',
      message: expect.stringMatching(/in progress/),
    });
    await waitFor(() => rootsEvents(events).length === 3, {
      timeoutMs: 5_000,
      what: 'the first rotation to finish',
    });
    expect(fs.readdirSync(path.join(dir, 'ca'))).toHaveLength(1);
    await ca.rotate();
    expect(ca.roots().roots).toHaveLength(2);
  });

  it('resumes a rotation interrupted in phase 1 after a reopen', async () => {
    const first = await open({ rotation: { phaseMs: 200 } });
    const oldId = first.roots().activeRootId;
    await first.rotate();
    const newId = first.roots().roots[1]!.id;
    await first.close();

    const ca = await open({ rotation: { phaseMs: 200 } });
    expect(shape(ca.roots())).toEqual([
      [oldId, true],
      [newId, false],
    ]);
    await expect(ca.rotate()).rejects.toMatchObject({ code: 'failed_precondition' });
    const events = record(ca);
    await waitFor(() => rootsEvents(events).length === 2, {
      timeoutMs: 5_000,
      what: 'the resumed rotation to finish',
    });
    expect(rootsEvents(events).map(shape)).toEqual([
      [
        [newId, true],
        [oldId, false],
      ],
      [[newId, true]],
    ]);
  });

  it('resumes a rotation interrupted in phase 2, re-issuing leaves under the new root', async () => {
    const first = await open();
    const events1 = record(first);
    await first.rotate();
    await waitFor(() => rootsEvents(events1).length === 2, { timeoutMs: 5_000, what: 'phase 2' });
    const newId = first.roots().activeRootId;
    await first.close();

    const ca = await open();
    expect(ca.roots().roots).toHaveLength(2);
    const leaf = await ca.leaf({
      spiffeId: serviceSpiffeId(ca.trustDomain, 'dc1', { name: 'web' }),
    });
    expect(leaf.rootId).toBe(newId);
    await waitFor(() => ca.roots().roots.length === 1, {
      timeoutMs: 5_000,
      what: 'the old root to retire',
    });
    expect(ca.roots().activeRootId).toBe(newId);
  });

  it('takes the phase start from the store: a phase that ended while the server was down advances at once', async () => {
    const first = await open({ rotation: { phaseMs: 60_000 } });
    await first.rotate();
    await first.close();
    const later = () => Date.now() + 120_000;
    const ca = await open({ rotation: { phaseMs: 60_000 }, clock: later });
    const events = record(ca);
    await waitFor(() => rootsEvents(events).length === 1, {
      timeoutMs: 3_000,
      what: 'phase 2 right after the reopen',
    });
    expect(ca.roots().roots.map((r) => r.active)).toEqual([true, false]);
    // The next phase is due a full phase later, so nothing else happens soon.
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(rootsEvents(events)).toHaveLength(1);
  });
});

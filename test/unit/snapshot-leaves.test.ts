/**
 * The snapshot manager and the per-instance leaves (issue 18): each proxy asks for its own leaf,
 * a proxy that goes releases it, and a leaf issued for a proxy deregistered while it was being
 * issued is never published, not even when the same ID is registered again meanwhile. A proxy
 * already built is rebuilt before the first builds waiting for their leaves (issue 14).
 */
import { afterEach, describe, expect, it } from 'vitest';
import type {
  CaEvent,
  CaRoots,
  CertificateAuthority,
  Leaf,
  LeafIdentity,
} from '../../src/ca/index.js';
import { silentLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics.js';
import { LeafUsers } from '../../src/snapshot/leaf-users.js';
import { SnapshotManager } from '../../src/snapshot/manager.js';
import type { ConfigSnapshot } from '../../src/snapshot/types.js';
import { FakeCatalog } from '../helpers/fake-catalog.js';
import { waitFor } from '../helpers/wait.js';

const td = 'example.consul';
const roots: CaRoots = {
  trustDomain: td,
  activeRootId: 'root',
  roots: [
    {
      id: 'root',
      certPem: 'root pem',
      active: true,
      notBefore: new Date(0),
      notAfter: new Date(3600_000),
    },
  ],
};

/** A CA whose leaves are issued only when the test says so, each with a new key. */
class HeldCa implements CertificateAuthority {
  readonly clusterId = 'cluster';
  readonly trustDomain = td;
  readonly asked: { identity: LeafIdentity; issue: () => void }[] = [];
  readonly released: string[] = [];
  private keys = 0;

  roots(): CaRoots {
    return roots;
  }
  leaf(identity: LeafIdentity): Promise<Leaf> {
    return new Promise((resolve) => {
      const key = `key ${++this.keys}`;
      this.asked.push({
        identity,
        issue: () =>
          resolve({
            spiffeId: identity.spiffeId,
            holder: identity.holder,
            certPem: `cert of ${key}`,
            keyPem: key,
            serial: key,
            rootId: 'root',
            notBefore: new Date(0),
            notAfter: new Date(3600_000),
          }),
      });
    });
  }
  release(holder: string): void {
    this.released.push(holder);
  }
  rotate(): Promise<void> {
    return Promise.resolve();
  }
  subscribe(_listener: (event: CaEvent) => void): () => void {
    return () => undefined;
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

const managers: SnapshotManager[] = [];
afterEach(async () => {
  await Promise.all(managers.splice(0).map((m) => m.stop()));
});

/** A held CA that, as the real one, answers at once for a holder whose leaf it issued. */
class CachingHeldCa extends HeldCa {
  private readonly issued = new Map<string | undefined, Leaf>();

  override leaf(identity: LeafIdentity): Promise<Leaf> {
    const held = this.issued.get(identity.holder);
    if (held) return Promise.resolve(held);
    return super.leaf(identity).then((leaf) => {
      this.issued.set(identity.holder, leaf);
      return leaf;
    });
  }
}

function setUp(ca: HeldCa = new HeldCa(), coalesceMs = 1) {
  const catalog = new FakeCatalog();
  const published: { proxyId: string; keyPem: string | undefined }[] = [];
  const manager = new SnapshotManager({
    catalog,
    ca,
    sink: {
      publish: (proxyId: string, s: ConfigSnapshot) =>
        published.push({ proxyId, keyPem: s.kind === 'connect-proxy' ? s.leaf.keyPem : undefined }),
      remove: () => undefined,
    },
    leafUsers: new LeafUsers(),
    datacenter: 'dc1',
    logger: silentLogger(),
    metrics: new Metrics(),
    coalesceMs,
  });
  managers.push(manager);
  const register = (id: string, port = 21000) =>
    catalog.upsert({
      id: `${id}-sidecar-proxy`,
      name: 'api-sidecar-proxy',
      kind: 'connect-proxy',
      port,
      proxy: {
        destinationServiceName: 'api',
        destinationServiceId: id,
        localServiceAddress: '127.0.0.1',
        localServicePort: 8080,
        meshGateway: { mode: '' },
        upstreams: [],
      },
    });
  return { catalog, ca, published, manager, register };
}

const asked = (ca: HeldCa, n: number) =>
  waitFor(() => ca.asked.length >= n && ca.asked[n - 1], {
    timeoutMs: 5_000,
    what: `leaf request ${n}`,
  });

describe('SnapshotManager: a leaf per proxy instance', () => {
  it("asks the CA for each instance's own leaf, under the service's SPIFFE ID", async () => {
    const { ca, published, manager, register } = setUp();
    register('api-1');
    register('api-2');
    manager.start();
    (await asked(ca, 1)).issue();
    (await asked(ca, 2)).issue();
    await manager.settled();
    expect(ca.asked.map((a) => a.identity)).toEqual([
      { spiffeId: `spiffe://${td}/ns/default/dc/dc1/svc/api`, holder: 'api-1-sidecar-proxy' },
      { spiffeId: `spiffe://${td}/ns/default/dc/dc1/svc/api`, holder: 'api-2-sidecar-proxy' },
    ]);
    expect(published).toEqual([
      { proxyId: 'api-1-sidecar-proxy', keyPem: 'key 1' },
      { proxyId: 'api-2-sidecar-proxy', keyPem: 'key 2' },
    ]);
  });

  it('releases the leaf of a proxy that goes, and never publishes one issued while it went', async () => {
    const { catalog, ca, published, manager, register } = setUp();
    register('api-1');
    manager.start();
    const first = await asked(ca, 1);
    // Deregistered and registered again while its first leaf is being issued.
    catalog.remove('api-1-sidecar-proxy');
    expect(ca.released).toEqual(['api-1-sidecar-proxy']);
    register('api-1');
    first.issue();
    (await asked(ca, 2)).issue();
    await manager.settled();
    expect(published).toEqual([{ proxyId: 'api-1-sidecar-proxy', keyPem: 'key 2' }]);
  });

  it('rebuilds a proxy already built before the first builds waiting for their leaves', async () => {
    const { ca, published, manager, register } = setUp(new CachingHeldCa(), 0);
    register('api-1');
    manager.start();
    (await asked(ca, 1)).issue();
    await manager.settled();
    // Eight new sidecars: four first builds wait for their leaves, four more queue behind them.
    for (let i = 2; i <= 9; i++) register(`api-${i}`);
    await asked(ca, 5);
    const before = published.length;
    register('api-1', 21001); // the running proxy changes
    ca.asked[1]!.issue(); // one leaf is issued: its build ends and frees a rebuild slot
    const since = () => published.slice(before).map((p) => p.proxyId);
    await waitFor(() => since().includes('api-1-sidecar-proxy'), {
      timeoutMs: 5_000,
      what: 'api-1 rebuilt',
    });
    // Not after api-6 to api-9, whose first builds were queued before the change.
    expect(since()).toEqual(['api-2-sidecar-proxy', 'api-1-sidecar-proxy']);
    for (let n = 3; n <= 9; n++) (await asked(ca, n)).issue();
    await manager.settled();
    expect(new Set(published.map((p) => p.proxyId)).size).toBe(9);
  });
});

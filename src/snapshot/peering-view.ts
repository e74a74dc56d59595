import type { ImportedServices } from '../peering/imported.js';
import type { Peerings } from '../peering/peerings.js';
import { type Peering, isDialer } from '../peering/types.js';
import type { PeerBundle, PeeringView } from './context.js';

/**
 * A change that may alter peer-derived config: a peer's imports (of one service, when `service` is
 * given), or its bundle / existence.
 */
export type PeeringViewEvent =
  | {
      readonly kind: 'peer-imports-changed';
      readonly peer: string;
      readonly service?: string | undefined;
    }
  | { readonly kind: 'peer-bundle-changed'; readonly peer: string };

export interface LivePeeringView extends PeeringView {
  subscribe(listener: (event: PeeringViewEvent) => void): () => void;
}

const live = (p: Peering | undefined): p is Peering =>
  p !== undefined && p.state !== 'DELETING' && p.state !== 'TERMINATED';

/** What a peering contributes to proxies: it is live, and its trust domain and roots. */
const bundleKey = (p: Peering | undefined) =>
  live(p)
    ? JSON.stringify([p.peerTrustDomain, p.peerCaPems, p.peerServerName, p.peerServerAddresses])
    : '';

/**
 * The snapshot layer's window on the peering records and the imported services. Stream status
 * updates (heartbeats, counts) change records all the time; only a change of what proxies see
 * (liveness, trust domain, roots) is reported.
 */
export function peeringView(peerings: Peerings, imported: ImportedServices): LivePeeringView {
  return {
    peerNames: () =>
      peerings
        .list()
        .filter(live)
        .map((p) => p.name)
        .sort(),
    bundle(peer: string): PeerBundle | undefined {
      const p = peerings.read(peer);
      if (!live(p) || !p.peerTrustDomain || p.peerCaPems.length === 0) return undefined;
      return { peer, trustDomain: p.peerTrustDomain, pems: p.peerCaPems };
    },
    importedServiceNames: (peer) => imported.serviceNames(peer),
    importedInstances: (peer, service, namespace) => imported.instancesOf(peer, service, namespace),
    peerServers: () =>
      peerings
        .list()
        .filter(
          (p) =>
            live(p) && isDialer(p) && p.peerServerName !== '' && p.peerServerAddresses.length > 0,
        )
        .map((p) => ({
          peer: p.name,
          serverName: p.peerServerName,
          addresses: [...p.peerServerAddresses],
        }))
        .sort((x, y) => (x.peer < y.peer ? -1 : 1)),
    subscribe(listener) {
      const offImported = imported.subscribe((e) =>
        listener({ kind: 'peer-imports-changed', peer: e.peer, service: e.service }),
      );
      const offPeerings = peerings.subscribe((e) => {
        const before = e.kind === 'peering-upserted' ? e.previous : e.peering;
        const after = e.kind === 'peering-upserted' ? e.peering : undefined;
        if (bundleKey(before) !== bundleKey(after))
          listener({ kind: 'peer-bundle-changed', peer: e.peering.name });
      });
      return () => {
        offImported();
        offPeerings();
      };
    },
  };
}

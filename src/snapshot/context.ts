import type { CatalogReader } from '../catalog/types.js';
import type { CaRoots } from '../ca/types.js';

/** What every builder reads: the catalog, this cluster's names, and the CA roots. */
export interface BuildContext {
  readonly catalog: CatalogReader;
  readonly datacenter: string;
  readonly trustDomain: string;
  readonly roots: CaRoots;
  /** A peer's trust domain by its local name (undefined while unknown). */
  readonly peerTrustDomain: (peer: string) => string | undefined;
}

/** A built snapshot and the service names whose changes must rebuild it. */
export interface Built<S> {
  readonly snapshot: S;
  /** Service names this proxy depends on; `*` means every change. */
  readonly deps: ReadonlySet<string>;
}

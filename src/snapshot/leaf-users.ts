/**
 * Which leaf identities proxies are built with. The snapshot manager records each proxy's; the CA
 * asks (its `leafInUse`) before renewing a leaf, and lets the leaves nobody uses lapse: a proxy's
 * own leaf (held per proxy instance) once the proxy is gone or built with another identity. It is
 * made
 * before both, which breaks their cycle: the CA needs to know who uses a leaf, and the snapshot
 * manager needs the CA to issue leaves.
 */
export class LeafUsers {
  /** proxy ID → the SPIFFE ID of its leaf, and how many proxies use each SPIFFE ID. */
  private readonly identityOf = new Map<string, string>();
  private readonly users = new Map<string, number>();

  /** Records the identity a proxy is built with; `undefined` when the proxy is gone. */
  set(proxyId: string, spiffeId: string | undefined): void {
    const before = this.identityOf.get(proxyId);
    if (before === spiffeId) return;
    if (before !== undefined) {
      const n = (this.users.get(before) ?? 1) - 1;
      if (n > 0) this.users.set(before, n);
      else this.users.delete(before);
    }
    if (spiffeId === undefined) this.identityOf.delete(proxyId);
    else {
      this.identityOf.set(proxyId, spiffeId);
      this.users.set(spiffeId, (this.users.get(spiffeId) ?? 0) + 1);
    }
  }

  /** Whether the proxy's config is built with a leaf of this SPIFFE ID. */
  holds(proxyId: string, spiffeId: string): boolean {
    return this.identityOf.get(proxyId) === spiffeId;
  }

  /** Whether some proxy's config is built with a leaf of this SPIFFE ID. */
  uses(spiffeId: string): boolean {
    return (this.users.get(spiffeId) ?? 0) > 0;
  }
}

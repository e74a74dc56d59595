/**
 * Which proxies depend on what (issue 14): each proxy's dependency keys from its last build (a
 * service name, `peer:NAME/SERVICE`, a router or splitter entry, or `*` for everything), indexed
 * both ways, so a change finds the proxies it touches in time proportional to them, not to every
 * proxy registered.
 */
export class Dependents {
  private readonly byProxy = new Map<string, ReadonlySet<string>>();
  private readonly byKey = new Map<string, Set<string>>();

  /** Replaces a proxy's dependencies with those of its latest build. */
  set(proxyId: string, deps: ReadonlySet<string>): void {
    // Builders hand back the same set when a change kept every dependency (issue 14).
    if (this.byProxy.get(proxyId) === deps) return;
    this.delete(proxyId);
    this.byProxy.set(proxyId, deps);
    for (const key of deps) {
      let ids = this.byKey.get(key);
      if (!ids) this.byKey.set(key, (ids = new Set()));
      ids.add(proxyId);
    }
  }

  delete(proxyId: string): void {
    for (const key of this.byProxy.get(proxyId) ?? []) {
      const ids = this.byKey.get(key);
      ids?.delete(proxyId);
      if (ids?.size === 0) this.byKey.delete(key);
    }
    this.byProxy.delete(proxyId);
  }

  /** The proxies that depend on any of `keys`, or on everything. */
  of(keys: Iterable<string>): Set<string> {
    const out = new Set(this.byKey.get('*'));
    for (const key of keys) for (const id of this.byKey.get(key) ?? []) out.add(id);
    return out;
  }
}

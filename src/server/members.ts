import { hostname } from 'node:os';
import { z } from 'zod';
import type { ClusterPeer, ClusterView } from '../api/cluster-fanout.js';
import type { ServerJson, ServersSource } from '../api/operator-routes.js';
import {
  type HostPort,
  type ServerConfig,
  formatHostPort,
  isthmusVersion,
} from '../config/index.js';
import type { WanServerRecord } from '../federation/index.js';
import type { Logger } from '../log.js';
import type { Store } from '../store/index.js';
import type { Leadership, Member, Membership } from '../store/store.js';

/** What each server announces about itself in the store (`members/<name>`). */
const announced = z.object({
  httpAddr: z.string(),
  xdsAddr: z.string(),
  peeringAddr: z.string(),
  startedAt: z.string(),
  version: z.string(),
  /** Its WAN federation port (what its own gateways send `<name>.server.<dc>` to). */
  federationAddr: z.string().optional(),
});
type Announced = z.infer<typeof announced>;

/** Where this server listens, known once every port is bound. */
export interface BoundPorts {
  readonly http: number;
  readonly xds: number;
  /** The address the leader publishes (the campaign's value): how `Leader` is told. */
  readonly peeringAddr: string;
  /** The federation port's `host:port` (federated servers only). */
  readonly federationAddr?: string;
}

/**
 * The servers of this cluster (docs/architecture.md §1 "Membership"): made before the HTTP API
 * (whose routes read it), joined once the HTTP port is bound. Before that it knows no other server.
 */
export class ClusterMembers implements ClusterView, ServersSource {
  private membership: Membership | undefined;
  private readonly listeners = new Set<() => void>();
  private name = '';
  private readonly startedAt = new Date().toISOString();

  constructor(
    private readonly deps: {
      readonly store: Store;
      readonly config: ServerConfig;
      readonly leadership: { readonly current: Leadership | undefined };
      readonly logger: Logger;
    },
  ) {}

  get self(): string {
    return this.name;
  }

  /** Announces this server; its name is `--node-name`, else the host name and the HTTP port. */
  join(ports: BoundPorts): void {
    const { config } = this.deps;
    this.name = config.nodeName || `${hostname()}-${ports.http}`;
    const value: Record<string, string> & Announced = {
      httpAddr: dialable(config.httpAddr, ports.http),
      xdsAddr: dialable(config.xdsAddr, ports.xds),
      peeringAddr: ports.peeringAddr,
      startedAt: this.startedAt,
      version: isthmusVersion(),
      ...(ports.federationAddr === undefined ? {} : { federationAddr: ports.federationAddr }),
    };
    this.membership = this.deps.store.announce(this.name, value);
    const changed = () => {
      for (const fn of [...this.listeners]) fn();
    };
    this.membership.subscribe(changed);
    this.deps.leadership.current?.subscribe(changed);
    // This server itself has joined (a store without shared membership never calls back).
    changed();
  }

  /**
   * Calls `fn` when a server joins or leaves, or the leader changes (listeners may subscribe
   * before `join`).
   */
  subscribe(fn: () => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  others(): readonly ClusterPeer[] {
    return this.parsed()
      .filter((m) => m.name !== this.name)
      .map((m) => ({ name: m.name, httpAddr: m.info.httpAddr }));
  }

  /** Every live server's peering address, the leader's first (what a peering token names). */
  peeringAddresses(): readonly string[] {
    const leader = this.deps.leadership.current?.leader();
    const all = this.parsed()
      .map((m) => m.info.peeringAddr)
      .filter((a) => a !== '' && !/^(0\.0\.0\.0|\[::\]):/.test(a));
    return [...new Set(all)].sort((a, b) => Number(b === leader) - Number(a === leader));
  }

  servers(): readonly ServerJson[] {
    const leader = this.deps.leadership.current?.leader();
    return this.parsed().map(({ name, info }) => ({
      Name: name,
      HTTPAddr: info.httpAddr,
      XdsAddr: info.xdsAddr,
      PeeringAddr: info.peeringAddr,
      StartedAt: info.startedAt,
      Version: info.version,
      Leader: leader !== undefined && info.peeringAddr === leader,
      Self: name === this.name,
    }));
  }

  /** The servers that announced a federation port (`isthmus members --wan`), sorted by name. */
  wanServers(): readonly WanServerRecord[] {
    const leader = this.deps.leadership.current?.leader();
    return this.parsed()
      .flatMap(({ name, info }) =>
        info.federationAddr === undefined
          ? []
          : [
              {
                name,
                address: info.federationAddr,
                leader: leader !== undefined && info.peeringAddr === leader,
              },
            ],
      )
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /** The members whose announcement parses; another version's extra fields are ignored. */
  private parsed(): { readonly name: string; readonly info: Announced }[] {
    return (this.membership?.members() ?? []).flatMap((m: Member) => {
      const info = announced.safeParse(m.value);
      if (info.success) return [{ name: m.name, info: info.data }];
      this.deps.logger.debug({ member: m.name }, 'member announcement not understood; skipped');
      return [];
    });
  }
}

/** `host:port` another server can dial: a wildcard listen address becomes this host's name. */
function dialable(addr: HostPort, port: number): string {
  const wildcard = addr.host === '0.0.0.0' || addr.host === '::';
  return formatHostPort(wildcard ? { host: hostname(), port } : addr, port);
}

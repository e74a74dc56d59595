import type { FederationStateRecord, WanServerRecord } from './states.js';

/**
 * A server's state in `isthmus members --wan` (Consul's `consul members --wan` names): `alive` while
 * its datacenter's link is up, `failed` while it is down or not known to be up. isthmus cannot
 * tell a server that shut down from one cut off behind its gateways, so it never says `left`.
 */
export type WanStatus = 'alive' | 'failed';

/** Whether a datacenter's link is up, and since when (ms since the epoch). */
export interface DatacenterLink {
  readonly up: boolean;
  readonly since: number;
}

/** One server of one datacenter as `isthmus members --wan` lists it. */
export interface WanMember {
  readonly name: string;
  /** Its federation address, as its own gateways dial it (never dialled from elsewhere). */
  readonly address: string;
  readonly datacenter: string;
  readonly status: WanStatus;
  /** Since when the status holds (ms since the epoch). */
  readonly since: number;
  /** It holds its datacenter's leader key. */
  readonly leader: boolean;
  /** Its datacenter is the primary. */
  readonly primary: boolean;
}

/**
 * Every server of every datacenter this server knows (docs/architecture.md §6c "members --wan"):
 * its own datacenter's from its own membership (alive), every other's from that datacenter's
 * federation state, alive or failed as `link` says. Sorted by datacenter, then name.
 */
export function wanMembers(input: {
  readonly datacenter: string;
  readonly primary: string;
  /** When this server started: the "since" of its own datacenter's servers. */
  readonly startedAt: number;
  readonly local: readonly WanServerRecord[];
  readonly states: readonly FederationStateRecord[];
  /** The link of another datacenter, as this server knows it. */
  link(dc: string): DatacenterLink;
}): WanMember[] {
  const { datacenter, primary } = input;
  const own = { up: true, since: input.startedAt };
  const byDc = new Map<string, readonly WanServerRecord[]>([[datacenter, input.local]]);
  for (const s of input.states)
    if (s.datacenter !== datacenter) byDc.set(s.datacenter, s.servers ?? []);
  return [...byDc]
    .sort(([a], [b]) => compare(a, b))
    .flatMap(([dc, servers]) => {
      const link = dc === datacenter ? own : input.link(dc);
      return [...servers]
        .sort((a, b) => compare(a.name, b.name))
        .map((s) => ({
          name: s.name,
          address: s.address,
          datacenter: dc,
          status: link.up ? ('alive' as const) : ('failed' as const),
          since: link.since,
          leader: s.leader,
          primary: dc === primary,
        }));
    });
}

/**
 * How a secondary knows another datacenter's link: the primary's is our own link to it; any
 * other's is what the primary last replicated, while our link holds. With our link down we know
 * nothing current of anyone else: every other datacenter is `failed` since our link went down.
 */
export function linkSeenFromSecondary(
  dc: string,
  primary: string,
  ours: DatacenterLink,
  replicated: ReadonlyMap<string, DatacenterLink>,
): DatacenterLink {
  if (!ours.up || dc === primary) return ours;
  return replicated.get(dc) ?? { up: false, since: ours.since };
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * `isthmus members --wan` (docs/architecture.md §6c): which servers of which datacenter are listed
 * alive or failed, as the primary and as a secondary see the links.
 */
import { describe, expect, it } from 'vitest';
import {
  type DatacenterLink,
  type FederationStateRecord,
  linkSeenFromSecondary,
  wanMembers,
} from '../../src/federation/index.js';

const state = (
  datacenter: string,
  servers: { name: string; leader?: boolean }[] | undefined,
): FederationStateRecord => ({
  datacenter,
  meshGateways: [{ address: '198.51.100.1', port: 8443 }],
  updatedAt: 1,
  ...(servers
    ? {
        servers: servers.map((s) => ({
          name: s.name,
          address: `10.0.${datacenter.slice(2)}.1:8504`,
          leader: s.leader ?? false,
        })),
      }
    : {}),
});

const rows = (members: ReturnType<typeof wanMembers>) =>
  members.map((m) => `${m.datacenter} ${m.name} ${m.status} ${m.since}`);

describe('wanMembers', () => {
  const states = [
    state('dc1', [{ name: 'stale-own-copy' }]),
    state('dc3', [{ name: 'c-2' }, { name: 'c-1', leader: true }]),
    state('dc2', [{ name: 'b-1', leader: true }]),
  ];

  it("lists this datacenter's servers from its own membership (alive), every other's from its state, sorted", () => {
    const links: Record<string, DatacenterLink> = {
      dc2: { up: true, since: 20 },
      dc3: { up: false, since: 30 },
    };
    const members = wanMembers({
      datacenter: 'dc1',
      primary: 'dc1',
      startedAt: 10,
      local: [{ name: 'a-1', address: '10.0.1.1:8504', leader: true }],
      states,
      link: (dc) => links[dc]!,
    });
    expect(rows(members)).toEqual([
      'dc1 a-1 alive 10',
      'dc2 b-1 alive 20',
      'dc3 c-1 failed 30',
      'dc3 c-2 failed 30',
    ]);
    expect(members[0]).toMatchObject({ address: '10.0.1.1:8504', leader: true, primary: true });
    expect(members[2]).toMatchObject({ address: '10.0.3.1:8504', leader: true, primary: false });
  });

  it('a datacenter whose state names no servers (an older server) lists none', () => {
    const members = wanMembers({
      datacenter: 'dc1',
      primary: 'dc1',
      startedAt: 10,
      local: [],
      states: [state('dc2', undefined)],
      link: () => ({ up: true, since: 1 }),
    });
    expect(members).toEqual([]);
  });
});

describe('linkSeenFromSecondary', () => {
  const replicated = new Map<string, DatacenterLink>([
    ['dc2', { up: true, since: 5 }],
    ['dc4', { up: false, since: 7 }],
  ]);

  it('with our link up: the primary is alive since then, others as the primary replicated them', () => {
    const ours = { up: true, since: 3 };
    expect(linkSeenFromSecondary('dc1', 'dc1', ours, replicated)).toEqual(ours);
    expect(linkSeenFromSecondary('dc2', 'dc1', ours, replicated)).toEqual({ up: true, since: 5 });
    expect(linkSeenFromSecondary('dc4', 'dc1', ours, replicated)).toEqual({ up: false, since: 7 });
    // A datacenter the primary did not mention is not known to be up.
    expect(linkSeenFromSecondary('dc9', 'dc1', ours, replicated)).toEqual({ up: false, since: 3 });
  });

  it('with our link down: every other datacenter is failed since our link went down', () => {
    const ours = { up: false, since: 9 };
    for (const dc of ['dc1', 'dc2', 'dc4'])
      expect(linkSeenFromSecondary(dc, 'dc1', ours, replicated)).toEqual(ours);
  });
});

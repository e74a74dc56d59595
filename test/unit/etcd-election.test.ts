/**
 * The leader election's lease keep-alives (src/store/etcd-election.ts, docs/architecture.md
 * "Store") against a scripted etcd client, on a fake clock: how long a leader keeps leading when
 * etcd is slow to answer, and when it must stop. The real etcd cases are in
 * test/integration/etcd-store.test.ts and test/faults/etcd-outage.test.ts.
 */
import { EventEmitter } from 'node:events';
import { type Etcd3, GRPCUnavailableError } from 'etcd3';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { silentLogger } from '../../src/log.js';
import { EtcdElection } from '../../src/store/etcd-election.js';

const ttlSeconds = 5;

/**
 * What etcd does with one keep-alive: answers it at once or a second later, holds it until
 * `releaseHeld()`, or refuses it before it was sent.
 */
type KeepAliveFate = 'answer' | 'answer in 1 s' | 'hold' | 'no connection';

/**
 * An etcd with one member's worth of behaviour: the leader key is free, leases are granted at
 * once, and each keep-alive meets the fate `fate()` gives it. Held keep-alives wait until
 * `releaseHeld()`.
 */
class ScriptedEtcd {
  fate: () => KeepAliveFate = () => 'answer';
  /** When each keep-alive that etcd renewed the lease for was sent (fake clock). */
  readonly renewedSentAt: number[] = [];
  private held: (() => void)[] = [];

  releaseHeld(): void {
    for (const answer of this.held.splice(0)) answer();
  }

  client(): Etcd3 {
    const lease = () =>
      Object.assign(new EventEmitter(), {
        grant: async () => 'lease-1',
        revoke: async () => undefined,
        keepaliveOnce: () => {
          const sentAt = Date.now();
          const fate = this.fate();
          if (fate === 'no connection')
            return Promise.reject(
              new GRPCUnavailableError('14 UNAVAILABLE: No connection established'),
            );
          return new Promise<void>((resolve) => {
            const answer = () => {
              this.renewedSentAt.push(sentAt);
              resolve();
            };
            if (fate === 'hold') this.held.push(answer);
            else if (fate === 'answer in 1 s') setTimeout(answer, 1_000);
            else answer();
          });
        },
      });
    const watcher = Object.assign(new EventEmitter(), { cancel: async () => undefined });
    return {
      lease,
      watch: () => ({ key: () => ({ create: async () => watcher }) }),
      kv: { txn: async () => ({ succeeded: true, responses: [] }) },
    } as unknown as Etcd3;
  }
}

describe('the leader election on a fake clock', () => {
  let etcd: ScriptedEtcd;
  let election: EtcdElection;

  beforeEach(async () => {
    vi.useFakeTimers();
    etcd = new ScriptedEtcd();
    election = new EtcdElection(
      etcd.client(),
      Buffer.from('p.leader'),
      'me',
      ttlSeconds,
      silentLogger(),
    );
    election.start();
    await vi.advanceTimersByTimeAsync(10);
    expect(election.isLeader()).toBe(true);
    await vi.advanceTimersByTimeAsync(10_000);
  });

  afterEach(async () => {
    await election.close();
    vi.useRealTimers();
  });

  /** Advances the clock `ms` in 50 ms steps; true if the election led at every step. */
  async function ledThroughout(ms: number): Promise<boolean> {
    let led = true;
    for (let t = 0; t < ms; t += 50) {
      await vi.advanceTimersByTimeAsync(50);
      led &&= election.isLeader();
    }
    return led;
  }

  it("keeps leading while etcd's own Raft election holds every keep-alive for 3.5 s", async () => {
    etcd.fate = () => 'hold';
    expect(await ledThroughout(3_500)).toBe(true);
    etcd.fate = () => 'answer';
    etcd.releaseHeld();
    expect(await ledThroughout(10_000)).toBe(true);
  });

  it('steps down before etcd can expire the lease: 9/10 of the TTL after the last answered keep-alive was sent', async () => {
    // Each keep-alive is answered a second after it was sent, then etcd is gone for good.
    etcd.fate = () => 'answer in 1 s';
    await vi.advanceTimersByTimeAsync(5_000);
    etcd.fate = () => 'hold';
    await vi.advanceTimersByTimeAsync(1_000);
    const lastRenewal = Math.max(...etcd.renewedSentAt);
    let steppedDownAt: number | undefined;
    election.subscribe(() => {
      if (!election.isLeader()) steppedDownAt ??= Date.now();
    });
    await vi.advanceTimersByTimeAsync(10_000);
    expect(steppedDownAt).toBeDefined();
    // etcd expires the lease the whole TTL after it renewed it, which was no earlier than the send.
    expect(steppedDownAt! - lastRenewal).toBeLessThan(ttlSeconds * 1000);
    expect(steppedDownAt! - lastRenewal).toBeGreaterThanOrEqual(ttlSeconds * 900);
  });

  it('one dead etcd member: a keep-alive that found no connection goes to another member at once', async () => {
    // Every keep-alive's first try picks the dead member; a try again (at the same instant)
    // reaches a live one.
    let lastTryAt = -1;
    etcd.fate = () => {
      const first = Date.now() !== lastTryAt;
      lastTryAt = Date.now();
      return first ? 'no connection' : 'answer';
    };
    expect(await ledThroughout(30_000)).toBe(true);
  });
});

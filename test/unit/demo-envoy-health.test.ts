/**
 * The demo's "this Envoy took everything" check, against Envoy's admin answers (a fake admin, so
 * a rejection can be shown without a broken config): LIVE with no `*.update_rejected` and nothing
 * warming passes; a rejected update, an exit or a deadline fails at once, naming the Envoy and
 * carrying the log lines that say why.
 */
import { describe, expect, it } from 'vitest';
import { waitEnvoyHealthy } from '../../src/demo/envoy-health.js';
import { type DemoEnvoy, EnvoyFailure } from '../../src/demo/envoy-process.js';

interface FakeState {
  ready: string;
  stats: Record<string, number>;
  exited?: string;
}

function fakeEnvoy(states: FakeState[], log: string[] = []): DemoEnvoy & { polls: number } {
  const fake = {
    name: 'gw-a',
    pid: 1,
    adminUrl: 'http://127.0.0.1:1',
    logFile: '/dev/null',
    polls: 0,
    state: () => states[Math.min(fake.polls, states.length - 1)]!,
    exited: () => fake.state().exited,
    logTail: (n = 20) => log.slice(-n),
    admin: async (path: string) => {
      if (path !== '/ready') throw new Error(`unexpected ${path}`);
      return `${fake.state().ready}\n`;
    },
    stats: async (filter?: string) => {
      const re = new RegExp(filter ?? '');
      const out = new Map(Object.entries(fake.state().stats).filter(([k]) => re.test(k)));
      fake.polls++;
      return out;
    },
    stop: async () => undefined,
  };
  return fake;
}

const quiet = {
  'cluster_manager.cds.update_rejected': 0,
  'listener_manager.lds.update_rejected': 0,
  'cluster_manager.warming_clusters': 0,
  'listener_manager.total_listeners_warming': 0,
  'cluster.x.upstream_cx_total': 3,
};

describe('waitEnvoyHealthy', () => {
  it('waits through PRE_INITIALIZING and warming until LIVE with nothing warming', async () => {
    const envoy = fakeEnvoy([
      { ready: 'PRE_INITIALIZING', stats: quiet },
      { ready: 'LIVE', stats: { ...quiet, 'cluster_manager.warming_clusters': 1 } },
      { ready: 'LIVE', stats: quiet },
    ]);
    await waitEnvoyHealthy(envoy, 5_000);
    expect(envoy.polls).toBe(3);
  });

  it('a rejected update (any xDS type, EDS and SDS included) fails at once with the rejection lines of the log', async () => {
    for (const stat of [
      'listener_manager.lds.update_rejected',
      'cluster.api.default.cluster-a.external.td.update_rejected',
      'sds.leaf:spiffe://td/ns/default/dc/dc-a/svc/api.update_rejected',
    ]) {
      const log = [
        '[info] starting',
        '[warning] gRPC config for type.googleapis.com/envoy.config.listener.v3.Listener rejected: bad listener',
        '[info] more',
      ];
      const envoy = fakeEnvoy([{ ready: 'LIVE', stats: { ...quiet, [stat]: 1 } }], log);
      const err = await waitEnvoyHealthy(envoy, 5_000).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(EnvoyFailure);
      expect((err as EnvoyFailure).message).toBe(
        `envoy gw-a: rejected an update from isthmus (${stat}=1)`,
      );
      expect((err as EnvoyFailure).logLines).toEqual([log[1]]);
      expect(envoy.polls).toBe(1);
    }
  });

  it('an Envoy that exits, or is not LIVE by the deadline, fails naming its last state and log lines', async () => {
    const failure = (p: Promise<void>) =>
      p.then(
        () => expect.unreachable('no failure'),
        (e: unknown) => e as EnvoyFailure,
      );
    const exited = await failure(
      waitEnvoyHealthy(
        fakeEnvoy([{ ready: 'LIVE', stats: quiet, exited: 'code 1' }], ['[critical] boom']),
        5_000,
      ),
    );
    expect(exited.message).toBe('envoy gw-a: exited (code 1)');
    expect(exited.logLines).toEqual(['[critical] boom']);
    const stuck = await failure(
      waitEnvoyHealthy(
        fakeEnvoy(
          [
            {
              ready: 'INITIALIZING',
              stats: { ...quiet, 'listener_manager.total_listeners_warming': 2 },
            },
          ],
          ['[info] waiting'],
        ),
        300,
      ),
    );
    expect(stuck.message).toBe(
      'envoy gw-a: not LIVE within 0.3 s (last: INITIALIZING, warming listener_manager.total_listeners_warming=2)',
    );
    expect(stuck.logLines).toEqual(['[info] waiting']);
  });
});

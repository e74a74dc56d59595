/**
 * A registration isthmus accepts and Envoy rejects: `web`'s new upstream binds a port another
 * process already holds. Nothing in the catalog can know that port is taken; only the Envoy on
 * that host finds out, when it binds ("cannot bind ...: Address already in use"). A real sidecar
 * shows what a user sees: the listener update is rejected and NACKed, Envoy keeps serving its last
 * good listeners, isthmus reports the NACK with Envoy's own words and does not re-send the
 * rejected content, and the corrected registration is accepted.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupProcesses, runCli } from '../helpers/process.js';
import { type App, closeApps, listenPort, startApp, tcpCall } from './apps.js';
import {
  cleanupEnvoys,
  dumpSection,
  type EnvoyProcess,
  showEnvoyLogsOnFailure,
  skipWithoutEnvoy,
} from './harness.js';
import {
  eventually,
  type MeshProcess,
  proxyTypeStates,
  startCluster,
  startProxy,
  waitSynced,
  withSidecar,
} from './mesh.js';
import { waitFor } from '../helpers/wait.js';

const webId = 'web-sidecar-proxy';
const ldsType = 'type.googleapis.com/envoy.config.listener.v3.Listener';

interface ResourceJson {
  readonly Type: string;
  readonly Name: string;
  readonly Version: string;
  readonly Status: string;
  readonly Error?: string;
}
interface ProxyJson {
  readonly Types: Record<
    string,
    { status: string; version: string; lastNack?: { message: string } }
  >;
  readonly Resources: readonly ResourceJson[];
}

describe.skipIf(skipWithoutEnvoy())(
  'a listener Envoy cannot bind is NACKed, and the proxy keeps its last good config',
  () => {
    let dc: MeshProcess;
    let web: EnvoyProcess;
    let api: App;
    let cache: App;
    /** A process that is not Envoy holding a port on 127.0.0.1. */
    let squatter: App;
    let apiBind: number;
    let cacheCluster: string;
    let webApp: number;
    let webPublic: number;
    /** Envoy's message for the rejected update, as its log has it. */
    let envoyMessage = '';
    let badListener = '';

    showEnvoyLogsOnFailure();

    const register = (upstreams: unknown[]) =>
      dc.register(withSidecar('web', webApp, webPublic, upstreams));
    const ldsStats = async () => {
      const s = await web.stats('listener_manager.lds');
      return {
        attempt: s['listener_manager.lds.update_attempt'] ?? 0,
        rejected: s['listener_manager.lds.update_rejected'] ?? 0,
        success: s['listener_manager.lds.update_success'] ?? 0,
      };
    };
    const status = async () => (await dc.api<ProxyJson>('GET', `/v1/xds/proxies/${webId}`)).body;

    beforeAll(async () => {
      dc = await startCluster('dc1');
      cacheCluster = `cache.default.dc1.internal.${await dc.trustDomain()}`;
      api = await startApp('tcp', 'api');
      cache = await startApp('tcp', 'cache');
      squatter = await startApp('tcp', 'squatter');
      await dc.register(withSidecar('api', api.port, await listenPort()));
      await dc.register(withSidecar('cache', cache.port, await listenPort()));
      [webApp, webPublic, apiBind] = [await listenPort(), await listenPort(), await listenPort()];
      await register([{ DestinationName: 'api', LocalBindPort: apiBind }]);
      await Promise.all(
        ['api-sidecar-proxy', 'cache-sidecar-proxy'].map((id) =>
          startProxy(dc, id, { datacenter: 'dc1' }),
        ),
      );
      web = await startProxy(dc, webId, { datacenter: 'dc1' });
      await waitSynced(dc, webId);
    });

    afterAll(async () => {
      await cleanupEnvoys();
      await closeApps();
      await dc?.close();
      await cleanupProcesses();
    });

    it('before: web reaches api through its upstream listener', async () => {
      expect(await eventually(() => tcpCall(apiBind), 'TCP web → api')).toEqual({
        greeting: 'api',
        echo: 'ping',
      });
      expect((await ldsStats()).rejected).toBe(0);
    });

    it('an upstream on a port another process holds: isthmus accepts it, Envoy rejects the listener update', async () => {
      const before = await ldsStats();
      badListener = `cache:127.0.0.1:${squatter.port}`;
      await register([
        { DestinationName: 'api', LocalBindPort: apiBind },
        { DestinationName: 'cache', LocalBindPort: squatter.port },
      ]);
      await waitFor(async () => (await ldsStats()).rejected > before.rejected, {
        timeoutMs: 30_000,
        what: "Envoy's lds.update_rejected to grow",
      });
      envoyMessage = await waitFor(
        () =>
          new RegExp(`gRPC config for ${ldsType.replaceAll('.', '\\.')} rejected: (.+)`).exec(
            web.log(),
          )?.[1],
        {
          timeoutMs: 10_000,
          what: 'the rejection in the Envoy log',
        },
      );
      expect(envoyMessage).toBe(
        `Error adding/updating listener(s) ${badListener}: cannot bind '127.0.0.1:${squatter.port}': Address already in use`,
      );
      // Envoy's admin reports the failure on the listener it could not add (without the prefix
      // naming the listener, which the NACK of the whole update carries).
      const listeners = dumpSection(await web.configDump(), 'ListenersConfigDump')
        ?.dynamic_listeners as {
        name: string;
        active_state?: unknown;
        error_state?: { details: string };
      }[];
      const failed = listeners.find((l) => l.name === badListener);
      expect(failed?.error_state?.details).toBe(
        `cannot bind '127.0.0.1:${squatter.port}': Address already in use`,
      );
      expect(failed?.active_state).toBeUndefined();
    });

    it('the new cluster was accepted and warmed from its endpoints (not from Envoy giving up waiting)', async () => {
      expect((await web.clusters()).get(cacheCluster)?.filter((h) => h.healthy)).toHaveLength(1);
      const stats = await web.stats(cacheCluster);
      expect(stats[`cluster.${cacheCluster}.update_success`]).toBeGreaterThan(0);
      expect(stats[`cluster.${cacheCluster}.init_fetch_timeout`]).toBe(0);
    });

    it('Envoy keeps serving its last good listeners: web still reaches api', async () => {
      expect(await web.state()).toBe('LIVE');
      expect(await tcpCall(apiBind)).toEqual({ greeting: 'api', echo: 'ping' });
      const active = (
        (dumpSection(await web.configDump(), 'ListenersConfigDump')?.dynamic_listeners ?? []) as {
          name: string;
          active_state?: unknown;
        }[]
      )
        .filter((l) => l.active_state)
        .map((l) => l.name)
        .sort();
      expect(active).toEqual([
        `api:127.0.0.1:${apiBind}`,
        `public_listener:127.0.0.1:${webPublic}`,
      ]);
      expect(squatter.seen).toEqual([]);
    });

    it("GET /v1/xds/proxies/<id> shows LDS rejected (ERROR, as CSDS names it) with Envoy's message", async () => {
      const st = await waitFor(
        async () => {
          const s = await status();
          return s.Types.LDS?.status === 'ERROR' && s;
        },
        { timeoutMs: 10_000, what: 'LDS ERROR in the proxy status' },
      );
      // Verbatim: Envoy's error_detail has one line per listener it failed to add, each ending in a
      // newline.
      expect(st.Types.LDS!.lastNack?.message).toBe(`${envoyMessage}\n`);
      expect(st.Types.CDS!.status).toBe('SYNCED');
      expect(st.Types.EDS!.status).toBe('SYNCED');
      const lds = st.Resources.filter((r) => r.Type === 'LDS');
      expect(lds.find((r) => r.Name === badListener)).toMatchObject({
        Status: 'ERROR',
        Error: `${envoyMessage}\n`,
      });
      expect(lds.filter((r) => r.Name !== badListener).map((r) => r.Status)).toEqual([
        'SYNCED',
        'SYNCED',
      ]);
    });

    it('isthmus proxy-status shows the same, in the table and for the one proxy', async () => {
      const all = await runCli(['proxy-status', '--http-addr', dc.httpAddress]);
      expect(all.code).toBe(0);
      const [header, ...rows] = all.stdout.split('\n').map((l) => l.trim().split(/\s{2,}/));
      const row = rows.find((r) => r[0] === webId)!;
      const col = (name: string) => row[header!.indexOf(name)];
      expect([col('CDS'), col('LDS'), col('EDS'), col('SDS')]).toEqual([
        'SYNCED',
        'NACKED',
        'SYNCED',
        'SYNCED',
      ]);
      expect(col('LAST NACK')).toBe(`LDS: ${envoyMessage}`);

      const one = await runCli(['proxy-status', webId, '--http-addr', dc.httpAddress]);
      expect(one.code).toBe(0);
      expect(one.stdout).toContain(`Last NACK: LDS: ${envoyMessage} (at `);
      const line = one.stdout
        .split('\n')
        .find((l) => l.startsWith('LDS') && l.includes(badListener))!
        .trim()
        .split(/\s{2,}/);
      expect([line[0], line[1], line[2]]).toEqual(['LDS', badListener, 'NACKED']);
      expect(line.at(-1)).toBe(envoyMessage);
    });

    it('the rejected content is not sent again while other changes reach the proxy', async () => {
      const before = await ldsStats();
      const ldsBefore = (await status()).Types.LDS!;
      const apiCluster = `api.default.dc1.internal.${await dc.trustDomain()}`;
      // Changes that do not touch web's listeners: a service nobody calls, a heartbeat that changes
      // nothing, and a second api instance coming and going (web's endpoints of api, pushed over
      // the same stream after anything the server would have re-sent).
      await dc.register({ Name: 'billing', Address: '127.0.0.1', Port: await listenPort() });
      expect((await dc.api('PUT', '/v1/agent/check/pass/service:api')).status).toBe(200);
      await dc.register({ ...withSidecar('api', api.port, await listenPort()), ID: 'api-2' });
      await eventually(
        async () => expect((await web.clusters()).get(apiCluster)).toHaveLength(2),
        "web's Envoy holding both api endpoints",
      );
      expect((await dc.api('PUT', '/v1/agent/service/deregister/api-2')).status).toBe(200);
      await eventually(
        async () => expect((await web.clusters()).get(apiCluster)).toHaveLength(1),
        "web's Envoy back to one api endpoint",
      );
      await eventually(
        async () => expect((await proxyTypeStates(dc, webId)).EDS).toBe('SYNCED'),
        'EDS ACKed',
      );

      expect(await ldsStats()).toEqual(before);
      const ldsAfter = (await status()).Types.LDS!;
      expect(ldsAfter).toEqual(ldsBefore);
      expect(await tcpCall(apiBind)).toEqual({ greeting: 'api', echo: 'ping' });
    });

    it('a change to another of its listeners goes out without the rejected one, and Envoy accepts it', async () => {
      const before = await ldsStats();
      const publicName = `public_listener:127.0.0.1:${webPublic}`;
      const resource = (st: ProxyJson, name: string) =>
        st.Resources.find((r) => r.Type === 'LDS' && r.Name === name)!;
      const start = await status();
      // An intention denying billing → web changes web's public listener (its RBAC), and only that.
      await dc.putConfig({
        Kind: 'service-intentions',
        Name: 'web',
        Sources: [{ Name: 'billing', Action: 'deny' }],
      });
      const st = await waitFor(
        async () => {
          const s = await status();
          const pub = resource(s, publicName);
          return (
            pub.Version !== resource(start, publicName).Version && pub.Status === 'SYNCED' && s
          );
        },
        { timeoutMs: 30_000, what: 'the new public listener ACKed' },
      );
      const after = await ldsStats();
      expect(after.rejected).toBe(before.rejected);
      expect(after.success).toBeGreaterThan(before.success);
      expect(after.attempt - before.attempt).toBe(after.success - before.success);
      expect(resource(st, badListener)).toEqual(resource(start, badListener));
      const dumped = (
        (dumpSection(await web.configDump(), 'ListenersConfigDump')?.dynamic_listeners ?? []) as {
          name: string;
          active_state?: unknown;
        }[]
      ).find((l) => l.name === publicName);
      expect(JSON.stringify(dumped?.active_state)).toContain('/svc/billing');
    });

    it('once the registration is fixed, Envoy accepts the next version and proxy-status is SYNCED again', async () => {
      const before = await ldsStats();
      const cacheBind = await listenPort();
      await register([
        { DestinationName: 'api', LocalBindPort: apiBind },
        { DestinationName: 'cache', LocalBindPort: cacheBind },
      ]);
      expect(await waitSynced(dc, webId)).toMatchObject({
        CDS: 'SYNCED',
        LDS: 'SYNCED',
        EDS: 'SYNCED',
        SDS: 'SYNCED',
      });
      const after = await ldsStats();
      expect(after.success).toBeGreaterThan(before.success);
      expect(after.rejected).toBe(before.rejected);
      expect(await eventually(() => tcpCall(cacheBind), 'TCP web → cache')).toEqual({
        greeting: 'cache',
        echo: 'ping',
      });
      expect(await tcpCall(apiBind)).toEqual({ greeting: 'api', echo: 'ping' });
      const all = await runCli(['proxy-status', '--http-addr', dc.httpAddress]);
      const [header, ...rows] = all.stdout.split('\n').map((l) => l.trim().split(/\s{2,}/));
      const row = rows.find((r) => r[0] === webId)!;
      expect(row[header!.indexOf('LDS')]).toBe('SYNCED');
    });
  },
);

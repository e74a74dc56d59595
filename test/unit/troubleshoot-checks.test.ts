/**
 * The troubleshoot checklists from fabricated facts: every ✗ of every check, with its fix, and the
 * text `isthmus troubleshoot` prints (golden files test/golden/cli/troubleshoot-unit-*.txt).
 */
import { describe, expect, it } from 'vitest';
import { createRoot, issueLeaf, loadSigner } from '../../src/ca/x509.js';
import type { Peering } from '../../src/peering/types.js';
import { certFact } from '../../src/troubleshoot/certs.js';
import {
  type Checklist,
  formatAge,
  formatDuration,
  renderChecklist,
} from '../../src/troubleshoot/checklist.js';
import { type PeeringFacts, peeringChecklist } from '../../src/troubleshoot/peering-checks.js';
import {
  type ProxyFacts,
  type SessionFact,
  type UpstreamFact,
  proxyChecklist,
} from '../../src/troubleshoot/proxy-checks.js';
import { expectGoldenText } from '../helpers/golden.js';

const now = Date.parse('2026-06-01T12:00:00.000Z');
const ago = (ms: number) => new Date(now - ms).toISOString();
const day = 86_400_000;
const cert = (
  label: string,
  identity: string,
  from = ago(30 * day),
  to = new Date(now + 300 * day).toISOString(),
) => ({ label, identity, notBefore: from, notAfter: to });

const acceptor: Peering = {
  id: 'p-1',
  name: 'cluster-b',
  state: 'ACTIVE',
  peerId: '',
  peerServerName: '',
  peerServerAddresses: [],
  peerCaPems: ['-----BEGIN CERTIFICATE-----'],
  peerTrustDomain: 'bbbb.consul',
  meta: {},
  remote: { partition: 'default', datacenter: 'dc-b' },
  streamStatus: {
    importedServices: ['web'],
    exportedServices: ['api'],
    lastHeartbeat: ago(3_000),
    lastReceive: ago(2_000),
    lastSend: ago(1_000),
  },
  createIndex: 1,
  modifyIndex: 2,
};

const dialer: Peering = {
  ...acceptor,
  name: 'cluster-a',
  peerId: 'acc-1',
  peerServerName: 'server.dc-a.peering.aaaa.consul',
  peerServerAddresses: ['127.0.0.1:8503'],
  remote: { partition: 'default', datacenter: 'dc-a' },
};

const healthyPeering: PeeringFacts = {
  datacenter: 'dc-a',
  now,
  heartbeatTimeoutMs: 120_000,
  peering: acceptor,
  exported: ['api'],
  exportEntryExists: true,
  imported: ['web'],
  localGateways: [{ id: 'gw-1', health: 'passing', wan: '203.0.113.7:443' }],
  localModeUpstreams: [],
  localRoots: [cert('local root r1', 'spiffe://aaaa.consul')],
  peerRoots: [cert('peer root #1', 'spiffe://bbbb.consul')],
};

const withStatus = (
  p: Peering,
  s: Partial<Peering['streamStatus']>,
  rest: Partial<Peering> = {},
): Peering => ({ ...p, ...rest, streamStatus: { ...p.streamStatus, ...s } });

/** Names of the failed checks. */
const failed = (list: Checklist) => list.Checks.filter((c) => !c.OK).map((c) => c.Name);

function golden(file: string, list: Checklist): void {
  const { actual, expected } = expectGoldenText(
    `cli/troubleshoot-unit-${file}.txt`,
    renderChecklist(list),
  );
  expect(actual).toBe(expected);
}

describe('peering checklist', () => {
  it('all ✓ for an active, exported, gatewayed peering; exit-worthy OK is true', () => {
    const list = peeringChecklist(healthyPeering);
    expect(failed(list)).toEqual([]);
    expect(list.OK).toBe(true);
    golden('peering-healthy', list);
  });

  // Each fault: the facts, the one check that must fail, and what its detail and fix must say.
  const faults: [string, Partial<PeeringFacts>, string, RegExp, RegExp][] = [
    [
      'token-unused',
      {
        peering: withStatus(
          acceptor,
          { lastHeartbeat: undefined, lastReceive: undefined },
          { state: 'PENDING', peerCaPems: [], remote: { partition: '', datacenter: '' } },
        ),
        peerRoots: [],
        imported: [],
      },
      'token used',
      /has not established/,
      /isthmus peering establish --name dc-a --peering-token <TOKEN>[\s\S]*generate-token --name cluster-b/,
    ],
    [
      'terminated',
      { peering: { ...acceptor, state: 'TERMINATED' } },
      'token used',
      /deleted this peering/,
      /isthmus peering delete --name cluster-b/,
    ],
    [
      'deleting',
      { peering: { ...acceptor, state: 'DELETING', deletedAt: ago(1_000) } },
      'token used',
      /being deleted/,
      /new token/,
    ],
    [
      'stream-failing-dialer',
      {
        peering: withStatus(
          dialer,
          { lastError: 'connect ECONNREFUSED 127.0.0.1:8503', lastHeartbeat: ago(20_000) },
          { state: 'FAILING' },
        ),
        heartbeatTimeoutMs: 30_000,
        datacenter: 'dc-b',
      },
      'stream up',
      /FAILING: connect ECONNREFUSED/,
      /reachable from here at 127\.0\.0\.1:8503 .*TLS name server\.dc-a/,
    ],
    [
      'stream-failing-acceptor',
      {
        peering: withStatus(
          acceptor,
          { lastError: 'no heartbeat for 120000 ms', lastHeartbeat: ago(60_000) },
          { state: 'FAILING' },
        ),
      },
      'stream up',
      /FAILING: no heartbeat/,
      /reaches this server's peering port/,
    ],
    [
      'heartbeat-stale',
      { peering: withStatus(acceptor, { lastHeartbeat: ago(200_000) }) },
      'heartbeat age',
      /3m20s ago, more than the 2m timeout/,
      /--peering-heartbeat-ms/,
    ],
    [
      'heartbeat-never',
      { peering: withStatus(acceptor, { lastHeartbeat: undefined }) },
      'heartbeat age',
      /no heartbeat received yet \(last message 2s ago\)/,
      /network between the servers/,
    ],
    [
      'peer-ca-missing',
      { peering: { ...dialer, peerCaPems: [] }, peerRoots: [], datacenter: 'dc-b' },
      'peer CA present',
      /no CA roots of the peer/,
      /new token from the peer/,
    ],
    [
      'peer-ca-garbage',
      {
        peerRoots: [
          {
            label: 'peer root #1',
            identity: '',
            notBefore: '',
            notAfter: '',
            error: 'does not parse: bad PEM',
          },
        ],
      },
      'peer CA present',
      /peer root #1 does not parse/,
      /have the peer establish again/,
    ],
    [
      'no-exports',
      { exported: [], imported: [], exportEntryExists: false },
      'exports non-empty',
      /nothing is exported to cluster-b, and nothing is imported from it/,
      /export a service to it[\s\S]*"Consumers":\[\{"Peer":"cluster-b"\}\][\s\S]*isthmus config write -/,
    ],
    [
      'no-exports-entry-exists',
      { exported: [], imported: [] },
      'exports non-empty',
      /nothing is exported/,
      /add cluster-b to the Consumers/,
    ],
    [
      'no-gateway',
      { localGateways: [] },
      'mesh gateway registered',
      /no mesh gateway is registered in dc-a, but the peer reaches api through it/,
      /"Kind":"mesh-gateway"[\s\S]*"wan"[\s\S]*isthmus services register -/,
    ],
    [
      'no-gateway-local-mode',
      { localGateways: [], exported: [], localModeUpstreams: ['web-sidecar-proxy → api'] },
      'mesh gateway registered',
      /upstreams in mode local leave through it \(web-sidecar-proxy → api\)/,
      /"Kind":"mesh-gateway"/,
    ],
    [
      'gateway-critical',
      { localGateways: [{ id: 'gw-1', health: 'critical' }] },
      'mesh gateway registered',
      /every mesh gateway of dc-a is critical: gw-1/,
      /health checks pass/,
    ],
    [
      'peer-nack',
      { peering: withStatus(acceptor, { lastNack: 'instances[0]: id and name are required' }) },
      'last NACK',
      /the peer rejected .*id and name are required/,
      /peer's server log/,
    ],
    [
      'peer-bundle-rejected',
      {
        peering: withStatus(acceptor, {
          lastError:
            "rejected the peer's trust-bundle: trust_domain: aaaa.consul is this cluster's own trust domain",
          rejectedImports: [
            {
              resource: 'trust-bundle',
              resourceId: 'aaaa.consul',
              reason: "trust_domain: aaaa.consul is this cluster's own trust domain",
            },
          ],
        }),
      },
      'peer CA present',
      /trust bundle aaaa\.consul was rejected \(the last accepted roots stay in use\): trust_domain: aaaa\.consul is this cluster's own/,
      /URI SAN spiffe:\/\/<its trust domain>.*establish again with a new token/,
    ],
    [
      'peer-service-rejected',
      {
        peering: withStatus(acceptor, {
          rejectedImports: [
            {
              resource: 'service',
              resourceId: 'web',
              reason:
                'instances[0].peer_meta.spiffe_id[0]: "spiffe://aaaa.consul/ns/default/dc/dc-a/svc/web" is outside the peer\'s trust domain bbbb.consul',
            },
          ],
        }),
      },
      'imports',
      /the service web that cluster-b replicated was rejected \(nothing of it was stored or sent to a proxy\): instances\[0\]\.peer_meta\.spiffe_id\[0\]/,
      /fix it on the peer/,
    ],
    [
      'local-root-expired',
      { localRoots: [cert('local root r1', 'spiffe://aaaa.consul', ago(400 * day), ago(day))] },
      'certificates valid',
      /local root r1 spiffe:\/\/aaaa\.consul expired at/,
      /isthmus ca rotate/,
    ],
    [
      'peer-root-not-yet-valid',
      {
        peerRoots: [
          cert('peer root #1', 'spiffe://bbbb.consul', new Date(now + day).toISOString()),
        ],
      },
      'certificates valid',
      /peer root #1 .* is not valid before/,
      /replicated when the peer rotates/,
    ],
  ];

  for (const [file, patch, check, detail, fix] of faults) {
    it(`✗ ${check}: ${file}`, () => {
      const list = peeringChecklist({ ...healthyPeering, ...patch });
      expect(failed(list)).toEqual([check]);
      expect(list.OK).toBe(false);
      const c = list.Checks.find((x) => x.Name === check)!;
      expect(c.Detail).toMatch(detail);
      expect(c.Fix).toMatch(fix);
      golden(`peering-${file}`, list);
    });
  }

  it('a one-way peering (this side only imports) and no gateway where none is needed pass', () => {
    const list = peeringChecklist({ ...healthyPeering, exported: [], localGateways: [] });
    expect(failed(list)).toEqual([]);
    expect(list.Checks.find((c) => c.Name === 'exports non-empty')!.Detail).toMatch(
      /one-way peering/,
    );
    expect(list.Checks.find((c) => c.Name === 'mesh gateway registered')!.Detail).toMatch(
      /none needed/,
    );
  });

  it('an unused token skips (-) what needs the stream instead of failing it again', () => {
    const list = peeringChecklist({
      ...healthyPeering,
      peering: { ...acceptor, state: 'PENDING' },
    });
    expect(list.Checks.filter((c) => c.Skipped).map((c) => c.Name)).toEqual([
      'stream up',
      'heartbeat age',
      'peer CA present',
      'last NACK',
    ]);
    expect(renderChecklist(list)).toMatch(
      /^- stream up: not applicable while the peering is PENDING$/m,
    );
  });

  it('imports are informational: nothing imported is not a failure', () => {
    const list = peeringChecklist({ ...healthyPeering, imported: [] });
    expect(list.OK).toBe(true);
    expect(list.Checks.find((c) => c.Name === 'imports')?.Detail).toBe(
      'nothing is imported from cluster-b (the peer exports nothing to this cluster)',
    );
  });
});

const synced = (names: string[]) => names.map((name) => ({ name, status: 'SYNCED' as const }));
const healthySession: SessionFact = {
  api: 'delta',
  connectedAt: ago(65_000),
  resources: {
    CDS: synced(['api.default.cluster-a.external.aaaa.consul', 'local_app']),
    LDS: synced(['api?peer=cluster-a:127.0.0.1:19090', 'public_listener:127.0.0.1:8080']),
    EDS: synced(['api.default.cluster-a.external.aaaa.consul']),
    RDS: [],
    SDS: synced([
      'leaf:spiffe://bbbb.consul/ns/default/dc/dc-b/svc/web',
      'roots:local',
      'roots:peer:cluster-a',
    ]),
  },
  nacks: [],
  leaf: {
    ...cert(
      'leaf',
      'spiffe://bbbb.consul/ns/default/dc/dc-b/svc/web',
      ago(day),
      new Date(now + 2 * day).toISOString(),
    ),
    chainsToRoots: true,
  },
  rootsSecrets: ['roots:local', 'roots:peer:cluster-a'],
};
const peeredApi: UpstreamFact = {
  service: 'api',
  peer: 'cluster-a',
  datacenter: '',
  gatewayMode: 'remote',
  peeringState: 'ACTIVE',
  imported: true,
  importedWithMesh: true,
  remoteGateways: 0,
};
const healthyProxy: ProxyFacts = {
  id: 'web-sidecar-proxy',
  datacenter: 'dc-b',
  now,
  instance: { kind: 'connect-proxy', name: 'web-sidecar-proxy', destination: 'web' },
  session: healthySession,
  upstreams: [peeredApi],
  localGateways: [{ id: 'gw-b', health: 'passing', wan: '198.51.100.9:443' }],
};
const session = (patch: Partial<SessionFact>): SessionFact => ({ ...healthySession, ...patch });

describe('proxy checklist', () => {
  it('all ✓ for a registered, connected, synced sidecar with a peered upstream', () => {
    const list = proxyChecklist(healthyProxy);
    expect(failed(list)).toEqual([]);
    golden('proxy-healthy', list);
  });

  const faults: [string, Partial<ProxyFacts>, string, RegExp, RegExp][] = [
    [
      'not-registered',
      { instance: undefined, upstreams: [] },
      'registered as a proxy',
      /no service instance with ID web-sidecar-proxy/,
      /Connect\.SidecarService[\s\S]*mesh-gateway/,
    ],
    [
      'typical-service',
      { id: 'web', instance: { kind: 'typical', name: 'web', destination: '' }, upstreams: [] },
      'registered as a proxy',
      /web is a typical service, not a proxy/,
      /web-sidecar-proxy/,
    ],
    [
      'resource-not-sent',
      {
        session: session({
          resources: {
            ...healthySession.resources,
            EDS: [{ name: 'api.default.cluster-a.external.aaaa.consul', status: 'NOT_SENT' }],
          },
        }),
      },
      'EDS synced',
      /1 of 1 not synced: api\.default\.cluster-a\.external\.aaaa\.consul \(NOT_SENT\)/,
      /NOT_SENT: not sent yet[\s\S]*isthmus proxy-config web-sidecar-proxy eds/,
    ],
    [
      'resource-stale',
      {
        session: session({
          resources: {
            ...healthySession.resources,
            CDS: [{ name: 'local_app', status: 'STALE' }, ...synced(['x'])],
          },
        }),
      },
      'CDS synced',
      /1 of 2 not synced: local_app \(STALE\)/,
      /STALE: sent but not ACKed/,
    ],
    [
      'leaf-expired',
      { session: session({ leaf: { ...healthySession.leaf!, notAfter: ago(1_000) } }) },
      'certificates valid',
      /leaf spiffe:.*svc\/web expired at/,
      /renewed before they expire/,
    ],
    [
      'leaf-wrong-root',
      { session: session({ leaf: { ...healthySession.leaf!, chainsToRoots: false } }) },
      'certificates valid',
      /not signed by a current CA root/,
      /isthmus ca roots/,
    ],
    [
      'no-local-roots',
      { session: session({ rootsSecrets: ['roots:peer:cluster-a'] }) },
      'certificates valid',
      /roots:local\) are not in the proxy's config/,
      /server log/,
    ],
    [
      'no-leaf',
      { session: session({ leaf: undefined }) },
      'certificates valid',
      /no leaf certificate/,
      /server log/,
    ],
    [
      'peering-missing',
      { upstreams: [{ ...peeredApi, peeringState: undefined }] },
      'upstream api (peer cluster-a)',
      /no peering named cluster-a/,
      /isthmus peering establish --name cluster-a/,
    ],
    [
      'peering-failing',
      { upstreams: [{ ...peeredApi, peeringState: 'FAILING' }] },
      'upstream api (peer cluster-a)',
      /peering cluster-a is FAILING/,
      /isthmus troubleshoot peering --name cluster-a/,
    ],
    [
      'not-imported',
      { upstreams: [{ ...peeredApi, imported: false, importedWithMesh: false }] },
      'upstream api (peer cluster-a)',
      /api is not imported from cluster-a/,
      /exported-services entry/,
    ],
    [
      'imported-without-mesh',
      { upstreams: [{ ...peeredApi, importedWithMesh: false }] },
      'upstream api (peer cluster-a)',
      /without mesh endpoints/,
      /mesh gateway/,
    ],
    [
      'bundle-not-pushed',
      { session: session({ rootsSecrets: ['roots:local'] }) },
      'upstream api (peer cluster-a)',
      /roots:peer:cluster-a\) is not in the proxy's config/,
      /troubleshoot peering --name cluster-a/,
    ],
    [
      'local-mode-no-gateway',
      { upstreams: [{ ...peeredApi, gatewayMode: 'local' }], localGateways: [] },
      'mesh gateway for upstream api (peer cluster-a)',
      /mode local, but no healthy mesh gateway is registered in dc-b/,
      /register a mesh gateway/,
    ],
    [
      'remote-dc-no-gateway',
      {
        upstreams: [
          {
            service: 'db',
            peer: '',
            datacenter: 'dc-c',
            gatewayMode: 'remote',
            imported: false,
            importedWithMesh: false,
            remoteGateways: 0,
          },
        ],
      },
      'mesh gateway for upstream db (dc dc-c)',
      /no mesh gateway of dc-c is known/,
      /Datacenter "dc-c"/,
    ],
  ];

  for (const [file, patch, check, detail, fix] of faults) {
    it(`✗ ${check}: ${file}`, () => {
      const list = proxyChecklist({ ...healthyProxy, ...patch });
      expect(failed(list)).toEqual([check]);
      const c = list.Checks.find((x) => x.Name === check)!;
      expect(c.Detail).toMatch(detail);
      expect(c.Fix).toMatch(fix);
      golden(`proxy-${file}`, list);
    });
  }

  it('✗ connected over xDS: never connected; the xDS checks are skipped, the bootstrap command is the fix', () => {
    const list = proxyChecklist({ ...healthyProxy, session: undefined });
    expect(failed(list)).toEqual(['connected over xDS']);
    expect(list.Checks.find((c) => c.Name === 'connected over xDS')?.Fix).toMatch(
      /isthmus envoy bootstrap --proxy-id web-sidecar-proxy --token <TOKEN>.*isthmus acl token create --proxy-id web-sidecar-proxy/,
    );
    expect(list.Checks.filter((c) => c.Skipped).map((c) => c.Name)).toEqual([
      'CDS synced',
      'LDS synced',
      'EDS synced',
      'RDS synced',
      'SDS synced',
      'last NACK',
      'certificates valid',
    ]);
    golden('proxy-not-connected', list);
  });

  it('a typical service (not a proxy, nothing connected): the one ✗ points at its sidecar; no bootstrap is suggested for the app', () => {
    const list = proxyChecklist({
      ...healthyProxy,
      id: 'web',
      instance: { kind: 'typical', name: 'web', destination: '' },
      upstreams: [],
      session: undefined,
    });
    expect(failed(list)).toEqual(['registered as a proxy']);
    expect(list.Checks.find((c) => c.Name === 'connected over xDS')).toMatchObject({
      Skipped: true,
      Detail: 'web is not a proxy, so no Envoy connects as it',
    });
  });

  it("✗ last NACK and ✗ LDS synced: a rejected listener names the type, the resource and Envoy's message", () => {
    const lds = [{ name: 'public_listener:127.0.0.1:8080', status: 'ERROR' as const }];
    const nack = {
      type: 'LDS' as const,
      message: 'Error adding/updating listener(s) public_listener: bad filter',
      resources: ['public_listener:127.0.0.1:8080'],
      at: ago(5_000),
    };
    const list = proxyChecklist({
      ...healthyProxy,
      session: session({ resources: { ...healthySession.resources, LDS: lds }, nacks: [nack] }),
    });
    expect(failed(list)).toEqual(['LDS synced', 'last NACK']);
    const c = list.Checks.find((x) => x.Name === 'last NACK')!;
    expect(c.Detail).toBe(
      'Envoy rejected LDS public_listener:127.0.0.1:8080: Error adding/updating listener(s) public_listener: bad filter',
    );
    expect(c.Fix).toMatch(/isthmus proxy-config web-sidecar-proxy lds/);
    golden('proxy-nack', list);
  });

  it('a secret in the view that Envoy never asked for (no cluster or listener names it) is not a failure', () => {
    const sds = [
      ...healthySession.resources.SDS,
      { name: 'roots:local', status: 'NOT_REQUESTED' as const },
    ];
    const list = proxyChecklist({
      ...healthyProxy,
      session: session({ resources: { ...healthySession.resources, SDS: sds } }),
    });
    expect(list.OK).toBe(true);
    expect(list.Checks.find((c) => c.Name === 'SDS synced')?.Detail).toBe(
      '3 resources ACKed (not requested by Envoy: roots:local)',
    );
  });

  it('a NACK whose resource was replaced since is reported as resolved, not as a failure', () => {
    const nack = { type: 'CDS' as const, message: 'bad cluster', resources: [], at: ago(5_000) };
    const list = proxyChecklist({ ...healthyProxy, session: session({ nacks: [nack] }) });
    expect(list.OK).toBe(true);
    expect(list.Checks.find((c) => c.Name === 'last NACK')?.Detail).toBe(
      'none outstanding (an earlier CDS NACK is resolved: bad cluster)',
    );
  });

  it('a mesh gateway without a pushed leaf skips the certificate check; its bootstrap hint says --gateway mesh', () => {
    const gw: ProxyFacts = {
      ...healthyProxy,
      id: 'gw-b',
      instance: { kind: 'mesh-gateway', name: 'mesh-gateway', destination: '' },
      upstreams: [],
    };
    const list = proxyChecklist({ ...gw, session: session({ leaf: undefined, rootsSecrets: [] }) });
    expect(list.OK).toBe(true);
    expect(list.Checks.find((c) => c.Name === 'certificates valid')).toMatchObject({
      Skipped: true,
    });
    expect(
      proxyChecklist({ ...gw, session: undefined }).Checks.find(
        (c) => c.Name === 'connected over xDS',
      )?.Fix,
    ).toMatch(/bootstrap --gateway mesh --proxy-id gw-b/);
  });
});

describe('certificate facts from real PEMs', () => {
  it('reads identity and validity, checks the issuer, and reports garbage without throwing', async () => {
    const root = await createRoot({
      rootUri: 'spiffe://aaaa.consul',
      name: 'root',
      now,
      validityMs: 10 * day,
    });
    const other = await createRoot({
      rootUri: 'spiffe://bbbb.consul',
      name: 'other',
      now,
      validityMs: 10 * day,
    });
    const leaf = await issueLeaf(await loadSigner(root.id, root.certPem, root.keyPem), {
      spiffeId: 'spiffe://aaaa.consul/ns/default/dc/dc-a/svc/web',
      now,
      ttlMs: day,
    });
    const fact = certFact('leaf', leaf.certPem, [root.certPem]);
    expect(fact).toMatchObject({
      identity: 'spiffe://aaaa.consul/ns/default/dc/dc-a/svc/web',
      chainsToRoots: true,
      notAfter: leaf.notAfter.toISOString(),
    });
    expect(certFact('leaf', leaf.certPem, [other.certPem]).chainsToRoots).toBe(false);
    expect(certFact('peer root #1', root.certPem).identity).toBe('spiffe://aaaa.consul');
    expect(certFact('peer root #1', 'not a pem').error).toMatch(/^does not parse/);
  });

  it('formats ages the way the checklist prints them', () => {
    expect([2_500, 3_000, 120_000].map(formatDuration)).toEqual(['2500ms', '3s', '2m']);
    expect(
      [0, 2_400, 59_999, 60_000, 125_000, 3_600_000, 7_380_000, 3 * day].map(formatAge),
    ).toEqual(['0s', '2s', '59s', '1m', '2m5s', '1h', '2h3m', '3d']);
  });
});

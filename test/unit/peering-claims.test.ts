/**
 * A peer is held to its word (issue 18): the trust-domain checks of establish, ExchangeSecret and
 * replicated bundles, and the validation of everything else a peer replicates.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { createRoot, issueLeaf, loadSigner } from '../../src/ca/x509.js';
import type { ExportedService } from '../../src/gen/isthmus/peering/v1/peering.js';
import { meshGatewaySpiffeId, peeredServiceSni, serviceSpiffeId } from '../../src/mesh/names.js';
import {
  type ClaimContext,
  rootsCertify,
  spiffeTrustDomainsOf,
  trustDomainProblems,
} from '../../src/peering/claims.js';
import { parseResponse } from '../../src/peering/stream/messages.js';
import { ResourceUrl } from '../../src/peering/stream/resources.js';
import type { Peering } from '../../src/peering/types.js';
import {
  importLimits,
  validateExportedService,
  validateExportedServiceList,
  validateServerAddresses,
  validateTrustBundle,
} from '../../src/peering/validate-import.js';
import { ReplicationMessage_Operation as Operation } from '../../src/gen/isthmus/peering/v1/peering.js';

const root = async (uri: string) =>
  (await createRoot({ rootUri: uri, name: 'r', now: Date.now(), validityMs: 3_600_000 })).certPem;

let peerRoot: string;
let peerRoot2: string;
let otherRoot: string;
let ourRoot: string;
beforeAll(async () => {
  [peerRoot, peerRoot2, otherRoot, ourRoot] = await Promise.all([
    root('spiffe://peer.consul'),
    root('spiffe://peer.consul'),
    root('spiffe://other.consul'),
    root('spiffe://ours.consul'),
  ]);
});

const peering = (name: string, td: string, pems: string[], state = 'ACTIVE'): Peering =>
  ({ name, state, peerTrustDomain: td, peerCaPems: pems }) as unknown as Peering;

const ctx = (peerings: Peering[] = [], peeringName = 'peer'): ClaimContext => ({
  ownTrustDomain: 'ours.consul',
  peerings,
  peeringName,
});

describe('trust-domain claims', () => {
  it("reads a root's spiffe:// trust domains; garbage does not parse", () => {
    expect(spiffeTrustDomainsOf(peerRoot)).toEqual(['peer.consul']);
    expect(spiffeTrustDomainsOf('junk')).toBeUndefined();
  });

  it("reads URI SANs from the extension, not from Node's display string", async () => {
    const r = await createRoot({
      rootUri: 'spiffe://other.consul',
      name: 'r',
      now: Date.now(),
      validityMs: 3_600_000,
    });
    const leaf = await issueLeaf(await loadSigner('r', r.certPem, r.keyPem), {
      spiffeId: 'spiffe://other.consul/svc/x',
      dnsSans: ['x", URI:spiffe://peer.consul'],
      now: Date.now(),
      ttlMs: 3_600_000,
    });
    expect(spiffeTrustDomainsOf(leaf.certPem)).toEqual(['other.consul']);
  });

  it('each root must certify exactly the claimed trust domain', () => {
    expect(rootsCertify('peer.consul', [peerRoot, peerRoot2], 'CA')).toEqual([]);
    expect(rootsCertify('peer.consul', [peerRoot, otherRoot], 'CA')).toEqual([
      {
        field: 'CA[1]',
        problem: 'certifies spiffe://other.consul, not the claimed trust domain peer.consul',
      },
    ]);
  });

  it("refuses our own trust domain, another live peer's with other roots, and a malformed one", () => {
    const holder = peering('other', 'other.consul', [otherRoot]);
    expect(trustDomainProblems('ours.consul', 'td', ctx(), [ourRoot])).toEqual([
      { field: 'td', problem: "ours.consul is this cluster's own trust domain" },
    ]);
    expect(trustDomainProblems('other.consul', 'td', ctx([holder]), [peerRoot])).toEqual([
      {
        field: 'td',
        problem: 'other.consul is the trust domain of peering "other", whose roots differ',
      },
    ]);
    expect(trustDomainProblems('Bad Domain', 'td', ctx(), [])[0]?.problem).toMatch(
      /is not a trust domain/,
    );
    expect(trustDomainProblems('', 'td', ctx(), [])).toEqual([{ field: 'td', problem: 'missing' }]);
  });

  it('lets the same peer hold two peerings (its roots are among the holder’s), and ignores terminated and its own peering', () => {
    const holder = peering('first', 'peer.consul', [peerRoot, peerRoot2]);
    expect(trustDomainProblems('peer.consul', 'td', ctx([holder]), [peerRoot2])).toEqual([]);
    const gone = peering('old', 'other.consul', [otherRoot], 'TERMINATED');
    expect(trustDomainProblems('other.consul', 'td', ctx([gone]), [peerRoot])).toEqual([]);
    const self = peering('peer', 'other.consul', [otherRoot]);
    expect(trustDomainProblems('other.consul', 'td', ctx([self]), [peerRoot])).toEqual([]);
  });

  it('a replicated bundle: resource ID = trust domain, roots certify it, and it is the one established', () => {
    const claims = (pinned: string, resourceId = 'peer.consul', peerings: Peering[] = []) => ({
      ...ctx(peerings),
      resourceId,
      pinned,
    });
    const bundle = { trustDomain: 'peer.consul', rootPems: [peerRoot] };
    expect(validateTrustBundle(bundle, claims('peer.consul'))).toEqual([]);
    expect(validateTrustBundle(bundle, claims('peer.consul', 'x.consul'))).toEqual([
      {
        field: 'resource_id',
        problem: '"x.consul" differs from the bundle\'s trust domain "peer.consul"',
      },
    ]);
    const ours = { trustDomain: 'ours.consul', rootPems: [ourRoot] };
    expect(
      validateTrustBundle(ours, { ...claims('peer.consul'), resourceId: 'ours.consul' }),
    ).toEqual([
      {
        field: 'trust_domain',
        problem:
          'the peer established this peering as peer.consul, not "ours.consul" (this cluster\'s own)',
      },
    ]);
    const theirs = { trustDomain: 'other.consul', rootPems: [otherRoot] };
    const holder = peering('other', 'other.consul', [otherRoot]);
    expect(validateTrustBundle(theirs, claims('peer.consul', 'other.consul', [holder]))).toEqual([
      {
        field: 'trust_domain',
        problem:
          'the peer established this peering as peer.consul, not "other.consul" (the trust domain of peering "other")',
      },
    ]);
    // Roots for another trust domain than the one the bundle names.
    const lying = { trustDomain: 'peer.consul', rootPems: [peerRoot, otherRoot] };
    expect(validateTrustBundle(lying, claims('peer.consul'))).toEqual([
      {
        field: 'root_pems[1]',
        problem: 'certifies spiffe://other.consul, not the claimed trust domain peer.consul',
      },
    ]);
    const many = { trustDomain: 'peer.consul', rootPems: Array(17).fill(peerRoot) };
    expect(validateTrustBundle(many, claims('peer.consul'))).toEqual([
      { field: 'root_pems', problem: 'more than 16 roots' },
    ]);
  });
});

/** What the exporter sends for a mesh service (exports.ts), as the importer sees it. */
function exported(td = 'peer.consul'): ExportedService {
  return {
    service: { name: 'api', namespace: 'default', partition: 'default' },
    instances: [
      {
        id: 'api-1',
        name: 'api',
        kind: 'typical',
        address: '10.0.0.1',
        port: 8080,
        meta: { version: 'v1' },
        health: 'passing',
        destinationServiceName: '',
      },
      {
        id: 'api-sidecar-proxy:203.0.113.7:443',
        name: 'api-sidecar-proxy',
        kind: 'connect-proxy',
        address: '203.0.113.7',
        port: 443,
        meta: {},
        health: 'passing',
        destinationServiceName: 'api',
        peerMeta: {
          sni: [peeredServiceSni(td, 'cluster-b', { name: 'api' })],
          spiffeId: [serviceSpiffeId(td, 'dc-a', { name: 'api' }), meshGatewaySpiffeId(td, 'dc-a')],
          protocol: 'http',
        },
      },
    ],
  };
}

describe('validateExportedService', () => {
  it("accepts what the exporter sends, inside the peer's trust domain", () => {
    expect(validateExportedService('api', exported(), 'peer.consul')).toEqual([]);
    // A typical instance registered without an address is exported with ''.
    const s = exported();
    const noAddress = { ...s, instances: [{ ...s.instances[0]!, address: '' }] };
    expect(validateExportedService('api', noAddress, 'peer.consul')).toEqual([]);
  });

  it('names every problem with its field path', () => {
    const s = exported();
    const [typical, sidecar] = s.instances as [
      ExportedService['instances'][0],
      ExportedService['instances'][0],
    ];
    const bad: ExportedService = {
      service: { name: 'API!', namespace: 'default', partition: '' },
      instances: [
        { ...typical, id: 'a b', address: 'not an address!', port: 70_000, health: 'great' },
        {
          ...sidecar,
          port: 0,
          meta: { 'consul-x': 'y' },
          peerMeta: {
            sni: ['api.default.default.cluster-b.external.other.consul'],
            spiffeId: [
              'spiffe://ours.consul/ns/default/dc/dc-a/svc/api',
              'spiffe://peer.consul/../x',
            ],
            protocol: 'udp',
          },
        },
        { ...typical, kind: 'terminating-gateway' },
        { ...typical },
      ],
    };
    expect(validateExportedService('api', bad, 'peer.consul').map((e) => e.field)).toEqual([
      'service.name',
      'resource_id',
      'instances[0].id',
      'instances[0].address',
      'instances[0].health',
      'instances[0].name',
      'instances[0].port',
      'instances[1].meta.consul-x',
      'instances[1].destination_service_name',
      'instances[1].port',
      'instances[1].peer_meta.sni[0]',
      'instances[1].peer_meta.spiffe_id[0]',
      'instances[1].peer_meta.spiffe_id[1]',
      'instances[1].peer_meta.protocol',
      'instances[2].kind',
      'instances[3].name',
      'instances[3].id',
    ]);
    const messages = validateExportedService('api', bad, 'peer.consul').map((e) => e.problem);
    expect(messages).toContain(
      '"spiffe://ours.consul/ns/default/dc/dc-a/svc/api" is outside the peer\'s trust domain peer.consul',
    );
    expect(messages).toContain(
      '"api.default.default.cluster-b.external.other.consul" is not API!.<namespace>.<partition>.<peer>.external.peer.consul',
    );
  });

  it('bounds the instance count, and a sidecar needs its PeerMeta', () => {
    const s = exported();
    const many = { ...s, instances: Array(importLimits.instances + 1).fill(s.instances[0]) };
    expect(validateExportedService('api', many, 'peer.consul')).toEqual([
      { field: 'instances', problem: 'more than 50000 instances' },
    ]);
    const noMeta = { ...s, instances: [{ ...s.instances[1]!, peerMeta: undefined }] };
    expect(validateExportedService('api', noMeta, 'peer.consul')).toEqual([
      { field: 'instances[0].peer_meta', problem: 'missing: a connect-proxy instance needs one' },
    ]);
  });

  it('a service name that is not a name never reaches a regular expression unescaped', () => {
    const s = exported();
    const weird = { ...s, service: { name: '(', namespace: '', partition: '' } };
    expect(() => validateExportedService('(', weird, 'peer.consul')).not.toThrow();
  });
});

describe('the other replicated resources', () => {
  it('the exported-services list: names, no repeats, at most 5,000', () => {
    const svc = (name: string) => ({ name, namespace: 'default', partition: 'default' });
    expect(validateExportedServiceList({ services: [svc('api'), svc('web')] })).toEqual([]);
    expect(validateExportedServiceList({ services: [svc('api'), svc('api'), svc('A')] })).toEqual([
      { field: 'services[1].name', problem: '"api" is listed twice' },
      {
        field: 'services[2].name',
        problem:
          '"A" is not allowed: 1-63 lowercase letters, digits or "-", starting and ending with a letter or digit',
      },
    ]);
    expect(validateExportedServiceList({ services: Array(5_001).fill(svc('api')) })).toEqual([
      { field: 'services', problem: 'more than 5000 services' },
    ]);
  });

  it('server addresses: host:port with an IP or hostname and a port 1-65535', () => {
    expect(
      validateServerAddresses({ addresses: ['10.0.0.1:8503', '[::1]:8503', 'peer.example:443'] }),
    ).toEqual([]);
    expect(
      validateServerAddresses({
        addresses: ['10.0.0.1:0', 'a b:1', '[nope]:1', 'x:99999', 'x'],
      }).map((e) => e.field),
    ).toEqual(['addresses[0]', 'addresses[1]', 'addresses[2]', 'addresses[3]', 'addresses[4]']);
  });

  it('a resource over 32 MiB (its chunks assembled) is refused before it is decoded', () => {
    const parsed = parseResponse({
      nonce: '1',
      resourceUrl: ResourceUrl.exportedService,
      resourceId: 'api',
      operation: Operation.OPERATION_UPSERT,
      resource: {
        typeUrl: ResourceUrl.exportedService,
        value: Buffer.alloc(importLimits.resourceBytes + 1),
      },
    });
    expect(parsed.ok).toBe(false);
    if (!parsed.ok)
      expect(parsed.error.message).toMatch(/more than the 33554432 a replicated resource/);
  });
});

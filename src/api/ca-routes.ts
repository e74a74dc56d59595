import type { FastifyInstance } from 'fastify';
import type { CaRoot, CaRoots, CertificateAuthority } from '../ca/index.js';
import { acceptJsonBodies } from './json-body.js';
import { anyone, operatorOnly, withAccess } from './route-access.js';

/** The part of the CA the HTTP API uses. */
export type CaRoutesSource = Pick<CertificateAuthority, 'roots' | 'rotate'>;

/** One root in Consul's `GET /v1/connect/ca/roots` shape (isthmus has no intermediates). */
export interface CaRootJson {
  readonly ID: string;
  readonly Name: string;
  readonly SerialNumber: number;
  readonly SigningKeyID: string;
  readonly NotBefore: string;
  readonly NotAfter: string;
  readonly RootCert: string;
  readonly IntermediateCerts: readonly string[];
  readonly Active: boolean;
  readonly CreateIndex: number;
  readonly ModifyIndex: number;
}

export interface CaRootsJson {
  readonly ActiveRootID: string;
  readonly TrustDomain: string;
  readonly Roots: readonly CaRootJson[];
}

export function caRootsJson(roots: CaRoots): CaRootsJson {
  return {
    ActiveRootID: roots.activeRootId,
    TrustDomain: roots.trustDomain,
    Roots: roots.roots.map(caRootJson),
  };
}

function caRootJson(root: CaRoot): CaRootJson {
  return {
    ID: root.id,
    Name: root.name ?? root.id,
    SerialNumber: root.serialNumber ?? 0,
    SigningKeyID: root.signingKeyId ?? '',
    NotBefore: root.notBefore.toISOString(),
    NotAfter: root.notAfter.toISOString(),
    RootCert: root.certPem,
    IntermediateCerts: [],
    Active: root.active,
    CreateIndex: root.createIndex ?? 0,
    ModifyIndex: root.modifyIndex ?? 0,
  };
}

/**
 * `GET /v1/connect/ca/roots` (public: trust anchors are not secrets) and `POST
 * /v1/connect/ca/rotate`, which starts a rotation and answers once its first phase is committed
 * (412 while another rotation is in progress). Consul rotates by changing the CA configuration;
 * isthmus has one built-in provider, so rotation is its own verb.
 */
export function registerCaRoutes(app: FastifyInstance, ca: CaRoutesSource): void {
  void app.register(async (scope) => {
    acceptJsonBodies(scope);
    scope.get('/v1/connect/ca/roots', withAccess(anyone), async () => caRootsJson(ca.roots()));
    scope.post('/v1/connect/ca/rotate', withAccess(operatorOnly), async () => {
      await ca.rotate();
      return {};
    });
  });
}

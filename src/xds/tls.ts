import * as grpc from '@grpc/grpc-js';
import { type CertificateAuthority, GrpcCertificates, type LeafIdentity } from '../ca/index.js';
import type { Logger } from '../log.js';
import { xdsServerName, xdsServerSpiffeId } from '../mesh/names.js';

/**
 * What a client of the xDS port needs to verify the server (docs/architecture.md §1, "The xDS
 * port"): the cluster's CA roots and the name the server's certificate carries.
 */
export interface XdsClientTls {
  /** PEM bundle of every root the cluster trusts now (two during a CA rotation), active first. */
  readonly caPem: string;
  readonly serverName: string;
}

export interface XdsServerTlsOptions {
  readonly ca: CertificateAuthority;
  readonly datacenter: string;
  /** DNS SANs beyond `xdsServerName` (`--xds-tls-san`): names operators dial the port by. */
  readonly extraSans?: readonly string[];
  readonly logger: Logger;
}

/**
 * The xDS port's TLS (issue 18): a CA leaf with DNS SANs `xdsServerName` plus the operator's, served
 * through grpc-js's certificate-provider server credentials, so a renewed leaf (renewal before
 * expiry, re-issue under a new root during a CA rotation) applies to new connections while
 * connected proxies keep their streams. No client certificate is asked for: proxies authenticate
 * with their token.
 */
export class XdsServerTls {
  private readonly certs = new GrpcCertificates();
  private unsubscribe: (() => void) | undefined;
  readonly identity: LeafIdentity;

  constructor(private readonly opts: XdsServerTlsOptions) {
    const extra = (opts.extraSans ?? []).filter((san) => san !== xdsServerName);
    this.identity = {
      spiffeId: xdsServerSpiffeId(opts.ca.trustDomain, opts.datacenter),
      dnsSans: [xdsServerName, ...new Set(extra)],
    };
  }

  /** Issues the first leaf and follows renewals; the credentials to bind the port with. */
  async start(): Promise<grpc.ServerCredentials> {
    const { ca, logger } = this.opts;
    this.certs.setIdentity(await ca.leaf(this.identity));
    this.unsubscribe ??= ca.subscribe((event) => {
      if (event.kind !== 'leaf-renewed' || event.leaf.spiffeId !== this.identity.spiffeId) return;
      this.certs.setIdentity(event.leaf);
      logger.info(
        { serial: event.leaf.serial, rootId: event.leaf.rootId },
        'xds server certificate renewed',
      );
    });
    return grpc.experimental.createCertificateProviderServerCredentials(this.certs, null, false);
  }

  /** The roots to trust now and the name to verify (what `isthmus envoy bootstrap` writes). */
  clientTls(): XdsClientTls {
    return xdsClientTlsOf(this.opts.ca);
  }

  stop(): void {
    this.unsubscribe?.();
    this.unsubscribe = undefined;
  }
}

/** Every root `ca` trusts now, active first, and the xDS server name. */
export function xdsClientTlsOf(ca: Pick<CertificateAuthority, 'roots'>): XdsClientTls {
  const pems = ca.roots().roots.map((r) => r.certPem.trimEnd());
  return { caPem: `${pems.join('\n')}\n`, serverName: xdsServerName };
}

/**
 * Channel credentials and options of an xDS client: TLS verifying `serverName` against `caPem`
 * whatever address is dialed (an IP, a load balancer's name), or plaintext when `tls` is undefined
 * (a server started with `--xds-plaintext`).
 */
export function xdsChannelCredentials(tls: XdsClientTls | undefined): {
  readonly credentials: grpc.ChannelCredentials;
  readonly options: grpc.ChannelOptions;
} {
  if (!tls) return { credentials: grpc.credentials.createInsecure(), options: {} };
  return {
    credentials: grpc.credentials.createSsl(Buffer.from(tls.caPem)),
    options: {
      'grpc.ssl_target_name_override': tls.serverName,
      'grpc.default_authority': tls.serverName,
    },
  };
}

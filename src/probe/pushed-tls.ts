/**
 * Node `tls` options derived only from the xDS resources a probe (XdsProbe) holds, read the way
 * Envoy reads them: a cluster's or listener's TLS transport socket names SDS secrets, and the
 * secrets carry the PEMs. Nothing here asks the CA, so a handshake built from these options proves
 * what was pushed, including SNI, SAN matchers, client-certificate requirement and TLS versions.
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import type { X509Certificate } from 'node:crypto';
import type { TypedExtensionConfig } from '../gen/envoy/config/core/v3/extension.js';
import type { SPIFFECertValidatorConfig } from '../gen/envoy/extensions/transport_sockets/tls/v3/tls_spiffe_validator_config.js';
import type { Cluster } from '../gen/envoy/config/cluster/v3/cluster.js';
import type { DataSource, TransportSocket } from '../gen/envoy/config/core/v3/base.js';
import type { Listener } from '../gen/envoy/config/listener/v3/listener.js';
import {
  SubjectAltNameMatcher_SanType,
  type TlsParameters,
  TlsParameters_TlsProtocol,
} from '../gen/envoy/extensions/transport_sockets/tls/v3/common.js';
import type { Secret } from '../gen/envoy/extensions/transport_sockets/tls/v3/secret.js';
import type {
  CommonTlsContext,
  DownstreamTlsContext,
  UpstreamTlsContext,
} from '../gen/envoy/extensions/transport_sockets/tls/v3/tls.js';
import { unpackAny } from '../proto-any.js';
import { TypeUrl } from '../xds/types.js';
import type { HeldConfig } from './xds-probe.js';

type TlsVersion = 'TLSv1' | 'TLSv1.1' | 'TLSv1.2' | 'TLSv1.3';

/** An Envoy upstream TLS context as a Node client: leaf, trusted roots, SNI and exact URI SANs. */
export interface ClientTls {
  readonly cert: string;
  readonly key: string;
  readonly ca: string;
  readonly servername: string;
  /**
   * Exact URI SANs, one of which the server certificate must carry (match_typed_subject_alt_names).
   */
  readonly sanMatchers: readonly string[];
  readonly minVersion: TlsVersion;
  readonly maxVersion: TlsVersion;
}

/** An Envoy downstream TLS context (sidecar public listener) as a Node server. */
export interface ServerTls {
  readonly cert: string;
  readonly key: string;
  readonly ca: string;
  readonly requestCert: true;
  readonly rejectUnauthorized: true;
  readonly minVersion: TlsVersion;
  readonly maxVersion: TlsVersion;
  /**
   * Envoy's SPIFFE validator (`envoy.tls.cert_validator.spiffe`): `ca` is the union of the bundles,
   * and the client's URI SAN trust domain must be one of these, with its certificate issued by a
   * root of that trust domain's own bundle.
   */
  readonly trustDomains?: readonly { readonly name: string; readonly pems: string }[];
}

/**
 * Envoy's TLS 1.2 default minimum, and its default maximum: TLS 1.2 for clients, 1.3 for servers.
 */
const nodeVersion: Record<number, TlsVersion | undefined> = {
  [TlsParameters_TlsProtocol.TLSv1_0]: 'TLSv1',
  [TlsParameters_TlsProtocol.TLSv1_1]: 'TLSv1.1',
  [TlsParameters_TlsProtocol.TLSv1_2]: 'TLSv1.2',
  [TlsParameters_TlsProtocol.TLSv1_3]: 'TLSv1.3',
};

function versions(
  params: TlsParameters | undefined,
  side: 'client' | 'server',
): { minVersion: TlsVersion; maxVersion: TlsVersion } {
  const pick = (v: TlsParameters_TlsProtocol | undefined, auto: TlsVersion): TlsVersion =>
    v === undefined || v === TlsParameters_TlsProtocol.TLS_AUTO
      ? auto
      : (nodeVersion[v] ?? fail(`unsupported TLS protocol version ${v}`));
  return {
    minVersion: pick(params?.tlsMinimumProtocolVersion, 'TLSv1.2'),
    maxVersion: pick(params?.tlsMaximumProtocolVersion, side === 'client' ? 'TLSv1.2' : 'TLSv1.3'),
  };
}

function fail(message: string): never {
  throw new Error(message);
}

function held<T>(envoy: HeldConfig, typeUrl: string, name: string, what: string): T {
  return (
    (envoy.get(typeUrl, name) as T | undefined) ?? fail(`${envoy.nodeId} holds no ${what} ${name}`)
  );
}

function tlsContextOf<T>(socket: TransportSocket | undefined, expected: string, where: string): T {
  if (socket?.configType?.$case !== 'typedConfig') fail(`${where} has no TLS transport socket`);
  const any = socket.configType.value;
  if (!any.typeUrl.endsWith(`/${expected}`))
    fail(`${where}: transport socket is ${any.typeUrl}, not ${expected}`);
  return unpackAny(any) as T;
}

/** The text of an inline DataSource (string or bytes), undefined for a file or env reference. */
export function inlineText(source: DataSource | undefined): string | undefined {
  switch (source?.specifier?.$case) {
    case 'inlineString':
      return source.specifier.value;
    case 'inlineBytes':
      return Buffer.from(source.specifier.value).toString('utf8');
    default:
      return undefined;
  }
}

function text(source: DataSource | undefined, where: string): string {
  return (
    inlineText(source) ??
    fail(`${where}: expected inline PEM data, got ${source?.specifier?.$case ?? 'nothing'}`)
  );
}

/** The leaf certificate and key of the context's one SDS certificate secret. */
function leafOf(
  envoy: HeldConfig,
  common: CommonTlsContext,
  where: string,
): { cert: string; key: string } {
  if (common.tlsCertificates.length > 0) fail(`${where}: inline tls_certificates instead of SDS`);
  if (common.tlsCertificateSdsSecretConfigs.length !== 1)
    fail(`${where}: ${common.tlsCertificateSdsSecretConfigs.length} SDS certificates, expected 1`);
  const name = common.tlsCertificateSdsSecretConfigs[0]!.name;
  const secret = held<Secret>(envoy, TypeUrl.secret, name, 'secret');
  if (secret.type?.$case !== 'tlsCertificate')
    fail(`secret ${name} is ${secret.type?.$case ?? 'empty'}, not a tls_certificate`);
  const c = secret.type.value;
  return {
    cert: text(c.certificateChain, `secret ${name} certificate_chain`),
    key: text(c.privateKey, `secret ${name} private_key`),
  };
}

/** The trusted CA bundle of a validation-context SDS secret. */
function rootsOf(envoy: HeldConfig, name: string): string {
  const secret = held<Secret>(envoy, TypeUrl.secret, name, 'secret');
  if (secret.type?.$case !== 'validationContext')
    fail(`secret ${name} is ${secret.type?.$case ?? 'empty'}, not a validation_context`);
  const pem = text(secret.type.value.trustedCa, `secret ${name} trusted_ca`);
  if (splitPems(pem).length === 0) fail(`secret ${name}: trusted_ca holds no certificate`);
  return pem;
}

/**
 * The client side of an upstream cluster: UpstreamTlsContext → SDS leaf, SDS roots, SNI, and the
 * exact URI SAN matchers of the combined validation context.
 */
export function clientFromUpstream(envoy: HeldConfig, clusterName: string): ClientTls {
  const where = `cluster ${clusterName}`;
  const cluster = held<Cluster>(envoy, TypeUrl.cluster, clusterName, 'cluster');
  const ctx = tlsContextOf<UpstreamTlsContext>(
    cluster.transportSocket,
    'envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext',
    where,
  );
  const common = ctx.commonTlsContext ?? fail(`${where}: no common_tls_context`);
  const validation = common.validationContextType;
  if (validation?.$case !== 'combinedValidationContext')
    fail(
      `${where}: validation is ${validation?.$case ?? 'missing'}, expected combined_validation_context`,
    );
  const { defaultValidationContext: defaults, validationContextSdsSecretConfig: sds } =
    validation.value;
  const sanMatchers = (defaults?.matchTypedSubjectAltNames ?? []).map((m, i) => {
    if (m.sanType !== SubjectAltNameMatcher_SanType.URI)
      fail(`${where}: SAN matcher ${i} is not of type URI`);
    if (m.matcher?.matchPattern?.$case !== 'exact' || m.matcher.ignoreCase)
      fail(`${where}: SAN matcher ${i} is not a case-sensitive exact match`);
    return m.matcher.matchPattern.value;
  });
  if (sanMatchers.length === 0)
    fail(`${where}: no SAN matcher, so any certificate of the trusted roots would be accepted`);
  return {
    ...leafOf(envoy, common, where),
    ca: rootsOf(envoy, sds?.name ?? fail(`${where}: no validation context SDS secret`)),
    servername: ctx.sni || fail(`${where}: no SNI`),
    sanMatchers,
    ...versions(common.tlsParams, 'client'),
  };
}

/**
 * The server side of a sidecar's public listener: its one TLS filter chain's DownstreamTlsContext →
 * SDS leaf and SDS roots; client certificates must be required.
 */
export function serverFromPublicListener(envoy: HeldConfig, listenerName: string): ServerTls {
  const listener = held<Listener>(envoy, TypeUrl.listener, listenerName, 'listener');
  const chains = listener.filterChains.filter((c) => c.transportSocket);
  if (chains.length !== 1)
    fail(
      `listener ${listenerName}: ${chains.length} filter chains with a transport socket, expected 1`,
    );
  const where = `listener ${listenerName}`;
  const ctx = tlsContextOf<DownstreamTlsContext>(
    chains[0]!.transportSocket,
    'envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext',
    where,
  );
  if (ctx.requireClientCertificate !== true) fail(`${where}: client certificates are not required`);
  const common = ctx.commonTlsContext ?? fail(`${where}: no common_tls_context`);
  const validation = common.validationContextType;
  let rootsSecret: string;
  if (validation?.$case === 'validationContext' && validation.value.customValidatorConfig) {
    return spiffeServer(
      envoy,
      common,
      spiffeTrustDomains(validation.value.customValidatorConfig, where),
      where,
    );
  }
  if (validation?.$case === 'validationContextSdsSecretConfig') {
    // The SPIFFE validator may come in the SDS secret (the public listener of an exported service).
    const name = validation.value.name;
    const secret = held<Secret>(envoy, TypeUrl.secret, name, 'secret');
    const custom =
      secret.type?.$case === 'validationContext'
        ? secret.type.value.customValidatorConfig
        : undefined;
    if (custom)
      return spiffeServer(envoy, common, spiffeTrustDomains(custom, `secret ${name}`), where);
    rootsSecret = name;
  } else if (
    validation?.$case === 'combinedValidationContext' &&
    validation.value.validationContextSdsSecretConfig
  ) {
    if ((validation.value.defaultValidationContext?.matchTypedSubjectAltNames.length ?? 0) > 0)
      fail(`${where}: SAN matchers on the server side are not modelled`);
    rootsSecret = validation.value.validationContextSdsSecretConfig.name;
  } else
    fail(
      `${where}: validation is ${validation?.$case ?? 'missing'}, expected an SDS validation context`,
    );
  return {
    ...leafOf(envoy, common, where),
    ca: rootsOf(envoy, rootsSecret),
    requestCert: true,
    rejectUnauthorized: true,
    ...versions(common.tlsParams, 'server'),
  };
}

function spiffeServer(
  envoy: HeldConfig,
  common: CommonTlsContext,
  trustDomains: { name: string; pems: string }[],
  where: string,
): ServerTls {
  return {
    ...leafOf(envoy, common, where),
    ca: trustDomains.map((t) => t.pems).join(''),
    trustDomains,
    requestCert: true,
    rejectUnauthorized: true,
    ...versions(common.tlsParams, 'server'),
  };
}

/** The trust domains and inline bundles of a SPIFFE validator config. */
function spiffeTrustDomains(
  config: TypedExtensionConfig,
  where: string,
): { name: string; pems: string }[] {
  if (config.name !== 'envoy.tls.cert_validator.spiffe')
    fail(`${where}: custom validator ${config.name} is not modelled`);
  const any = config.typedConfig ?? fail(`${where}: SPIFFE validator without typed_config`);
  const spiffe = unpackAny(any) as SPIFFECertValidatorConfig;
  if (spiffe.trustDomains.length === 0) fail(`${where}: SPIFFE validator with no trust domain`);
  return spiffe.trustDomains.map((t, i) => {
    const pems = text(t.trustBundle, `${where} trust_domains[${i}].trust_bundle`);
    if (splitPems(pems).length === 0) fail(`${where}: trust domain ${t.name} holds no certificate`);
    return { name: t.name, pems: pems.endsWith('\n') ? pems : `${pems}\n` };
  });
}

/** Every certificate in a PEM bundle, each as its own PEM block. */
export function splitPems(bundle: string): string[] {
  return bundle.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
}

/** The URI SANs of a certificate, read from its SAN extension (not from Node's display string). */
export function uriSans(cert: X509Certificate | Buffer | string | undefined): string[] {
  if (cert === undefined) return [];
  const parsed = new x509.X509Certificate(
    typeof cert === 'string' || Buffer.isBuffer(cert) ? cert : cert.raw,
  );
  const san = parsed.getExtension(x509.SubjectAlternativeNameExtension);
  return (san?.names.items ?? []).filter((n) => n.type === 'url').map((n) => n.value);
}

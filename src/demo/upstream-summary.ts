/**
 * What a sidecar received for one upstream, summarised for people: listener → cluster → endpoints
 * and the SDS secrets the cluster names. Certificates are described (SPIFFE ID or subject,
 * not-after); private keys are never read into the summary.
 */
import { X509Certificate } from 'node:crypto';
import type { Secret } from '../gen/envoy/extensions/transport_sockets/tls/v3/secret.js';
import type { DataSource } from '../gen/envoy/config/core/v3/base.js';
import { inlineText, splitPems, uriSans } from '../probe/pushed-tls.js';
import type { XdsProbe } from '../probe/xds-probe.js';
import { TypeUrl } from '../xds/types.js';

// biome-ignore lint/suspicious/noExplicitAny: Envoy-style JSON with Any expanded
type Json = any;

export interface SecretSummary {
  readonly name: string;
  readonly kind: 'tls_certificate' | 'validation_context' | 'other';
  /** One line per certificate: its SPIFFE ID (or subject) and not-after date. */
  readonly certificates: readonly string[];
}

export interface UpstreamSummary {
  readonly listener: { readonly name: string; readonly address: string; readonly cluster: string };
  readonly cluster: {
    readonly name: string;
    readonly type: string;
    readonly sni: string;
    readonly sanMatchers: readonly string[];
  };
  readonly endpoints: readonly string[];
  readonly secrets: readonly SecretSummary[];
}

const parse = (probe: XdsProbe, typeUrl: string, name: string): Json =>
  JSON.parse(probe.json(typeUrl, name) || 'null');

/**
 * The summary once everything the listener leads to is held, else a description of what is missing.
 */
export function summariseUpstream(probe: XdsProbe, listenerName: string): UpstreamSummary | string {
  const listener = parse(probe, TypeUrl.listener, listenerName);
  if (!listener) return `no listener ${listenerName}`;
  const sa = listener.address?.socketAddress ?? {};
  const tcp = listener.filterChains?.[0]?.filters?.find(
    (f: Json) => f.name === 'envoy.filters.network.tcp_proxy',
  );
  const clusterName: string | undefined = tcp?.typedConfig?.cluster;
  if (!clusterName) return `listener ${listenerName} has no tcp_proxy cluster`;
  const cluster = parse(probe, TypeUrl.cluster, clusterName);
  if (!cluster) return `no cluster ${clusterName}`;
  const tls = cluster.transportSocket?.typedConfig ?? {};
  const common = tls.commonTlsContext ?? {};
  const secretNames: string[] = [
    ...(common.tlsCertificateSdsSecretConfigs ?? []).map((s: Json) => s.name),
    common.combinedValidationContext?.validationContextSdsSecretConfig?.name,
  ].filter((n): n is string => typeof n === 'string');
  const secrets = secretNames.map((n) => summariseSecret(probe, n));
  const missing = secretNames.filter((_n, i) => secrets[i] === undefined);
  if (missing.length > 0) return `secrets ${missing.join(', ')} not received yet`;
  const endpoints = (parse(probe, TypeUrl.endpoint, clusterName)?.endpoints ?? []).flatMap(
    (l: Json) =>
      (l.lbEndpoints ?? []).map(
        (lb: Json) =>
          `${lb.endpoint.address.socketAddress.address}:${lb.endpoint.address.socketAddress.portValue}`,
      ),
  );
  if (endpoints.length === 0) return `no endpoints for ${clusterName} yet`;
  return {
    listener: {
      name: listenerName,
      address: `${sa.address}:${sa.portValue}`,
      cluster: clusterName,
    },
    cluster: {
      name: clusterName,
      type: cluster.type ?? 'STATIC',
      sni: tls.sni ?? '',
      sanMatchers: (
        common.combinedValidationContext?.defaultValidationContext?.matchTypedSubjectAltNames ?? []
      ).map((m: Json) => m.matcher?.exact ?? JSON.stringify(m.matcher)),
    },
    endpoints,
    secrets: secrets as SecretSummary[],
  };
}

function summariseSecret(probe: XdsProbe, name: string): SecretSummary | undefined {
  const secret = probe.get(TypeUrl.secret, name) as Secret | undefined;
  if (!secret) return undefined;
  switch (secret.type?.$case) {
    case 'tlsCertificate':
      return {
        name,
        kind: 'tls_certificate',
        certificates: describePems(pemOf(secret.type.value.certificateChain)).slice(0, 1),
      };
    case 'validationContext':
      return {
        name,
        kind: 'validation_context',
        certificates: describePems(pemOf(secret.type.value.trustedCa)),
      };
    default:
      return { name, kind: 'other', certificates: [] };
  }
}

function pemOf(source: DataSource | undefined): string {
  return inlineText(source) ?? '';
}

function describePems(bundle: string): string[] {
  return splitPems(bundle).map((pem) => {
    const cert = new X509Certificate(pem);
    const id =
      uriSans(pem).find((u) => u.startsWith('spiffe://')) ?? cert.subject.replace(/\n/g, ', ');
    return `${id}, not after ${new Date(cert.validTo).toISOString()}`;
  });
}

/** The summary as indented lines for the tour (no key material, ever). */
export function formatUpstreamSummary(s: UpstreamSummary): string[] {
  const lines = [
    `listener   ${s.listener.name} on ${s.listener.address} → cluster ${s.listener.cluster}`,
    `cluster    type ${s.cluster.type}, SNI ${s.cluster.sni}`,
    ...s.cluster.sanMatchers.map(
      (m, i) => `${i === 0 ? '           SAN matchers ' : '                        '}${m}`,
    ),
    `endpoints  ${s.endpoints.join(', ')}  (A's mesh gateway, WAN address)`,
  ];
  for (const secret of s.secrets) {
    lines.push(`secret     ${secret.name} (${secret.kind})`);
    for (const c of secret.certificates) lines.push(`             ${c}`);
    if (secret.kind === 'tls_certificate') lines.push('             private key: [redacted]');
  }
  return lines;
}

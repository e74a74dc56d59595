/**
 * Node `tls` options derived only from the xDS resources an EnvoyLike holds, read the way Envoy
 * reads them: a cluster's or listener's TLS transport socket names SDS secrets, and the secrets
 * carry the PEMs. Nothing here asks the CA, so a handshake built from these options proves what
 * was pushed, including SNI, SAN matchers, client-certificate requirement and TLS versions.
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { X509Certificate as NodeX509Certificate, type X509Certificate } from 'node:crypto';
import type { TypedExtensionConfig } from '../../src/gen/envoy/config/core/v3/extension.js';
import type { SPIFFECertValidatorConfig } from '../../src/gen/envoy/extensions/transport_sockets/tls/v3/tls_spiffe_validator_config.js';
import tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import type { Cluster } from '../../src/gen/envoy/config/cluster/v3/cluster.js';
import type { DataSource, TransportSocket } from '../../src/gen/envoy/config/core/v3/base.js';
import type { Listener } from '../../src/gen/envoy/config/listener/v3/listener.js';
import {
  SubjectAltNameMatcher_SanType,
  type TlsParameters,
  TlsParameters_TlsProtocol,
} from '../../src/gen/envoy/extensions/transport_sockets/tls/v3/common.js';
import type { Secret } from '../../src/gen/envoy/extensions/transport_sockets/tls/v3/secret.js';
import type { CommonTlsContext, DownstreamTlsContext, UpstreamTlsContext } from '../../src/gen/envoy/extensions/transport_sockets/tls/v3/tls.js';
import { unpackAny } from '../../src/xds/any.js';
import { TypeUrl } from '../../src/xds/types.js';
import type { EnvoyLike } from './envoy-like.js';
import { withDeadline } from './wait.js';

type TlsVersion = 'TLSv1' | 'TLSv1.1' | 'TLSv1.2' | 'TLSv1.3';

/** An Envoy upstream TLS context as a Node client: leaf, trusted roots, SNI and exact URI SANs. */
export interface ClientTls {
  readonly cert: string;
  readonly key: string;
  readonly ca: string;
  readonly servername: string;
  /** Exact URI SANs, one of which the server certificate must carry (match_typed_subject_alt_names). */
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

export type HandshakeResult =
  | {
      readonly ok: true;
      /** URI SANs of the certificate the client presented, as the server saw them. */
      readonly serverSawClientUris: readonly string[];
      /** URI SANs of the certificate the server presented, as the client saw them. */
      readonly clientSawServerUris: readonly string[];
      readonly protocol: string | null;
    }
  | { readonly ok: false; readonly error: string; readonly clientError?: string; readonly serverError?: string };

/** Envoy's TLS 1.2 default minimum, and its default maximum: TLS 1.2 for clients, 1.3 for servers. */
const nodeVersion: Record<number, TlsVersion | undefined> = {
  [TlsParameters_TlsProtocol.TLSv1_0]: 'TLSv1',
  [TlsParameters_TlsProtocol.TLSv1_1]: 'TLSv1.1',
  [TlsParameters_TlsProtocol.TLSv1_2]: 'TLSv1.2',
  [TlsParameters_TlsProtocol.TLSv1_3]: 'TLSv1.3',
};

function versions(params: TlsParameters | undefined, side: 'client' | 'server'): { minVersion: TlsVersion; maxVersion: TlsVersion } {
  const pick = (v: TlsParameters_TlsProtocol | undefined, auto: TlsVersion): TlsVersion =>
    v === undefined || v === TlsParameters_TlsProtocol.TLS_AUTO ? auto : (nodeVersion[v] ?? fail(`unsupported TLS protocol version ${v}`));
  return {
    minVersion: pick(params?.tlsMinimumProtocolVersion, 'TLSv1.2'),
    maxVersion: pick(params?.tlsMaximumProtocolVersion, side === 'client' ? 'TLSv1.2' : 'TLSv1.3'),
  };
}

function fail(message: string): never {
  throw new Error(message);
}

function held<T>(envoy: EnvoyLike, typeUrl: string, name: string, what: string): T {
  return (envoy.get(typeUrl, name) as T | undefined) ?? fail(`${envoy.nodeId} holds no ${what} ${name}`);
}

function tlsContextOf<T>(socket: TransportSocket | undefined, expected: string, where: string): T {
  if (socket?.configType?.$case !== 'typedConfig') fail(`${where} has no TLS transport socket`);
  const any = socket.configType.value;
  if (!any.typeUrl.endsWith(`/${expected}`)) fail(`${where}: transport socket is ${any.typeUrl}, not ${expected}`);
  return unpackAny(any) as T;
}

function text(source: DataSource | undefined, where: string): string {
  switch (source?.specifier?.$case) {
    case 'inlineString':
      return source.specifier.value;
    case 'inlineBytes':
      return Buffer.from(source.specifier.value).toString('utf8');
    default:
      return fail(`${where}: expected inline PEM data, got ${source?.specifier?.$case ?? 'nothing'}`);
  }
}

/** The leaf certificate and key of the context's one SDS certificate secret. */
function leafOf(envoy: EnvoyLike, common: CommonTlsContext, where: string): { cert: string; key: string } {
  if (common.tlsCertificates.length > 0) fail(`${where}: inline tls_certificates instead of SDS`);
  if (common.tlsCertificateSdsSecretConfigs.length !== 1) fail(`${where}: ${common.tlsCertificateSdsSecretConfigs.length} SDS certificates, expected 1`);
  const name = common.tlsCertificateSdsSecretConfigs[0]!.name;
  const secret = held<Secret>(envoy, TypeUrl.secret, name, 'secret');
  if (secret.type?.$case !== 'tlsCertificate') fail(`secret ${name} is ${secret.type?.$case ?? 'empty'}, not a tls_certificate`);
  const c = secret.type.value;
  return { cert: text(c.certificateChain, `secret ${name} certificate_chain`), key: text(c.privateKey, `secret ${name} private_key`) };
}

/** The trusted CA bundle of a validation-context SDS secret. */
function rootsOf(envoy: EnvoyLike, name: string): string {
  const secret = held<Secret>(envoy, TypeUrl.secret, name, 'secret');
  if (secret.type?.$case !== 'validationContext') fail(`secret ${name} is ${secret.type?.$case ?? 'empty'}, not a validation_context`);
  const pem = text(secret.type.value.trustedCa, `secret ${name} trusted_ca`);
  if (splitPems(pem).length === 0) fail(`secret ${name}: trusted_ca holds no certificate`);
  return pem;
}

/**
 * The client side of an upstream cluster: UpstreamTlsContext → SDS leaf, SDS roots, SNI, and the
 * exact URI SAN matchers of the combined validation context.
 */
export function clientFromUpstream(envoy: EnvoyLike, clusterName: string): ClientTls {
  const where = `cluster ${clusterName}`;
  const cluster = held<Cluster>(envoy, TypeUrl.cluster, clusterName, 'cluster');
  const ctx = tlsContextOf<UpstreamTlsContext>(cluster.transportSocket, 'envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext', where);
  const common = ctx.commonTlsContext ?? fail(`${where}: no common_tls_context`);
  const validation = common.validationContextType;
  if (validation?.$case !== 'combinedValidationContext') fail(`${where}: validation is ${validation?.$case ?? 'missing'}, expected combined_validation_context`);
  const { defaultValidationContext: defaults, validationContextSdsSecretConfig: sds } = validation.value;
  const sanMatchers = (defaults?.matchTypedSubjectAltNames ?? []).map((m, i) => {
    if (m.sanType !== SubjectAltNameMatcher_SanType.URI) fail(`${where}: SAN matcher ${i} is not of type URI`);
    if (m.matcher?.matchPattern?.$case !== 'exact' || m.matcher.ignoreCase) fail(`${where}: SAN matcher ${i} is not a case-sensitive exact match`);
    return m.matcher.matchPattern.value;
  });
  if (sanMatchers.length === 0) fail(`${where}: no SAN matcher, so any certificate of the trusted roots would be accepted`);
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
export function serverFromPublicListener(envoy: EnvoyLike, listenerName: string): ServerTls {
  const listener = held<Listener>(envoy, TypeUrl.listener, listenerName, 'listener');
  const chains = listener.filterChains.filter((c) => c.transportSocket);
  if (chains.length !== 1) fail(`listener ${listenerName}: ${chains.length} filter chains with a transport socket, expected 1`);
  const where = `listener ${listenerName}`;
  const ctx = tlsContextOf<DownstreamTlsContext>(chains[0]!.transportSocket, 'envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext', where);
  if (ctx.requireClientCertificate !== true) fail(`${where}: client certificates are not required`);
  const common = ctx.commonTlsContext ?? fail(`${where}: no common_tls_context`);
  const validation = common.validationContextType;
  let rootsSecret: string;
  if (validation?.$case === 'validationContext' && validation.value.customValidatorConfig) {
    const trustDomains = spiffeTrustDomains(validation.value.customValidatorConfig, where);
    return {
      ...leafOf(envoy, common, where),
      ca: trustDomains.map((t) => t.pems).join(''),
      trustDomains,
      requestCert: true,
      rejectUnauthorized: true,
      ...versions(common.tlsParams, 'server'),
    };
  }
  if (validation?.$case === 'validationContextSdsSecretConfig') rootsSecret = validation.value.name;
  else if (validation?.$case === 'combinedValidationContext' && validation.value.validationContextSdsSecretConfig) {
    if ((validation.value.defaultValidationContext?.matchTypedSubjectAltNames.length ?? 0) > 0) fail(`${where}: SAN matchers on the server side are not modelled`);
    rootsSecret = validation.value.validationContextSdsSecretConfig.name;
  } else fail(`${where}: validation is ${validation?.$case ?? 'missing'}, expected an SDS validation context`);
  return {
    ...leafOf(envoy, common, where),
    ca: rootsOf(envoy, rootsSecret),
    requestCert: true,
    rejectUnauthorized: true,
    ...versions(common.tlsParams, 'server'),
  };
}

/** The trust domains and inline bundles of a SPIFFE validator config. */
function spiffeTrustDomains(config: TypedExtensionConfig, where: string): { name: string; pems: string }[] {
  if (config.name !== 'envoy.tls.cert_validator.spiffe') fail(`${where}: custom validator ${config.name} is not modelled`);
  const any = config.typedConfig ?? fail(`${where}: SPIFFE validator without typed_config`);
  const spiffe = unpackAny(any) as SPIFFECertValidatorConfig;
  if (spiffe.trustDomains.length === 0) fail(`${where}: SPIFFE validator with no trust domain`);
  return spiffe.trustDomains.map((t, i) => {
    const pems = text(t.trustBundle, `${where} trust_domains[${i}].trust_bundle`);
    if (splitPems(pems).length === 0) fail(`${where}: trust domain ${t.name} holds no certificate`);
    return { name: t.name, pems: pems.endsWith('\n') ? pems : `${pems}\n` };
  });
}

/**
 * The SPIFFE validator's check after chain verification against the union: the certificate's
 * trust domain is configured and a root of that trust domain's bundle issued it.
 */
function spiffeCheck(trustDomains: readonly { name: string; pems: string }[], cert: X509Certificate): string | undefined {
  const uris = uriSans(cert).filter((u) => u.startsWith('spiffe://'));
  if (uris.length !== 1) return `client certificate has ${uris.length} SPIFFE URI SANs, expected 1`;
  const td = new URL(uris[0]!).host;
  const entry = trustDomains.find((t) => t.name === td);
  if (!entry) return `trust domain ${td} is not one of ${JSON.stringify(trustDomains.map((t) => t.name))}`;
  const issued = splitPems(entry.pems).some((pem) => {
    const root = new NodeX509Certificate(pem);
    return cert.checkIssued(root) && cert.verify(root.publicKey);
  });
  return issued ? undefined : `client certificate of ${td} was not issued by that trust domain's bundle`;
}

/** Every certificate in a PEM bundle, each as its own PEM block. */
export function splitPems(bundle: string): string[] {
  return bundle.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
}

/** The URI SANs of a certificate, read from its SAN extension (not from Node's display string). */
export function uriSans(cert: X509Certificate | Buffer | string | undefined): string[] {
  if (cert === undefined) return [];
  const parsed = new x509.X509Certificate(typeof cert === 'string' || Buffer.isBuffer(cert) ? cert : cert.raw);
  const san = parsed.getExtension(x509.SubjectAlternativeNameExtension);
  return (san?.names.items ?? []).filter((n) => n.type === 'url').map((n) => n.value);
}

/** Envoy's match_typed_subject_alt_names for URI matchers: some URI SAN equals some matcher exactly. */
function checkSans(matchers: readonly string[]) {
  return (_host: string, cert: tls.PeerCertificate): Error | undefined => {
    const uris = cert.raw ? uriSans(cert.raw) : [];
    if (uris.some((u) => matchers.includes(u))) return undefined;
    return new Error(`server URI SANs ${JSON.stringify(uris)} match none of the SAN matchers ${JSON.stringify(matchers)}`);
  };
}

/**
 * One mutual-TLS connection on 127.0.0.1 between a Node server with `server`'s options and a Node
 * client with `client`'s. Success means the handshake completed on both sides and the server's reply
 * (sent only once it accepted the client) reached the client: with TLS 1.3 the client finishes its
 * handshake before the server has judged the client certificate, so the handshake alone proves
 * nothing. Everything is closed before it resolves; each side gets at most `timeoutMs`.
 */
export async function handshake(client: ClientTls, server: ServerTls, timeoutMs = 5_000): Promise<HandshakeResult> {
  const srv = await listenTls(server);
  try {
    const outcome = await withDeadline(connect(client, srv.port, srv.sockets), { timeoutMs, what: 'the TLS client to finish' }).catch(
      (err: Error) => ({ error: err.message }) as const,
    );
    // The server's verdict on the client certificate (or the disconnect) follows promptly.
    await withDeadline(srv.done, { timeoutMs, what: 'the TLS server to finish' }).catch(() => undefined);
    const { saw, error: serverError } = srv.verdict();
    const serverPart = serverError === undefined ? {} : { serverError };
    if ('error' in outcome) {
      const error = serverError === undefined ? `client: ${outcome.error}` : `client: ${outcome.error}; server: ${serverError}`;
      return { ok: false, error, clientError: outcome.error, ...serverPart };
    }
    if (saw === undefined || outcome.reply !== acceptedReply(saw)) {
      return { ok: false, error: `the server did not accept the client (reply ${JSON.stringify(outcome.reply)}): ${serverError ?? 'no reason given'}`, ...serverPart };
    }
    return { ok: true, serverSawClientUris: saw, clientSawServerUris: outcome.serverUris, protocol: outcome.protocol };
  } finally {
    await srv.close();
  }
}

const acceptedReply = (clientUris: readonly string[]) => `accepted ${JSON.stringify(clientUris)}`;

interface TlsServerUnderTest {
  readonly port: number;
  /** Every socket of the connection, both sides, destroyed by `close`. */
  readonly sockets: Set<{ destroy(): void }>;
  /** Resolves once the server accepted or refused the connection, or it closed. */
  readonly done: Promise<void>;
  verdict(): { saw: string[] | undefined; error: string | undefined };
  close(): Promise<void>;
}

/** A TLS server on 127.0.0.1:0 that answers an accepted client with the URI SANs it presented. */
async function listenTls(server: ServerTls): Promise<TlsServerUnderTest> {
  const sockets = new Set<{ destroy(): void }>();
  let saw: string[] | undefined;
  let error: string | undefined;
  let finish!: () => void;
  const done = new Promise<void>((resolve) => (finish = resolve));
  // Node's own rejectUnauthorized destroys an unauthorized client's socket after the handshake
  // without saying why; doing the same check here keeps the semantics and records the reason.
  const { rejectUnauthorized, trustDomains, ...options } = server;
  const srv = tls.createServer({ ...options, rejectUnauthorized: false }, (socket) => {
    socket.on('error', () => undefined);
    const spiffeError = trustDomains && socket.authorized ? spiffeCheck(trustDomains, socket.getPeerX509Certificate()!) : undefined;
    if (rejectUnauthorized && !socket.authorized) {
      error = `client certificate rejected: ${String(socket.authorizationError)}`;
      socket.destroy();
    } else if (spiffeError) {
      error = `client certificate rejected by the SPIFFE validator: ${spiffeError}`;
      socket.destroy();
    } else {
      saw = uriSans(socket.getPeerX509Certificate());
      socket.end(acceptedReply(saw));
    }
    finish();
  });
  srv.on('connection', (s) => {
    sockets.add(s);
    // After the TLS layer's own events for this connection, which carry the reason.
    s.once('close', () => setImmediate(finish));
  });
  srv.on('tlsClientError', (err) => {
    error ??= err.message;
    finish();
  });
  await new Promise<void>((resolve, reject) => srv.once('error', reject).listen(0, '127.0.0.1', resolve));
  return {
    port: (srv.address() as AddressInfo).port,
    sockets,
    done,
    verdict: () => ({ saw, error }),
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => srv.close(() => resolve()));
    },
  };
}

type ClientOutcome = { readonly reply: string; readonly serverUris: string[]; readonly protocol: string | null } | { readonly error: string };

function connect(client: ClientTls, port: number, sockets: Set<{ destroy(): void }>): Promise<ClientOutcome> {
  return new Promise((resolve) => {
    const { sanMatchers, ...options } = client;
    const socket = tls.connect({ ...options, host: '127.0.0.1', port, checkServerIdentity: checkSans(sanMatchers) });
    sockets.add(socket);
    let reply = '';
    let serverUris: string[] = [];
    let protocol: string | null = null;
    socket.on('secureConnect', () => {
      serverUris = uriSans(socket.getPeerX509Certificate());
      protocol = socket.getProtocol();
    });
    socket.setEncoding('utf8').on('data', (chunk: string) => (reply += chunk));
    socket.on('error', (err) => resolve({ error: err.message }));
    socket.on('end', () => resolve({ reply, serverUris, protocol }));
    socket.on('close', () => resolve({ error: `connection closed before the server's reply (got ${JSON.stringify(reply)})` }));
  });
}

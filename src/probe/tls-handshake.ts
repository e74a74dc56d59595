/**
 * Real mutual-TLS handshakes between Node endpoints configured from pushed xDS (see pushed-tls.ts),
 * checked the way Envoy checks: the client's exact URI SAN matchers, the server's required client
 * certificate and, when configured, Envoy's SPIFFE validator.
 */
import { X509Certificate as NodeX509Certificate, type X509Certificate } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import { type Result, err, ok } from '../result.js';
import { withDeadline } from './deadline.js';
import { type ClientTls, type ServerTls, splitPems, uriSans } from './pushed-tls.js';

export interface Handshake {
  /** URI SANs of the certificate the client presented, as the server saw them. */
  readonly serverSawClientUris: readonly string[];
  /** URI SANs of the certificate the server presented, as the client saw them. */
  readonly clientSawServerUris: readonly string[];
  readonly protocol: string | null;
}

export interface HandshakeFailure {
  /** Both ends' reasons in one line. */
  readonly message: string;
  readonly clientError?: string;
  readonly serverError?: string;
}

export type HandshakeResult = Result<Handshake, HandshakeFailure>;

/**
 * The SPIFFE validator's check after chain verification against the union: the certificate's
 * trust domain is configured and a root of that trust domain's bundle issued it.
 */
function spiffeCheck(
  trustDomains: readonly { name: string; pems: string }[],
  cert: X509Certificate,
): string | undefined {
  const uris = uriSans(cert).filter((u) => u.startsWith('spiffe://'));
  if (uris.length !== 1) return `client certificate has ${uris.length} SPIFFE URI SANs, expected 1`;
  const td = new URL(uris[0]!).host;
  const entry = trustDomains.find((t) => t.name === td);
  if (!entry)
    return `trust domain ${td} is not one of ${JSON.stringify(trustDomains.map((t) => t.name))}`;
  const issued = splitPems(entry.pems).some((pem) => {
    const root = new NodeX509Certificate(pem);
    return cert.checkIssued(root) && cert.verify(root.publicKey);
  });
  return issued
    ? undefined
    : `client certificate of ${td} was not issued by that trust domain's bundle`;
}

/**
 * Envoy's match_typed_subject_alt_names for URI matchers: some URI SAN equals some matcher exactly.
 */
function checkSans(matchers: readonly string[]) {
  return (_host: string, cert: tls.PeerCertificate): Error | undefined => {
    const uris = cert.raw ? uriSans(cert.raw) : [];
    if (uris.some((u) => matchers.includes(u))) return undefined;
    return new Error(
      `server URI SANs ${JSON.stringify(uris)} match none of the SAN matchers ${JSON.stringify(matchers)}`,
    );
  };
}

/**
 * One mutual-TLS connection on 127.0.0.1 between a Node server with `server`'s options and a Node
 * client with `client`'s. Success means the handshake completed on both sides and the server's
 * reply (sent only once it accepted the client) reached the client: with TLS 1.3 the client
 * finishes its handshake before the server has judged the client certificate, so the handshake
 * alone proves nothing. Everything is closed before it resolves; each side gets at most
 * `timeoutMs`.
 */
export async function handshake(
  client: ClientTls,
  server: ServerTls,
  timeoutMs = 5_000,
): Promise<HandshakeResult> {
  const acceptor = tlsAcceptor(server);
  try {
    await new Promise<void>((resolve, reject) =>
      acceptor.server.once('error', reject).listen(0, '127.0.0.1', resolve),
    );
    return await handshakeVia(
      client,
      { host: '127.0.0.1', port: (acceptor.server.address() as AddressInfo).port },
      acceptor,
      timeoutMs,
    );
  } finally {
    await acceptor.close();
  }
}

/**
 * Like `handshake`, but the client dials `target` (a gateway or forwarder in between, say) and the
 * connection must arrive at `acceptor`, which the caller feeds (listening, or by emitting
 * 'connection' with sockets it accepted elsewhere) and closes.
 */
export async function handshakeVia(
  client: ClientTls,
  target: { host: string; port: number },
  acceptor: TlsAcceptor,
  timeoutMs = 5_000,
): Promise<HandshakeResult> {
  const outcome = await withDeadline(dialTls(client, target, acceptor.sockets), {
    timeoutMs,
    what: 'the TLS client to finish',
  }).catch((e: Error): ClientOutcome => err(e.message));
  // The server's verdict on the client certificate (or the disconnect) follows promptly.
  await withDeadline(acceptor.done, { timeoutMs, what: 'the TLS server to finish' }).catch(
    () => undefined,
  );
  const { saw, error: serverError } = acceptor.verdict();
  const serverPart = serverError === undefined ? {} : { serverError };
  if (!outcome.ok) {
    const message =
      serverError === undefined
        ? `client: ${outcome.error}`
        : `client: ${outcome.error}; server: ${serverError}`;
    return err({ message, clientError: outcome.error, ...serverPart });
  }
  const { reply, serverUris, protocol } = outcome.value;
  if (saw === undefined || reply !== acceptedReply(saw)) {
    return err({
      message: `the server did not accept the client (reply ${JSON.stringify(reply)}): ${serverError ?? 'no reason given'}`,
      ...serverPart,
    });
  }
  return ok({ serverSawClientUris: saw, clientSawServerUris: serverUris, protocol });
}

const acceptedReply = (clientUris: readonly string[]) => `accepted ${JSON.stringify(clientUris)}`;

/**
 * The server end of one handshake: judges the first client and answers an accepted one with the URI
 * SANs it presented.
 */
export interface TlsAcceptor {
  /** Not listening: listen on it, or emit 'connection' with an accepted socket. */
  readonly server: tls.Server;
  /** Every socket of the connection, both sides, destroyed by `close`. */
  readonly sockets: Set<{ destroy(): void }>;
  /** Resolves once the server accepted or refused the connection, or it closed. */
  readonly done: Promise<void>;
  verdict(): { saw: string[] | undefined; error: string | undefined };
  close(): Promise<void>;
}

export function tlsAcceptor(server: ServerTls): TlsAcceptor {
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
    const spiffeError =
      trustDomains && socket.authorized
        ? spiffeCheck(trustDomains, socket.getPeerX509Certificate()!)
        : undefined;
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
  srv.on('connection', (s: { destroy(): void; once(event: 'close', fn: () => void): void }) => {
    sockets.add(s);
    // After the TLS layer's own events for this connection, which carry the reason.
    s.once('close', () => setImmediate(finish));
  });
  srv.on('tlsClientError', (err) => {
    error ??= err.message;
    finish();
  });
  return {
    server: srv,
    sockets,
    done,
    verdict: () => ({ saw, error }),
    close: async () => {
      for (const s of sockets) s.destroy();
      if (srv.listening) await new Promise<void>((resolve) => srv.close(() => resolve()));
    },
  };
}

/** What the client got back, or why it got nothing. */
type ClientOutcome = Result<
  { readonly reply: string; readonly serverUris: string[]; readonly protocol: string | null },
  string
>;

function dialTls(
  client: ClientTls,
  target: { host: string; port: number },
  sockets: Set<{ destroy(): void }>,
): Promise<ClientOutcome> {
  return new Promise((resolve) => {
    const { sanMatchers, ...options } = client;
    const socket = tls.connect({
      ...options,
      host: target.host,
      port: target.port,
      checkServerIdentity: checkSans(sanMatchers),
    });
    sockets.add(socket);
    let reply = '';
    let serverUris: string[] = [];
    let protocol: string | null = null;
    socket.on('secureConnect', () => {
      serverUris = uriSans(socket.getPeerX509Certificate());
      protocol = socket.getProtocol();
    });
    socket.setEncoding('utf8').on('data', (chunk: string) => (reply += chunk));
    socket.on('error', (e) => resolve(err(e.message)));
    socket.on('end', () => resolve(ok({ reply, serverUris, protocol })));
    socket.on('close', () =>
      resolve(err(`connection closed before the server's reply (got ${JSON.stringify(reply)})`)),
    );
  });
}

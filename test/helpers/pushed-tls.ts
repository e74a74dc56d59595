/**
 * Real TLS handshakes from pushed config: the logic lives in src/probe (also used by `isthmus
 * demo`); tests keep importing it from here.
 */
export { clientFromUpstream, serverFromPublicListener, splitPems, uriSans, type ClientTls, type ServerTls } from '../../src/probe/pushed-tls.js';
export { handshake, handshakeVia, tlsAcceptor, type HandshakeResult, type TlsAcceptor } from '../../src/probe/tls-handshake.js';

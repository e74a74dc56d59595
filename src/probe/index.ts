/** A diagnostic xDS client (subscribes like Envoy) and real TLS from the config it receives. */
export { withDeadline, type DeadlineOptions } from './deadline.js';
export { adsClient, connectDelta, DeltaClient, XdsStreamClient, NoResponseError, type ClientOptions, type Received, type ReceivedResource } from './delta-client.js';
export { XdsProbe, type Config, type HeldConfig } from './xds-probe.js';
export { clientFromUpstream, serverFromPublicListener, splitPems, uriSans, type ClientTls, type ServerTls } from './pushed-tls.js';
export { handshake, handshakeVia, tlsAcceptor, type HandshakeResult, type TlsAcceptor } from './tls-handshake.js';

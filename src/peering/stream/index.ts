/** The peering replication stream engine (docs/architecture.md §6 "Stream"), both ends. */
export {
  StreamAcceptor,
  type AcceptedPeer,
  type AcceptorOptions,
  type PeerBinding,
  type StreamCall,
} from './acceptor.js';
export { backoffDelay, defaultBackoff, type BackoffOptions } from './backoff.js';
export {
  dialStream,
  StreamDialer,
  type DialOptions,
  type DialTarget,
  type StopOptions,
} from './dialer.js';
export {
  allResourceUrls,
  exportsOf,
  importsOf,
  isResourceUrl,
  ResourceUrl,
  type StreamRole,
} from './resources.js';
export {
  PeerStreamSession,
  type SessionEnd,
  type SessionOptions,
  type SessionStats,
  type StreamTransport,
} from './session.js';
export {
  certificateChainsTo,
  dialerChannelOptions,
  dialerCredentials,
  peerCertificateOf,
  peerIntermediatesOf,
  dialerMetadata,
  PeeringServerCredentials,
  requireDnsSan,
  type DialerTlsOptions,
  type PeeringServerTlsOptions,
} from './tls.js';
export {
  defaultTimings,
  type NackDetail,
  type OpenVerdict,
  type ReplicatedResource,
  type ResourceChange,
  type ResourceSink,
  type ResourceSource,
  type StreamAuthority,
  type StreamObserver,
  type StreamOpen,
  type StreamTimings,
} from './types.js';

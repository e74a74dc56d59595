export type {
  CaEvent,
  CaRoot,
  CaRoots,
  CertificateAuthority,
  Leaf,
  LeafIdentity,
} from './types.js';
export { type CaOptions, defaultLeafTtlMs, defaultPhaseMs, openCa } from './built-in-ca.js';
export { GrpcCertificates } from './grpc-certificates.js';

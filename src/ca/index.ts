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
export { createIntermediateRequest } from './intermediate.js';
export {
  type JoinedCa,
  type ReplicatedRoots,
  hasIntermediate,
  openSecondaryCa,
  type FederatedCa,
  saveJoinedCa,
} from './secondary-ca.js';

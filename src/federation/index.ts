export { joinPrimary } from './join.js';
export { localFederationState, primaryDialAddresses } from './local-state.js';
export {
  FederationReplicator,
  type LocalServers,
  type ReplicationStatus,
} from './replicator.js';
export { readFederationSecret } from './secret.js';
export { FederationServer, federationIdentity } from './server.js';
export { type FederationStateRecord, FederationStates, type WanServerRecord } from './states.js';
export { federationView, knownDatacenters } from './view.js';
export {
  type DatacenterLink,
  type WanMember,
  type WanStatus,
  linkSeenFromSecondary,
  wanMembers,
} from './wan-members.js';
export { FederationForwarder, type ForwardCall, forwardDialAddresses } from './forwarder.js';
export type { ForwardHandler, ForwardedAnswer, ForwardedRequest } from './server.js';

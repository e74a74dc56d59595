export {
  type ServerConfig,
  type ConfigSources,
  type ConfigResult,
  loadServerConfig,
  resolveServerConfig,
} from './server-config.js';
export { type HostPort, parseHostPort, formatHostPort } from './host-port.js';
export { serverSettings, type SettingSpec, type XdsAuthMode } from './settings.js';
export { isthmusVersion } from './version.js';
export { httpExposureProblem, isLoopbackHost } from './http-access.js';
export { xdsPlaintextProblem, xdsPlaintextWarning } from './xds-access.js';
export { type FederationRole, federationProblem, federationRole } from './federation-role.js';

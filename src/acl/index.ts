export { type CreatedProxyToken, type ProxyToken, ProxyTokens, openProxyTokens, xdsTokenHeader } from './proxy-tokens.js';
export { type XdsAuthMode, type XdsAuthorize, xdsAuthModes, xdsAuthorizer } from './xds-auth.js';

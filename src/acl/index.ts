export {
  type CreatedProxyToken,
  type ProxyToken,
  ProxyTokens,
  openProxyTokens,
} from './proxy-tokens.js';
export {
  type XdsAuthMode,
  type XdsAuthorize,
  xdsAuthModes,
  xdsAuthorizer,
  xdsTokenHeader,
} from './xds-auth.js';

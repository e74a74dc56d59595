export {
  type CreatedProxyToken,
  type ProxyToken,
  ProxyTokens,
  openProxyTokens,
} from './proxy-tokens.js';
export {
  type XdsAuth,
  type XdsAuthenticate,
  type XdsAuthorize,
  xdsAuth,
  xdsAuthorizer,
} from './xds-auth.js';

export {
  type CreatedProxyToken,
  type ProxyToken,
  ProxyTokens,
  openProxyTokens,
} from './proxy-tokens.js';
export { type XdsAuthorize, xdsAuthorizer } from './xds-auth.js';

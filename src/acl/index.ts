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
export { type ApiScope, formatApiScope, parseApiScope, scopeSyntax } from './api-scope.js';
export { type ApiToken, ApiTokens, type CreatedApiToken, openApiTokens } from './api-tokens.js';

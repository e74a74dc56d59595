import { hashSecret, secretMatches } from './token-secret.js';

/**
 * The HTTP API token (`--http-token`) as a caller presents it: HTTP requests (src/api/auth.ts) and
 * CSDS calls (src/xds/csds.ts, gRPC metadata under the same names) carry it the same way.
 */
export interface TokenHeaders {
  readonly headers: Readonly<Record<string, string | readonly string[] | undefined>>;
}

/** The token a request carries (`X-Isthmus-Token`, else `Authorization: Bearer`), if any. */
export function presentedToken(request: TokenHeaders): string | undefined {
  const header = request.headers['x-isthmus-token'];
  if (typeof header === 'string' && header !== '') return header;
  const auth = request.headers.authorization;
  const match = typeof auth === 'string' ? /^Bearer\s+(\S+)\s*$/i.exec(auth) : null;
  return match?.[1];
}

/** Whether `presented` is the configured token, compared as digests (see `secretMatches`). */
export function tokensEqual(presented: string, expected: string): boolean {
  return secretMatches(presented, hashSecret(expected));
}

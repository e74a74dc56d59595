/**
 * Redaction of secret material in Envoy JSON before it leaves the server (issue 6: `proxy-config
 * ... secrets`). Envoy's own admin `/config_dump` does the same for the fields its protos mark
 * `udpa.annotations.sensitive` (TlsCertificate.private_key and password, TlsSessionTicketKeys.keys,
 * GenericSecret.secret, ...): the value becomes "[redacted]". Certificates and CA bundles are
 * public and stay.
 */

export const redacted = '[redacted]';

/**
 * Fields whose whole value is secret, in proto3 JSON (camelCase) and proto (snake_case) spelling:
 * TlsCertificate private_key, password, pkcs12 (holds the key) and private_key_provider (its config
 * may carry key material); DownstreamTlsContext session_ticket_keys; Secret generic_secret and
 * session_ticket_keys.
 */
const sensitiveFields: ReadonlySet<string> = new Set([
  'privateKey',
  'private_key',
  'password',
  'pkcs12',
  'privateKeyProvider',
  'private_key_provider',
  'sessionTicketKeys',
  'session_ticket_keys',
  'genericSecret',
  'generic_secret',
]);

const pemKey = /-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----/;
const base64ish = /^[A-Za-z0-9+/_-]{64,}={0,2}$/;

/**
 * A copy of `value` with every sensitive field replaced by "[redacted]". As a second line of
 * defence any other string that is (or base64-decodes to) a PEM private key is replaced too, so a
 * key inlined somewhere unexpected (a listener's inline TLS context, say) never goes out.
 */
export function redactSecrets(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(redactSecrets);
  if (typeof value === 'string') return looksLikePrivateKey(value) ? redacted : value;
  if (value === null || typeof value !== 'object') return value;
  return Object.fromEntries(
    Object.entries(value as Record<string, unknown>).map(([k, v]) => [k, sensitiveFields.has(k) && v !== null && v !== undefined ? redacted : redactSecrets(v)]),
  );
}

function looksLikePrivateKey(s: string): boolean {
  if (pemKey.test(s)) return true;
  return base64ish.test(s) && pemKey.test(Buffer.from(s, 'base64').toString('latin1'));
}

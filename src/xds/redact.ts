/**
 * Redaction of secret material in Envoy JSON before it leaves the server (issue 6: `proxy-config
 * ... secrets`). Envoy's own admin `/config_dump` does the same for the fields its protos mark
 * `udpa.annotations.sensitive` (TlsCertificate.private_key and password, TlsSessionTicketKeys.keys,
 * GenericSecret.secret, ...): the value becomes "[redacted]". Certificates and CA bundles are
 * public and stay.
 */

import type { DataSource } from '../gen/envoy/config/core/v3/base.js';
import type { TlsCertificate } from '../gen/envoy/extensions/transport_sockets/tls/v3/common.js';
import type { Secret } from '../gen/envoy/extensions/transport_sockets/tls/v3/secret.js';

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
    Object.entries(value as Record<string, unknown>).map(([k, v]) => [
      k,
      sensitiveFields.has(k) && v !== null && v !== undefined ? redacted : redactSecrets(v),
    ]),
  );
}

function looksLikePrivateKey(s: string): boolean {
  if (pemKey.test(s)) return true;
  return base64ish.test(s) && pemKey.test(Buffer.from(s, 'base64').toString('latin1'));
}

/**
 * The decoded-proto side of the same rules, for CSDS (issue 6 review: CSDS served every proxy's
 * leaf key): a copy of an SDS Secret whose private key, password, PKCS#12 bundle, session ticket
 * keys and generic secret are each the inline string "[redacted]"; a private key provider keeps its
 * name and typed config's type but loses the config. Certificate chains and validation contexts
 * stay. ts-proto's decode drops unknown fields, so nothing unrecognised survives either.
 */
export function redactSecretMessage(secret: Secret): Secret {
  const t = secret.type;
  switch (t?.$case) {
    case 'tlsCertificate':
      return { ...secret, type: { $case: 'tlsCertificate', value: redactTlsCertificate(t.value) } };
    case 'sessionTicketKeys':
      return {
        ...secret,
        type: {
          $case: 'sessionTicketKeys',
          value: { ...t.value, keys: t.value.keys.map(redactedSource) },
        },
      };
    case 'genericSecret':
      return {
        ...secret,
        type: {
          $case: 'genericSecret',
          value: { ...t.value, secret: redactSource(t.value.secret) },
        },
      };
    case 'validationContext':
    case undefined:
      return secret;
  }
}

function redactTlsCertificate(c: TlsCertificate): TlsCertificate {
  const provider = c.privateKeyProvider;
  const config = provider?.configType;
  return {
    ...c,
    privateKey: redactSource(c.privateKey),
    password: redactSource(c.password),
    pkcs12: redactSource(c.pkcs12),
    privateKeyProvider: provider && {
      ...provider,
      configType: config && {
        $case: 'typedConfig',
        value: { ...config.value, value: Buffer.alloc(0) },
      },
    },
  };
}

function redactedSource(): DataSource {
  return {
    $type: 'envoy.config.core.v3.DataSource',
    specifier: { $case: 'inlineString', value: redacted },
  };
}

function redactSource(d: DataSource | undefined): DataSource | undefined {
  return d === undefined ? undefined : redactedSource();
}

/**
 * Whether encoded bytes hold a PEM private key anywhere (a last check before bytes leave the
 * server).
 */
export function containsPrivateKey(bytes: Uint8Array): boolean {
  return pemKey.test(
    Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1'),
  );
}

/**
 * Private keys never leave the server in proxy-config output (issue 6): the sensitive fields of
 * Envoy's TLS protos become "[redacted]" wherever they appear; certificates stay.
 */
import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { Secret } from '../../src/gen/envoy/extensions/transport_sockets/tls/v3/secret.js';
import { expandedJson } from '../../src/xds/envoy-json.js';
import { redacted, redactSecrets } from '../../src/xds/redact.js';

const keyPem = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  .privateKey.export({ format: 'pem', type: 'pkcs8' })
  .toString();
const certPem = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';

function secretJson(secret: Secret): unknown {
  return expandedJson(
    'envoy.extensions.transport_sockets.tls.v3.Secret',
    Secret.encode(secret).finish(),
  );
}

describe('redactSecrets', () => {
  it("redacts a TLS certificate secret's private key and password, keeping the certificate chain", () => {
    const json = secretJson(
      Secret.fromPartial({
        name: 'leaf',
        type: {
          $case: 'tlsCertificate',
          value: {
            certificateChain: { specifier: { $case: 'inlineString', value: certPem } },
            privateKey: { specifier: { $case: 'inlineString', value: keyPem } },
            password: { specifier: { $case: 'inlineString', value: 'hunter2' } },
          },
        },
      }),
    );
    const out = redactSecrets(json) as any;
    expect(out.tlsCertificate.privateKey).toBe(redacted);
    expect(out.tlsCertificate.password).toBe(redacted);
    expect(out.tlsCertificate.certificateChain.inlineString).toBe(certPem);
    expect(JSON.stringify(out)).not.toContain('PRIVATE KEY');
    expect(JSON.stringify(out)).not.toContain('hunter2');
  });

  it('redacts keys given as bytes (base64 in proto JSON), session ticket keys and generic secrets', () => {
    const bytesKey = secretJson(
      Secret.fromPartial({
        name: 'k',
        type: {
          $case: 'tlsCertificate',
          value: {
            privateKey: { specifier: { $case: 'inlineBytes', value: Buffer.from(keyPem) } },
          },
        },
      }),
    );
    expect(JSON.stringify(bytesKey)).toContain(Buffer.from(keyPem).toString('base64').slice(0, 20));
    expect((redactSecrets(bytesKey) as any).tlsCertificate.privateKey).toBe(redacted);
    const tickets = secretJson(
      Secret.fromPartial({
        name: 't',
        type: {
          $case: 'sessionTicketKeys',
          value: { keys: [{ specifier: { $case: 'inlineBytes', value: Buffer.alloc(80, 7) } }] },
        },
      }),
    );
    expect(redactSecrets(tickets)).toEqual({ name: 't', sessionTicketKeys: redacted });
    const generic = secretJson(
      Secret.fromPartial({
        name: 'g',
        type: {
          $case: 'genericSecret',
          value: { secret: { specifier: { $case: 'inlineString', value: 's3cret' } } },
        },
      }),
    );
    expect(redactSecrets(generic)).toEqual({ name: 'g', genericSecret: redacted });
  });

  it('redacts a key inlined anywhere (a listener TLS context), in snake_case too, and PEM keys under any field', () => {
    const listener = {
      name: 'public',
      filterChains: [
        {
          transportSocket: {
            typedConfig: {
              '@type': 'DownstreamTlsContext',
              commonTlsContext: { tlsCertificates: [{ private_key: { inline_string: keyPem } }] },
              session_ticket_keys: { keys: [] },
            },
          },
        },
      ],
      metadata: { note: keyPem, encoded: Buffer.from(keyPem).toString('base64') },
    };
    const out = redactSecrets(listener) as any;
    const tls = out.filterChains[0].transportSocket.typedConfig;
    expect(tls.commonTlsContext.tlsCertificates[0].private_key).toBe(redacted);
    expect(tls.session_ticket_keys).toBe(redacted);
    expect(out.metadata).toEqual({ note: redacted, encoded: redacted });
    expect(tls['@type']).toBe('DownstreamTlsContext');
  });

  it('leaves config without secrets as it is', () => {
    const cluster = {
      name: 'api',
      type: 'EDS',
      connectTimeout: '5s',
      transportSocket: {
        typedConfig: {
          sni: 'api.default',
          commonTlsContext: { validationContextSdsSecretConfig: { name: 'roots' } },
        },
      },
      weights: [1, 2],
      nothing: null,
    };
    expect(redactSecrets(cluster)).toEqual(cluster);
  });
});

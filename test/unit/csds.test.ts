/**
 * CSDS's pure parts (issue 6 review): the Secret redaction applied before resource contents leave
 * the server, and the node matchers it refuses instead of evaluating.
 */
import { describe, expect, it } from 'vitest';
import { Secret } from '../../src/gen/envoy/extensions/transport_sockets/tls/v3/secret.js';
import { buildClientStatus, validateNodeMatchers } from '../../src/xds/csds.js';
import { IsthmusError } from '../../src/errors.js';
import { containsPrivateKey, redactSecretMessage } from '../../src/xds/redact.js';

const KEY =
  '-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n';
const CERT = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
const inline = (value: string) => ({ specifier: { $case: 'inlineString' as const, value } });
const inlineBytes = (value: string) => ({
  specifier: { $case: 'inlineBytes' as const, value: Buffer.from(value) },
});
const REDACTED = {
  $type: 'envoy.config.core.v3.DataSource',
  specifier: { $case: 'inlineString', value: '[redacted]' },
};

/** Encodes, decodes and redacts the way CSDS does, and returns the redacted bytes and message. */
function roundTrip(message: Secret): { bytes: Buffer; secret: Secret } {
  const decoded = Secret.decode(Secret.encode(message).finish());
  const bytes = Buffer.from(Secret.encode(redactSecretMessage(decoded)).finish());
  return { bytes, secret: Secret.decode(bytes) };
}

describe('redactSecretMessage', () => {
  it('replaces a TLS certificate key, password and PKCS#12 bundle, keeps the chain and drops a key provider config', () => {
    const { bytes, secret } = roundTrip(
      Secret.fromPartial({
        name: 'leaf',
        type: {
          $case: 'tlsCertificate',
          value: {
            certificateChain: inline(CERT),
            privateKey: inlineBytes(KEY),
            password: inline('hunter2'),
            pkcs12: inlineBytes('pkcs12-bundle'),
            privateKeyProvider: {
              providerName: 'cryptomb',
              configType: {
                $case: 'typedConfig',
                value: { typeUrl: 'type.googleapis.com/x.Y', value: Buffer.from('secret-config') },
              },
            },
          },
        },
      }),
    );
    expect(containsPrivateKey(bytes)).toBe(false);
    for (const s of ['hunter2', 'pkcs12-bundle', 'secret-config'])
      expect(bytes.toString('latin1')).not.toContain(s);
    expect(secret.type?.$case).toBe('tlsCertificate');
    const c = secret.type?.$case === 'tlsCertificate' ? secret.type.value : undefined;
    expect(c?.privateKey).toEqual(REDACTED);
    expect(c?.password).toEqual(REDACTED);
    expect(c?.pkcs12).toEqual(REDACTED);
    expect(c?.certificateChain?.specifier).toEqual({ $case: 'inlineString', value: CERT });
    expect(c?.privateKeyProvider?.providerName).toBe('cryptomb');
    expect(c?.privateKeyProvider?.configType?.value.typeUrl).toBe('type.googleapis.com/x.Y');
  });

  it('replaces every session ticket key and a generic secret', () => {
    const tickets = roundTrip(
      Secret.fromPartial({
        name: 't',
        type: {
          $case: 'sessionTicketKeys',
          value: { keys: [inlineBytes('k1'.repeat(40)), inlineBytes('k2'.repeat(40))] },
        },
      }),
    );
    expect(
      tickets.secret.type?.$case === 'sessionTicketKeys' && tickets.secret.type.value.keys,
    ).toEqual([REDACTED, REDACTED]);
    const generic = roundTrip(
      Secret.fromPartial({
        name: 'g',
        type: { $case: 'genericSecret', value: { secret: inline('api-key-123') } },
      }),
    );
    expect(generic.bytes.toString('latin1')).not.toContain('api-key-123');
    expect(
      generic.secret.type?.$case === 'genericSecret' && generic.secret.type.value.secret,
    ).toEqual(REDACTED);
  });

  it('leaves a validation context (CA bundle) as it was', () => {
    const roots = Secret.fromPartial({
      name: 'roots',
      type: { $case: 'validationContext', value: { trustedCa: inline(CERT) } },
    });
    expect(roundTrip(roots).bytes.equals(Buffer.from(Secret.encode(roots).finish()))).toBe(true);
  });
});

describe('CSDS node matchers', () => {
  it('names every matcher it will not evaluate; exact, prefix, suffix and contains pass', () => {
    const m = (
      matchPattern: NonNullable<
        Parameters<typeof validateNodeMatchers>[0][number]['nodeId']
      >['matchPattern'],
    ) => ({ nodeId: { matchPattern, ignoreCase: false }, nodeMetadatas: [] });
    expect(
      validateNodeMatchers([
        m({ $case: 'exact', value: 'a' }),
        m({ $case: 'safeRegex', value: { regex: '((.*)*)*z' } }),
        m({ $case: 'custom', value: { name: 'x', typedConfig: undefined } }),
        m({ $case: 'contains', value: 'b' }),
        { nodeId: undefined, nodeMetadatas: [] },
        {
          nodeId: undefined,
          nodeMetadatas: [{ path: [{ segment: { $case: 'key', value: 'k' } }], value: undefined }],
        },
      ]),
    ).toEqual([
      'node_matchers[1].node_id.safe_regex is not supported; use exact, prefix, suffix or contains',
      'node_matchers[2].node_id.custom is not supported; use exact, prefix, suffix or contains',
      'node_matchers[5].node_metadatas is not supported; match on node_id',
    ]);
  });

  it('buildClientStatus refuses them with invalid_argument before looking at any proxy', () => {
    const req = {
      nodeMatchers: [
        {
          nodeId: {
            matchPattern: { $case: 'safeRegex' as const, value: { regex: '.*' } },
            ignoreCase: false,
          },
          nodeMetadatas: [],
        },
      ],
      excludeResourceContents: true,
    };
    const sessions = () => {
      throw new Error('sessions read');
    };
    expect(() => buildClientStatus(sessions, req)).toThrow(IsthmusError);
    expect(() => buildClientStatus(sessions, req)).toThrow(
      /node_matchers\[0\]\.node_id\.safe_regex/,
    );
  });
});

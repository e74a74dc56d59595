import { Secret } from '../../gen/envoy/extensions/transport_sockets/tls/v3/secret.js';
import { SPIFFECertValidatorConfig } from '../../gen/envoy/extensions/transport_sockets/tls/v3/tls_spiffe_validator_config.js';
import type { LeafSecretIR, RootsSecretIR, TrustDomainsSecretIR } from '../../snapshot/types.js';
import { packAny } from '../../proto-any.js';
import { TypeUrl } from '../types.js';
import { spec, type ResourceSpec } from './common.js';

/**
 * SDS: the proxy's leaf certificate and the root bundles it trusts, plain or per trust domain for
 * the SPIFFE validator. A rotation, or a peer's new bundle, re-sends these secrets only, not the
 * clusters and listeners that name them (docs/architecture.md §5): Envoy takes a new secret into
 * the TLS contexts that use it, while a changed listener filter chain is drained and its
 * connections closed.
 */
export function leafSpec(leaf: LeafSecretIR): ResourceSpec {
  return spec(TypeUrl.secret, leaf.name, leaf, () =>
    Secret.fromPartial({
      name: leaf.name,
      type: {
        $case: 'tlsCertificate',
        value: {
          certificateChain: { specifier: { $case: 'inlineString', value: leaf.certPem } },
          privateKey: { specifier: { $case: 'inlineString', value: leaf.keyPem } },
        },
      },
    }),
  );
}

export function rootsSpec(roots: RootsSecretIR): ResourceSpec {
  return spec(TypeUrl.secret, roots.name, roots, () =>
    Secret.fromPartial({
      name: roots.name,
      type: {
        $case: 'validationContext',
        value: {
          trustedCa: { specifier: { $case: 'inlineString', value: pemBundle(roots.pems) } },
        },
      },
    }),
  );
}

/**
 * Envoy's SPIFFE certificate validator as a validation-context secret: a client certificate is
 * checked against the bundle of the trust domain in its URI SAN only, so a peer's CA can never
 * vouch for our identities (docs/architecture.md §5).
 */
export function trustDomainsSpec(secret: TrustDomainsSecretIR): ResourceSpec {
  return spec(TypeUrl.secret, secret.name, secret, () => {
    const config = SPIFFECertValidatorConfig.fromPartial({
      trustDomains: secret.trustDomains.map((t) => ({
        name: t.name,
        trustBundle: { specifier: { $case: 'inlineString', value: pemBundle(t.pems) } },
      })),
    });
    return Secret.fromPartial({
      name: secret.name,
      type: {
        $case: 'validationContext',
        value: {
          customValidatorConfig: {
            name: 'envoy.tls.cert_validator.spiffe',
            typedConfig: packAny(config),
          },
        },
      },
    });
  });
}

/** One PEM block per line group: every certificate ends with a newline before the next begins. */
export function pemBundle(pems: readonly string[]): string {
  return pems.map((p) => (p.endsWith('\n') ? p : `${p}\n`)).join('');
}

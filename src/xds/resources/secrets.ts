import { Secret } from '../../gen/envoy/extensions/transport_sockets/tls/v3/secret.js';
import type { ConfigSnapshot, LeafSecretIR, RootsSecretIR } from '../../snapshot/types.js';
import { TypeUrl } from '../types.js';
import { spec, type ResourceSpec } from './common.js';

/**
 * SDS: the proxy's leaf certificate and the root bundles it trusts. A rotation re-sends these
 * secrets only, not the clusters and listeners that name them (docs/architecture.md §5 "Secrets").
 */
export function secretsFromSnapshot(s: ConfigSnapshot): ResourceSpec[] {
  if (s.kind === 'mesh-gateway') return s.leaf ? [leafSpec(s.leaf), ...(s.roots ?? []).map(rootsSpec)] : [];
  return [leafSpec(s.leaf), ...s.roots.map(rootsSpec)];
}

function leafSpec(leaf: LeafSecretIR): ResourceSpec {
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

function rootsSpec(roots: RootsSecretIR): ResourceSpec {
  return spec(TypeUrl.secret, roots.name, roots, () =>
    Secret.fromPartial({
      name: roots.name,
      type: { $case: 'validationContext', value: { trustedCa: { specifier: { $case: 'inlineString', value: pemBundle(roots.pems) } } } },
    }),
  );
}

/** One PEM block per line group: every certificate ends with a newline before the next begins. */
export function pemBundle(pems: readonly string[]): string {
  return pems.map((p) => (p.endsWith('\n') ? p : `${p}\n`)).join('');
}

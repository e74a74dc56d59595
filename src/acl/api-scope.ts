import { dnsLabel } from '../dns-names.js';
import { type Result, err, ok } from '../result.js';

/**
 * What an HTTP API token may do (issue 18, "Scoped HTTP API access"): `operator` everything,
 * `read` every GET but ACL administration, `peering` the peering verbs and reads, `service:<name>`
 * register, deregister and check that service and its sidecar, and read its proxies. Written as a
 * string only at the edges (`parseApiScope`, `formatApiScope`).
 */
export type ApiScope =
  | { readonly kind: 'operator' }
  | { readonly kind: 'read' }
  | { readonly kind: 'peering' }
  | { readonly kind: 'service'; readonly service: string };

export const scopeSyntax = 'operator, read, peering or service:<name>';

export function parseApiScope(raw: unknown): Result<ApiScope, string> {
  if (raw === 'operator' || raw === 'read' || raw === 'peering') return ok({ kind: raw });
  if (typeof raw === 'string' && raw.startsWith('service:')) {
    const service = raw.slice('service:'.length);
    // The rule service names are registered with (`nameRule`, src/catalog/input.ts).
    if (dnsLabel.test(service)) return ok({ kind: 'service', service });
    return err(
      `service:${JSON.stringify(service)}: a service name is 1-63 lowercase letters, digits or "-", starting and ending with a letter or digit`,
    );
  }
  return err(`must be one of ${scopeSyntax}`);
}

export function formatApiScope(scope: ApiScope): string {
  return scope.kind === 'service' ? `service:${scope.service}` : scope.kind;
}

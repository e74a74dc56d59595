import type { ServerConfig } from './settings.js';

/**
 * A server's part in WAN federation (docs/architecture.md §6c): none, the primary (its CA is the
 * root, its config entries are global), or a secondary of the named primary.
 */
export type FederationRole =
  | { readonly kind: 'none' }
  | { readonly kind: 'primary'; readonly datacenter: string }
  | { readonly kind: 'secondary'; readonly datacenter: string; readonly primary: string };

export function federationRole(
  config: Pick<ServerConfig, 'datacenter' | 'primaryDatacenter'>,
): FederationRole {
  const primary = config.primaryDatacenter;
  if (primary === '') return { kind: 'none' };
  if (primary === config.datacenter) return { kind: 'primary', datacenter: primary };
  return { kind: 'secondary', datacenter: config.datacenter, primary };
}

/** What is missing or contradictory in the federation settings, each naming the fix. */
export function federationProblem(
  config: Pick<
    ServerConfig,
    'datacenter' | 'primaryDatacenter' | 'primaryGateways' | 'federationSecretFile'
  >,
): string | undefined {
  const role = federationRole(config);
  if (role.kind === 'none') {
    if (config.primaryGateways.length > 0)
      return '--primary-gateways: only a secondary dials the primary; set --primary-datacenter too';
    return undefined;
  }
  if (config.federationSecretFile === '')
    return '--federation-secret-file: a federated server needs the secret its datacenters share (a file of 16+ characters, the same on every server)';
  if (role.kind === 'primary' && config.primaryGateways.length > 0)
    return `--primary-gateways: this server is the primary (--datacenter ${config.datacenter} = --primary-datacenter); only secondaries take the primary's gateways`;
  if (role.kind === 'secondary' && config.primaryGateways.length === 0)
    return `--primary-gateways: a secondary (--datacenter ${config.datacenter}, primary ${role.primary}) needs the primary's mesh gateways' WAN addresses, HOST:PORT[,...]`;
  return undefined;
}

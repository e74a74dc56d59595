/**
 * Real TLS handshakes from pushed config: the logic lives in src/probe (also used by `isthmus
 * demo`); tests keep importing it from here.
 */
export {
  clientFromUpstream,
  serverFromPublicListener,
  splitPems,
  uriSans,
  type ClientTls,
  type ServerTls,
} from '../../src/probe/pushed-tls.js';
export {
  handshake,
  handshakeVia,
  tlsAcceptor,
  type HandshakeResult,
  type TlsAcceptor,
} from '../../src/probe/tls-handshake.js';

import { serverFromPublicListener as serverOf } from '../../src/probe/pushed-tls.js';
import type { HeldConfig } from '../../src/probe/xds-probe.js';

/**
 * The trust domains a sidecar's public listener accepts callers from, as pushed (the listener and
 * the SPIFFE secret it names); empty while the listener validates with plain roots, or while the
 * listener or its secrets are not all held.
 */
export function acceptedTrustDomains(
  envoy: HeldConfig,
  listenerName: string | undefined,
): string[] {
  if (listenerName === undefined) return [];
  try {
    return (serverOf(envoy, listenerName).trustDomains ?? []).map((t) => t.name);
  } catch {
    return [];
  }
}

import { randomBytes } from 'node:crypto';
import { hashSecret } from '../acl/token-secret.js';

/**
 * Peering secrets. The acceptor keeps only SHA-256 digests of the establishment and stream secrets
 * (it verifies, never sends them); the dialer keeps its stream secret itself, to send in `Open`.
 * Each lives in its own Store key, apart from the peering record the API shows.
 */
export type PeeringSecrets = AcceptorSecrets | DialerSecrets;

export interface AcceptorSecrets {
  readonly role: 'acceptor';
  /** Digest of the one-time establishment secret of the newest token; absent once consumed. */
  readonly establishmentSha256?: string | undefined;
  /** Digest of the stream secret the current stream uses. */
  readonly activeStreamSha256?: string | undefined;
  /**
   * Digest of the stream secret handed out by the latest ExchangeSecret and not yet used to open a
   * stream. Both stay valid until the pending one is used, so re-establishing never cuts the
   * stream that is up (Consul's pending/active stream secrets).
   */
  readonly pendingStreamSha256?: string | undefined;
}

export interface DialerSecrets {
  readonly role: 'dialer';
  readonly streamSecret: string;
}

/** 256 bits from the CSPRNG, base64url. */
export function newSecret(): string {
  return randomBytes(32).toString('base64url');
}

export function sha256Hex(secret: string): string {
  return hashSecret(secret).toString('hex');
}

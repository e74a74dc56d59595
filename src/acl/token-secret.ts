import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * A token secret: 128 random bits written in UUID form (like Consul's SecretID, but without the
 * version bits, so all 128 bits are random). Only its SHA-256 is ever stored.
 */
export function newSecret(): string {
  const hex = randomBytes(16).toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

export function hashSecret(secret: string): Buffer {
  return createHash('sha256').update(secret, 'utf8').digest();
}

/**
 * The one secret comparison of isthmus (proxy tokens, the HTTP API token, peering secrets):
 * whether `presented` hashes to `expectedSha256` (bytes, or hex as stored). Both sides are 32-byte
 * digests, so the time taken depends neither on where the secrets differ nor on their lengths; a
 * missing or malformed digest never matches, and takes the same time to say so.
 */
export function secretMatches(
  presented: string,
  expectedSha256: Buffer | string | undefined,
): boolean {
  const actual = hashSecret(presented);
  const expected =
    typeof expectedSha256 === 'string' ? Buffer.from(expectedSha256, 'hex') : expectedSha256;
  if (expected?.length !== actual.length) {
    timingSafeEqual(actual, actual);
    return false;
  }
  return timingSafeEqual(actual, expected);
}

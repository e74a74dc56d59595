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

/** Constant-time equality of a presented secret's hash and a stored hash (hex). */
export function hashMatches(presented: Buffer, storedHex: string): boolean {
  const stored = Buffer.from(storedHex, 'hex');
  return stored.length === presented.length && timingSafeEqual(stored, presented);
}

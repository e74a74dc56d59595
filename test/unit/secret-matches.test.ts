import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { tokensEqual } from '../../src/acl/http-token.js';
import { hashSecret, secretMatches } from '../../src/acl/token-secret.js';
import { sha256Hex } from '../../src/peering/secrets.js';

describe('secretMatches (the one secret comparison)', () => {
  it('matches a secret against its digest as bytes or as stored hex, and nothing else', () => {
    fc.assert(
      fc.property(fc.string(), fc.string(), (secret, other) => {
        expect(secretMatches(secret, hashSecret(secret))).toBe(true);
        expect(secretMatches(secret, sha256Hex(secret))).toBe(true);
        expect(tokensEqual(secret, secret)).toBe(true);
        if (other !== secret) {
          expect(secretMatches(other, sha256Hex(secret))).toBe(false);
          expect(tokensEqual(other, secret)).toBe(false);
        }
      }),
    );
  });

  it('never matches a missing, truncated or malformed digest', () => {
    const digest = sha256Hex('s3cret');
    expect(secretMatches('s3cret', undefined)).toBe(false);
    expect(secretMatches('s3cret', '')).toBe(false);
    expect(secretMatches('s3cret', digest.slice(0, 62))).toBe(false);
    expect(secretMatches('s3cret', `${digest}00`)).toBe(false);
    expect(secretMatches('s3cret', 'not hex at all')).toBe(false);
    expect(secretMatches('s3cret', Buffer.alloc(0))).toBe(false);
  });
});

import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  DeltaDiscoveryResponse,
  DiscoveryResponse,
} from '../../src/gen/envoy/service/discovery/v3/discovery.js';
import { CacheEntry } from '../../src/xds/cache/entry.js';
import { XdsCache } from '../../src/xds/cache/xds-cache.js';
import { encodeDeltaResponse, encodeSotwResponse } from '../../src/xds/wire.js';
import { TypeUrl } from '../../src/xds/types.js';
import { secret } from '../helpers/resources.js';

const cache = new XdsCache();
const entry = (name: string, marker: string) => new CacheEntry(cache.encode(secret(name, marker)));
const names = fc.uniqueArray(fc.string({ minLength: 1, maxLength: 40 }), { maxLength: 8 });
/**
 * Nonces and removed names: ASCII (short ones are copied byte by byte) and any Unicode, short and
 * long.
 */
const text = fc.oneof(
  fc.string(),
  fc.string({ unit: 'grapheme', maxLength: 20 }),
  fc.string({ minLength: 30, maxLength: 60 }),
);
const texts = fc.uniqueArray(
  text.filter((t) => t !== ''),
  { maxLength: 8 },
);

describe('hand-assembled xDS responses', () => {
  it('SotW bytes decode to the same response the generated encoder describes', () => {
    fc.assert(
      fc.property(names, fc.string(), fc.string(), (ns, version, nonce) => {
        const entries = ns.map((n, i) => entry(n, String(i)));
        const bytes = encodeSotwResponse(
          version,
          TypeUrl.secret,
          nonce,
          entries.map((e) => e.sotwField),
        );
        const decoded = DiscoveryResponse.decode(bytes);
        expect(decoded.versionInfo).toBe(version);
        expect(decoded.nonce).toBe(nonce);
        expect(decoded.typeUrl).toBe(TypeUrl.secret);
        expect(decoded.resources.map((r) => r.typeUrl)).toEqual(entries.map(() => TypeUrl.secret));
        expect(decoded.resources.map((r) => Buffer.from(r.value))).toEqual(
          entries.map((e) => Buffer.from(e.messageBytes)),
        );
      }),
      { numRuns: 200 },
    );
  });

  it('Delta bytes carry name, version, body and removals exactly', () => {
    fc.assert(
      fc.property(names, texts, text, (ns, removed, nonce) => {
        const entries = ns.map((n, i) => entry(n, String(i)));
        const bytes = encodeDeltaResponse(
          TypeUrl.secret,
          nonce,
          entries.map((e) => e.deltaField),
          removed,
        );
        const decoded = DeltaDiscoveryResponse.decode(bytes);
        expect(decoded.nonce).toBe(nonce);
        expect(decoded.removedResources).toEqual(removed);
        expect(decoded.resources.map((r) => [r.name, r.version])).toEqual(
          entries.map((e) => [e.name, e.version]),
        );
        expect(decoded.resources.map((r) => Buffer.from(r.resource!.value))).toEqual(
          entries.map((e) => Buffer.from(e.messageBytes)),
        );
      }),
      { numRuns: 200 },
    );
  });
});

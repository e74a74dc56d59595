/** The xDS type tables agree with each other: positions, canonical constants, the push order. */
import { describe, expect, it } from 'vitest';
import {
  allTypeUrls,
  pushOrder,
  typeIndex,
  TypeUrl,
  xdsTypeUrl,
  xdsTypeUrlAt,
  type XdsTypeUrl,
} from '../../src/xds/types.js';

describe('xDS type tables', () => {
  it('typeIndex is each type URL’s position in allTypeUrls, for the constants and for equal strings', () => {
    expect(allTypeUrls).toEqual(Object.values(TypeUrl));
    allTypeUrls.forEach((url, i) => {
      expect(typeIndex(url)).toBe(i);
      // A type URL decoded from the wire is an equal string, not the constant itself.
      expect(typeIndex(Buffer.from(url).toString() as XdsTypeUrl)).toBe(i);
    });
    expect(() =>
      typeIndex('type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig' as XdsTypeUrl),
    ).toThrow(/not an ADS type URL/);
  });

  it('xdsTypeUrl and xdsTypeUrlAt give back the constants, and nothing for other types', () => {
    for (const url of allTypeUrls) {
      expect(xdsTypeUrl(Buffer.from(url).toString())).toBe(url);
      const buf = Buffer.from(`xx${url}yy`);
      expect(xdsTypeUrlAt(buf, 2, buf.length - 2)).toBe(url);
    }
    expect(xdsTypeUrl('type.googleapis.com/envoy.service.runtime.v3.Runtime')).toBeUndefined();
    expect(
      xdsTypeUrlAt(Buffer.from(`${TypeUrl.cluster}s`), 0, TypeUrl.cluster.length + 1),
    ).toBeUndefined();
  });

  it('the push order names every type once per phase, upserts before removals, with its index', () => {
    expect(pushOrder.filter((s) => s.phase === 'upsert').map((s) => s.typeUrl)).toEqual([
      TypeUrl.secret,
      TypeUrl.cluster,
      TypeUrl.endpoint,
      TypeUrl.listener,
      TypeUrl.route,
    ]);
    expect(new Set(pushOrder.filter((s) => s.phase === 'remove').map((s) => s.typeUrl)).size).toBe(
      allTypeUrls.length,
    );
    expect(pushOrder.findIndex((s) => s.phase === 'remove')).toBe(allTypeUrls.length);
    for (const step of pushOrder) expect(step.index).toBe(allTypeUrls.indexOf(step.typeUrl));
  });

  it('every step waits for the ACKs of the earlier ones, except endpoints for the CDS ACK (Envoy holds it while clusters warm)', () => {
    const goesAhead = pushOrder
      .filter((s) => s.notBehind !== 0)
      .map((s) => [s.typeUrl, s.phase, s.notBehind]);
    expect(goesAhead).toEqual([[TypeUrl.endpoint, 'upsert', 1 << typeIndex(TypeUrl.cluster)]]);
  });
});

import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { createRoot } from '../../src/ca/x509.js';
import {
  type PeeringToken,
  dialAddressesOf,
  encodeToken,
  parseToken,
} from '../../src/peering/token.js';

let pems: string[] = [];

beforeAll(async () => {
  pems = await Promise.all(
    [1, 2, 3].map((i) =>
      createRoot({
        rootUri: `spiffe://td-${i}.consul`,
        name: `root ${i}`,
        now: Date.now(),
        validityMs: 3600_000,
      }),
    ),
  ).then((roots) => roots.map((r) => r.certPem));
});

const label = fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?$/);
const dnsName = fc.array(label, { minLength: 1, maxLength: 5 }).map((parts) => parts.join('.'));
const ipv4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((o) => o.join('.'));
const address = fc
  .tuple(fc.oneof(ipv4, dnsName, fc.constant('[::1]')), fc.integer({ min: 1, max: 65535 }))
  .map(([h, p]) => `${h}:${p}`);
const nonEmpty = (max: number) => fc.string({ minLength: 1, maxLength: max, unit: 'binary' });

function tokenArb(): fc.Arbitrary<PeeringToken> {
  return fc.record({
    CA: fc.subarray(pems, { minLength: 1 }),
    ServerAddresses: fc.array(address, { minLength: 1, maxLength: 4 }),
    ManualServerAddresses: fc.array(address, { maxLength: 3 }),
    ServerName: dnsName,
    PeerID: fc.oneof(fc.uuid(), nonEmpty(128)),
    EstablishmentSecret: nonEmpty(512),
    Remote: fc.record({
      Partition: fc.constant('default'),
      Datacenter: fc.string({ maxLength: 20 }),
    }),
  });
}

const b64 = (text: string | Uint8Array) => Buffer.from(text).toString('base64');

function expectError(result: ReturnType<typeof parseToken>): void {
  expect(result.ok).toBe(false);
  if (!result.ok) expect(result.error).toMatch(/^invalid peering token: \S/);
}

describe('peering token', () => {
  it('round-trips: parseToken(encodeToken(t)) is t', () => {
    fc.assert(
      fc.property(tokenArb(), (t) => {
        const parsed = parseToken(encodeToken(t));
        expect(parsed).toEqual({ ok: true, value: t });
      }),
      { numRuns: 200 },
    );
  });

  it("is standard base64 of JSON with Consul's field names", () => {
    const t: PeeringToken = {
      CA: [pems[0]!],
      ServerAddresses: ['10.0.0.1:8503'],
      ManualServerAddresses: [],
      ServerName: 'server.dc1.peering.abc.consul',
      PeerID: '7b5a6c4e-0000-4000-8000-000000000001',
      EstablishmentSecret: 's3cr3t',
      Remote: { Partition: 'default', Datacenter: 'dc1' },
    };
    const json = JSON.parse(Buffer.from(encodeToken(t), 'base64').toString('utf8'));
    expect(Object.keys(json)).toEqual([
      'CA',
      'ServerAddresses',
      'ManualServerAddresses',
      'ServerName',
      'PeerID',
      'EstablishmentSecret',
      'Remote',
    ]);
    expect(json.Remote).toEqual({ Partition: 'default', Datacenter: 'dc1' });
    expect(encodeToken(t)).toMatch(/^[A-Za-z0-9+/]+=*$/);
    expect(dialAddressesOf(t)).toEqual(['10.0.0.1:8503']);
    expect(dialAddressesOf({ ...t, ManualServerAddresses: ['gw.example.com:443'] })).toEqual([
      'gw.example.com:443',
    ]);
    // Whitespace from copy and paste (wrapped lines, trailing newline) is ignored.
    const wrapped = `${encodeToken(t).replace(/(.{60})/g, '$1\n')}\n`;
    expect(parseToken(wrapped)).toEqual({ ok: true, value: t });
  });

  it('random bytes never crash the decoder and always give an error', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 512 }), (bytes) => {
        expectError(parseToken(b64(bytes)));
        expectError(parseToken(Buffer.from(bytes).toString('latin1')));
      }),
      { numRuns: 500 },
    );
  });

  it('random strings never crash the decoder and always give an error', () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.string(), fc.string({ unit: 'grapheme' }), fc.string({ unit: 'binary' })),
        (text) => {
          expectError(parseToken(text));
          expectError(parseToken(b64(text)));
        },
      ),
      { numRuns: 500 },
    );
    for (const value of [undefined, null, 42, {}, [], '', '   ']) expectError(parseToken(value));
  });

  it('random JSON never crashes the decoder and always gives an error', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) =>
        expectError(parseToken(b64(JSON.stringify(value) ?? 'null'))),
      ),
      { numRuns: 500 },
    );
  });

  it('a token with one field replaced by random JSON never crashes; what parses round-trips', () => {
    const keys = [
      'CA',
      'ServerAddresses',
      'ManualServerAddresses',
      'ServerName',
      'PeerID',
      'EstablishmentSecret',
      'Remote',
    ] as const;
    fc.assert(
      fc.property(tokenArb(), fc.constantFrom(...keys), fc.jsonValue(), (t, key, value) => {
        const broken = { ...t, [key]: value };
        const parsed = parseToken(b64(JSON.stringify(broken)));
        if (parsed.ok) expect(parseToken(encodeToken(parsed.value))).toEqual(parsed);
        else expect(parsed.error).toMatch(/^invalid peering token: /);
      }),
      { numRuns: 500 },
    );
  });

  it('names each problem', () => {
    const good: PeeringToken = {
      CA: [pems[0]!],
      ServerAddresses: ['127.0.0.1:8503'],
      ManualServerAddresses: [],
      ServerName: 'server.dc1.peering.x.consul',
      PeerID: 'id',
      EstablishmentSecret: 'secret',
      Remote: { Partition: 'default', Datacenter: 'dc1' },
    };
    const errorOf = (value: unknown) => {
      const parsed = parseToken(typeof value === 'string' ? value : b64(JSON.stringify(value)));
      return parsed.ok ? '' : parsed.error;
    };
    expect(errorOf('not base64!')).toBe(
      'invalid peering token: not base64 (standard alphabet with padding)',
    );
    expect(errorOf(b64('{"CA":'))).toMatch(/not JSON/);
    expect(errorOf(b64(Buffer.from([0xff, 0xfe, 0x00])))).toMatch(
      /not JSON \(the decoded bytes are not UTF-8 text\)/,
    );
    expect(errorOf([good])).toBe('invalid peering token: the decoded JSON is not an object');
    expect(errorOf({})).toBe(
      'invalid peering token: CA: missing (no CA certificates: isthmus never peers without TLS); ServerAddresses: missing (at least one host:port of the acceptor); ServerName: missing; PeerID: missing; EstablishmentSecret: missing',
    );
    expect(errorOf({ ...good, CA: [] })).toMatch(
      /CA: missing \(no CA certificates: isthmus never peers without TLS\)$/,
    );
    expect(errorOf({ ...good, CA: 'pem' })).toMatch(
      /CA: must be a JSON array of PEM certificates$/,
    );
    expect(errorOf({ ...good, CA: ['hello'] })).toMatch(/CA\[0\]: not a PEM certificate$/);
    expect(
      errorOf({
        ...good,
        CA: [pems[0], '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----'],
      }),
    ).toMatch(/CA\[1\]: does not parse as an X\.509 certificate$/);
    expect(errorOf({ ...good, ServerAddresses: ['10.0.0.1'] })).toMatch(
      /ServerAddresses\[0\]: "10\.0\.0\.1" is not host:port \(port 1-65535\)$/,
    );
    expect(errorOf({ ...good, ServerAddresses: ['10.0.0.1:0'] })).toMatch(/ServerAddresses\[0\]/);
    expect(errorOf({ ...good, ServerAddresses: [], ManualServerAddresses: ['a:1', 'b'] })).toMatch(
      /ManualServerAddresses\[1\]: "b" is not host:port/,
    );
    expect(errorOf({ ...good, ServerName: 'not a name' })).toMatch(
      /ServerName: "not a name" is not a DNS name$/,
    );
    expect(errorOf({ ...good, PeerID: 7 })).toMatch(/PeerID: must be a string$/);
    expect(errorOf({ ...good, Remote: 'dc1' })).toMatch(
      /Remote: must be an object \{Partition, Datacenter\}$/,
    );
    // The secret never appears in an error.
    expect(errorOf({ ...good, EstablishmentSecret: 'TOPSECRET', CA: [] })).not.toContain(
      'TOPSECRET',
    );
  });
});

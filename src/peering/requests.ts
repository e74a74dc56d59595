import { parseHostPort } from '../config/host-port.js';
import { IsthmusError } from '../errors.js';
import { Problems, invalidInput } from '../problems.js';
import { type Result, err, ok } from '../result.js';
import type { EstablishInput } from './establish.js';
import type { GenerateTokenInput } from './peerings.js';
import { dnsLabel } from '../dns-names.js';

/**
 * Bodies of `POST /v1/peering/token` and `POST /v1/peering/establish` (Consul's field names) →
 * typed input. Every problem is collected; the error names the first field and lists them all.
 */
export type ParsedRequest<T> = Result<T, IsthmusError>;

const metaKeyPattern = /^[A-Za-z0-9_-]{1,128}$/;
const maxMetaPairs = 64;
const maxMetaValue = 512;

export function parseGenerateTokenRequest(body: unknown): ParsedRequest<GenerateTokenInput> {
  const obj = objectOf(body, '{"PeerName": "cluster-b"}');
  if (!obj.ok) return obj;
  const p = new Problems();
  unknownFields(obj.value, ['PeerName', 'Meta', 'ServerExternalAddresses', 'Partition'], p);
  const name = peerName(obj.value.PeerName, p);
  partitionOf(obj.value.Partition, p);
  const meta = metaOf(obj.value.Meta, p);
  const addresses = addressesOf(obj.value.ServerExternalAddresses, p);
  return resultOf(p, { PeerName: name, Meta: meta, ServerExternalAddresses: addresses });
}

export function parseEstablishRequest(body: unknown): ParsedRequest<EstablishInput> {
  const obj = objectOf(body, '{"PeerName": "cluster-a", "PeeringToken": "<token>"}');
  if (!obj.ok) return obj;
  const p = new Problems();
  unknownFields(obj.value, ['PeerName', 'PeeringToken', 'Meta', 'Partition'], p);
  const name = peerName(obj.value.PeerName, p);
  partitionOf(obj.value.Partition, p);
  const token = obj.value.PeeringToken;
  if (typeof token !== 'string' || token.trim() === '')
    p.add(
      'PeeringToken',
      'required (the token printed by `isthmus peering generate-token` on the other cluster)',
    );
  const meta = metaOf(obj.value.Meta, p);
  return resultOf(p, {
    PeerName: name,
    PeeringToken: typeof token === 'string' ? token : '',
    Meta: meta,
  });
}

/** Throws the parse problem as invalid_argument (for the HTTP boundary). */
export function orThrow<T>(parsed: ParsedRequest<T>): T {
  if (!parsed.ok) throw parsed.error;
  return parsed.value;
}

function unknownFields(
  obj: Record<string, unknown>,
  allowed: readonly string[],
  p: Problems,
): void {
  for (const key of Object.keys(obj))
    if (!allowed.includes(key)) p.add(key, `unknown field (allowed: ${allowed.join(', ')})`);
}

function resultOf<T>(p: Problems, value: T): ParsedRequest<T> {
  const parsed = p.result(value);
  return parsed.ok ? parsed : err(invalidInput(parsed.error));
}

function objectOf(body: unknown, example: string): ParsedRequest<Record<string, unknown>> {
  if (typeof body === 'object' && body !== null && !Array.isArray(body))
    return ok(body as Record<string, unknown>);
  return err(
    new IsthmusError(
      'invalid_argument',
      `the request body must be a JSON object like ${example}`,
      '',
    ),
  );
}

function peerName(value: unknown, p: Problems): string {
  if (value === undefined || value === '') p.add('PeerName', 'required');
  else if (typeof value !== 'string' || !dnsLabel.test(value)) {
    p.add(
      'PeerName',
      `${JSON.stringify(value)} is not a peer name (1-63 lowercase letters, digits or "-", starting and ending with a letter or digit)`,
    );
  }
  return typeof value === 'string' ? value : '';
}

/** Accepted for Consul compatibility: isthmus has only the default partition. */
function partitionOf(value: unknown, p: Problems): void {
  if (value !== undefined && value !== null && value !== '' && value !== 'default')
    p.add('Partition', 'only "default" (isthmus has no admin partitions)');
}

function metaOf(value: unknown, p: Problems): Record<string, string> | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'object' || Array.isArray(value)) {
    p.add('Meta', 'must be a JSON object of string values');
    return undefined;
  }
  const entries = Object.entries(value as Record<string, unknown>);
  if (entries.length > maxMetaPairs) p.add('Meta', `more than ${maxMetaPairs} keys`);
  for (const [k, v] of entries) {
    if (!metaKeyPattern.test(k)) p.add(`Meta.${k}`, 'keys are 1-128 letters, digits, "_" or "-"');
    if (typeof v !== 'string') p.add(`Meta.${k}`, 'must be a string');
    else if (v.length > maxMetaValue) p.add(`Meta.${k}`, `longer than ${maxMetaValue} characters`);
  }
  return Object.fromEntries(entries.filter(([, v]) => typeof v === 'string')) as Record<
    string,
    string
  >;
}

function addressesOf(value: unknown, p: Problems): string[] | undefined {
  if (value === undefined || value === null) return undefined;
  if (!Array.isArray(value)) {
    p.add('ServerExternalAddresses', 'must be a JSON array of "host:port" strings');
    return undefined;
  }
  value.forEach((addr: unknown, i) => {
    const hp = typeof addr === 'string' ? parseHostPort(addr) : undefined;
    if (!hp || hp.port === 0)
      p.add(
        `ServerExternalAddresses[${i}]`,
        `${JSON.stringify(addr)} is not host:port (port 1-65535)`,
      );
  });
  return value.filter((v): v is string => typeof v === 'string');
}

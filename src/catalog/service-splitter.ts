import {
  type JsonObject,
  type Problems,
  at,
  nameRule,
  readArray,
  readObject,
  readString,
} from './input.js';
import { readHeaderModifiers } from './routing-input.js';
import type { ServiceSplit, ServiceSplitterEntry } from './routing-types.js';

/**
 * `service-splitter` in Consul's JSON shape (Consul docs "Service splitter configuration
 * reference"): weighted splits of an HTTP-family service's traffic across services and subsets.
 * References (protocols, subsets, peers, splitter cycles) are checked when the entry is written
 * (`checkRoutingReferences`).
 */
export const serviceSplitterFields = ['Splits'];

const splitFields = [
  'Weight',
  'Service',
  'ServiceSubset',
  'Namespace',
  'Partition',
  'Peer',
  'RequestHeaders',
  'ResponseHeaders',
];
const onlyDefault = {
  pattern: /^default$/,
  patternText: 'only "default" (isthmus has the default namespace and partition only)',
};

export function parseServiceSplitter(
  obj: JsonObject,
  name: string | undefined,
  p: Problems,
): ServiceSplitterEntry | undefined {
  if (!Array.isArray(obj.Splits) || obj.Splits.length === 0)
    p.add('Splits', 'required: a JSON array of {Weight, Service, ServiceSubset}');
  const splits = readArray(obj, 'Splits', '', p, (v, f) => readSplit(v, f, p), 64);
  const total = splits.reduce((sum, s) => sum + s.split.weight, 0);
  // Consul's rule: the weights sum to 100, give or take 0.01.
  if (splits.length > 0 && Math.abs(total - 100) > 0.01)
    p.add('Splits', `weights sum to ${round2(total)}; they must sum to 100`);
  const seen = new Map<string, string>();
  for (const { split, field } of splits) {
    const key = `${split.peer}/${split.service || name}/${split.serviceSubset}`;
    const first = seen.get(key);
    if (first) p.add(field, `sends to the same place as ${first}; merge them into one split`);
    else seen.set(key, field);
  }
  if (name === undefined) return undefined;
  return {
    kind: 'service-splitter',
    name,
    namespace: 'default',
    partition: 'default',
    splits: splits.map((s) => s.split),
  };
}

function readSplit(
  value: unknown,
  field: string,
  p: Problems,
): { split: ServiceSplit; field: string } | undefined {
  const obj = readObject(value, field, splitFields, p);
  if (!obj) return undefined;
  const weight = readWeight(obj, field, p);
  for (const key of ['Namespace', 'Partition'])
    readString(obj, key, field, p, 'default', onlyDefault);
  const service = readString(obj, 'Service', field, p, '', nameRule);
  const serviceSubset = readString(obj, 'ServiceSubset', field, p, '', nameRule);
  const peer = readString(obj, 'Peer', field, p, '', nameRule);
  if (peer && serviceSubset)
    p.add(
      at(field, 'ServiceSubset'),
      "cannot be set together with Peer (a peer's subsets are not replicated)",
    );
  const requestHeaders = readHeaderModifiers(obj, 'RequestHeaders', field, p);
  const responseHeaders = readHeaderModifiers(obj, 'ResponseHeaders', field, p);
  if (
    weight === undefined ||
    service === undefined ||
    serviceSubset === undefined ||
    peer === undefined
  )
    return undefined;
  return {
    split: {
      weight,
      service,
      serviceSubset,
      peer,
      ...(requestHeaders ? { requestHeaders } : {}),
      ...(responseHeaders ? { responseHeaders } : {}),
    },
    field,
  };
}

/** A percentage 0-100; Envoy's weights are 1/10000, so at most two decimals count. */
function readWeight(obj: JsonObject, field: string, p: Problems): number | undefined {
  const w = obj.Weight;
  if (typeof w !== 'number' || !Number.isFinite(w) || w < 0 || w > 100)
    return p.add(
      at(field, 'Weight'),
      `required: a percentage from 0 to 100 (got ${JSON.stringify(w ?? null)})`,
    );
  return round2(w);
}

const round2 = (n: number) => Math.round(n * 100) / 100;

import { DeltaDiscoveryRequest } from '../../gen/envoy/service/discovery/v3/discovery.js';
import { xdsTypeUrlAt, type XdsTypeUrl } from '../types.js';

const noVersions: Record<string, string> = Object.freeze({});

const TYPE_URL_TAG = (2 << 3) | 2;
const NONCE_TAG = (6 << 3) | 2;

/**
 * `DeltaDiscoveryRequest { type_url = 2; response_nonce = 6 }` and nothing else: a plain ACK, the
 * most frequent message on a busy xDS port (one per push). Undefined for anything else.
 */
function plainAck(buf: Buffer): DeltaDiscoveryRequest | undefined {
  let typeUrl: XdsTypeUrl | undefined;
  let nonce = '';
  let pos = 0;
  while (pos < buf.length) {
    const tag = buf[pos++];
    if (tag !== TYPE_URL_TAG && tag !== NONCE_TAG) return undefined;
    let len = 0;
    for (let shift = 0; ; shift += 7) {
      if (pos >= buf.length || shift > 21) return undefined;
      const b = buf[pos++]!;
      len |= (b & 0x7f) << shift;
      if (b < 0x80) break;
    }
    const end = pos + len;
    if (end > buf.length) return undefined;
    if (tag === TYPE_URL_TAG) {
      typeUrl = xdsTypeUrlAt(buf, pos, end);
      if (!typeUrl) return undefined;
    } else nonce = buf.toString('utf8', pos, end);
    pos = end;
  }
  if (!typeUrl || nonce === '') return undefined;
  return {
    $type: 'envoy.service.discovery.v3.DeltaDiscoveryRequest',
    node: undefined,
    typeUrl,
    // Fresh empty lists (not shared frozen ones): the generated type's lists are mutable.
    resourceNamesSubscribe: [],
    resourceNamesUnsubscribe: [],
    resourceLocatorsSubscribe: [],
    resourceLocatorsUnsubscribe: [],
    initialResourceVersions: noVersions,
    responseNonce: nonce,
    errorDetail: undefined,
  };
}

/**
 * The request deserializer of `DeltaAggregatedResources`: plain ACKs are read straight off the
 * wire (their lists are shared and frozen), everything else by the generated decoder.
 */
export function decodeDeltaRequest(buf: Buffer): DeltaDiscoveryRequest {
  return plainAck(buf) ?? DeltaDiscoveryRequest.decode(buf);
}

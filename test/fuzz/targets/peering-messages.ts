/**
 * Fuzz target: what a cluster peer sends on a replication stream (issue 21 §4). Each input is a
 * stream: the first line picks our end (`dialer`, else acceptor), every other line is one
 * ReplicationMessage written as proto3 JSON (subscriptions, ACKs and NACKs, responses carrying a
 * trust bundle, server addresses, the exported-service list or one exported service, heartbeats,
 * Terminated) or taken as raw bytes when it is not JSON. The bytes go through the wire decoder into
 * a real PeerStreamSession, whose sink runs the import validators of src/peering/validate-import.ts
 * and, for a service that passes, the conversion into imported instances, as ImportSink does. A
 * finding is an exception escaping the session or a validator (validators return their problems,
 * they never throw), or the stream ended with an internal error.
 */
import type { IsthmusError } from '../../../src/errors.js';
import {
  type ExportedService,
  type ExportedServiceList,
  ReplicationMessage,
  type ServerAddresses,
  type TrustBundle,
} from '../../../src/gen/isthmus/peering/v1/peering.js';
import { silentLogger } from '../../../src/log.js';
import { importedInstancesOf } from '../../../src/peering/imported.js';
import { PeerStreamSession } from '../../../src/peering/stream/session.js';
import { ResourceUrl } from '../../../src/peering/stream/resources.js';
import type { ResourceChange, ResourceSink } from '../../../src/peering/stream/types.js';
import {
  validateExportedService,
  validateExportedServiceList,
  validateServerAddresses,
  validateTrustBundle,
} from '../../../src/peering/validate-import.js';
import { type FieldError, invalidInput } from '../../../src/problems.js';
import { MemorySource } from '../../helpers/peering-stream.js';
import { Finding, linesOf } from './verdict.js';

const peeringName = 'p';
const peerTrustDomain = 'peer.consul';

/** The checks ImportSink runs before anything is stored, without the store. */
class ValidatingSink implements ResourceSink {
  readonly findings: Finding[] = [];

  apply(url: ResourceUrl, change: ResourceChange): void {
    if (change.operation === 'delete') return;
    let problems: FieldError[];
    try {
      problems = this.validate(url, change);
    } catch (err) {
      this.findings.push(new Finding(`validating ${url}: ${(err as Error).stack ?? String(err)}`));
      return;
    }
    if (problems.length > 0) throw invalidInput(problems);
  }

  private validate(url: ResourceUrl, change: ResourceChange): FieldError[] {
    switch (url) {
      case ResourceUrl.trustBundle:
        return validateTrustBundle(change.resource as TrustBundle, {
          ownTrustDomain: 'dc1.consul',
          peerings: [],
          peeringName,
          resourceId: change.resourceId,
          pinned: peerTrustDomain,
        });
      case ResourceUrl.serverAddresses:
        return validateServerAddresses(change.resource as ServerAddresses);
      case ResourceUrl.exportedServiceList:
        return validateExportedServiceList(change.resource as ExportedServiceList);
      case ResourceUrl.exportedService: {
        const service = change.resource as ExportedService;
        const problems = validateExportedService(change.resourceId, service, peerTrustDomain);
        if (problems.length === 0) importedInstancesOf(peeringName, 'dc2', service);
        return problems;
      }
    }
  }
}

/** One line as the bytes a peer would send, or undefined when the harness cannot write it. */
function messageBytes(line: string): Buffer | undefined {
  let json: unknown;
  try {
    json = JSON.parse(line);
  } catch {
    return Buffer.from(line, 'utf8');
  }
  try {
    return Buffer.from(ReplicationMessage.encode(ReplicationMessage.fromJSON(json)).finish());
  } catch {
    return undefined; // fromJSON is the harness's notation, not a server path
  }
}

/**
 * The peering port's deserializer (the generated grpc-js one): bytes that do not decode are
 * refused by grpc-js before any of our code runs.
 */
function decode(bytes: Buffer): ReplicationMessage | undefined {
  try {
    return ReplicationMessage.decode(bytes);
  } catch {
    return undefined;
  }
}

async function settle(): Promise<void> {
  for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r));
}

export async function fuzz(data: Buffer): Promise<void> {
  const [first = '', ...lines] = linesOf(data);
  const sink = new ValidatingSink();
  const source = new MemorySource();
  source.set(ResourceUrl.trustBundle, 'dc1.consul', {
    trustDomain: 'dc1.consul',
    rootPems: ['-----BEGIN CERTIFICATE-----'],
  });
  let ended: IsthmusError | undefined;
  const session = new PeerStreamSession(
    {
      role: first.startsWith('dialer') ? 'dialer' : 'acceptor',
      peeringName,
      source,
      sink,
      observer: {},
      logger: silentLogger(),
      heartbeatIntervalMs: 60_000,
      heartbeatTimeoutMs: 60_000,
      openTimeoutMs: 60_000,
      applyTimeoutMs: 60_000,
    },
    {
      write: (msg) => ReplicationMessage.encode(msg).finish(),
      end: (error) => {
        ended = error;
      },
    },
  );
  session.start();
  try {
    for (const line of lines) {
      const bytes = messageBytes(line);
      const msg = bytes && decode(bytes);
      if (!msg) continue;
      session.receive(msg);
      await settle();
    }
    const [finding] = sink.findings;
    if (finding) throw finding;
    if (ended?.code === 'internal')
      throw new Finding(`stream ended with an internal error: ${ended.message}`);
  } finally {
    session.stop();
  }
}

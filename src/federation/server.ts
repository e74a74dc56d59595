import * as grpc from '@grpc/grpc-js';
import { randomUUID } from 'node:crypto';
import { isIP } from 'node:net';
import {
  type CaEvent,
  type CertificateAuthority,
  GrpcCertificates,
  type LeafIdentity,
} from '../ca/index.js';
import type { Catalog } from '../catalog/catalog.js';
import type { FederationRole } from '../config/index.js';
import { dnsHostname, dnsLabel } from '../dns-names.js';
import {
  type FederationServiceServer,
  FederationServiceService,
  type FederationState,
  type ForwardRequest,
  type ForwardResponse,
  type JoinRequest,
  type JoinResponse,
  type ReplicatedState,
} from '../gen/isthmus/federation/v1/federation.js';
import type { Logger } from '../log.js';
import {
  datacenterOfFederationServer,
  federationNodeServerName,
  federationServerName,
  federationServerSpiffeId,
} from '../mesh/names.js';
import { joinRequestMac, joinResponseMac, macMatches } from './secret.js';
import type { FederationStateRecord, FederationStates } from './states.js';
import { maxFederationMessageBytes, verifiedClientUris } from './tls.js';
import type { DatacenterLink } from './wan-members.js';

export interface FederationServerOptions {
  readonly role: FederationRole;
  readonly datacenter: string;
  readonly nodeName: string;
  readonly ca: CertificateAuthority;
  readonly catalog: Catalog;
  readonly states: FederationStates;
  readonly secret: Buffer;
  readonly logger: Logger;
}

/** This server's identity on the federation link: server certificate and client certificate. */
export function federationIdentity(
  ca: Pick<CertificateAuthority, 'trustDomain'>,
  datacenter: string,
  nodeName: string,
): LeafIdentity {
  return {
    spiffeId: federationServerSpiffeId(ca.trustDomain, datacenter),
    dnsSans: [federationServerName(datacenter), federationNodeServerName(nodeName, datacenter)],
  };
}

const maxGateways = 16;
const maxServers = 64;

/** A request another datacenter forwarded here, from a verified federation server of `from`. */
export interface ForwardedRequest {
  readonly from: string;
  readonly method: string;
  readonly path: string;
  readonly body: Buffer;
}

export interface ForwardedAnswer {
  readonly status: number;
  readonly contentType: string;
  readonly body: Buffer;
}

/**
 * Runs a forwarded request: the HTTP API's fixed set of forwardable routes
 * (src/api/federation-forward.ts); anything else it answers 403 without running it.
 */
export type ForwardHandler = (req: ForwardedRequest) => Promise<ForwardedAnswer>;

const writeMethods = new Set(['PUT', 'POST', 'DELETE']);

/**
 * The federation port (docs/architecture.md §6c): gRPC over TLS with a leaf naming
 * `server.<dc>.consul` and `<node>.server.<dc>.consul`, reached from other datacenters only
 * through mesh gateways that pass the TLS through. Client certificates are requested, not
 * required: a Join comes before the secondary has one and is authenticated by the federation
 * secret; a Replicate stream needs a verified federation server leaf. Only the primary answers
 * either; every server answers `Forward` for its own datacenter (a verified federation peer).
 */
export class FederationServer {
  private readonly server = new grpc.Server({
    'grpc.max_receive_message_length': maxFederationMessageBytes,
    'grpc.max_concurrent_streams': 16,
  });
  private readonly certs = new GrpcCertificates();
  private readonly unsubscribe: (() => void)[] = [];
  private readonly streams = new Set<grpc.ServerDuplexStream<FederationState, ReplicatedState>>();
  private index = 0;
  /** Indexes compare only within one process of the primary (ReplicatedState.run). */
  private readonly run = randomUUID();
  private forwarded: ForwardHandler | undefined;
  private pending: NodeJS.Immediate | undefined;
  private boundPort: number | undefined;
  /** Per secondary datacenter: its open streams, and since when its link is up or down. */
  private readonly links = new Map<string, { open: number; since: number }>();
  private readonly startedAt = Date.now();

  constructor(private readonly opts: FederationServerOptions) {
    const impl: FederationServiceServer = {
      join: (call, callback) => void this.join(call.request, callback),
      replicate: (call) => this.replicate(call),
      forward: (call, callback) => void this.forward(call, callback),
    };
    this.server.addService(FederationServiceService, impl);
  }

  get port(): number | undefined {
    return this.boundPort;
  }

  /**
   * A datacenter's link as the primary sees it: up while a stream of it is open; down since its
   * last stream closed, or since this server started when none has opened since.
   */
  linkOf(dc: string): DatacenterLink {
    if (dc === this.opts.datacenter) return { up: true, since: this.startedAt };
    const link = this.links.get(dc);
    return link ? { up: link.open > 0, since: link.since } : { up: false, since: this.startedAt };
  }

  /** Counts a datacenter's streams; when its link comes up or goes down, every stream is told. */
  private linkChanged(dc: string, delta: 1 | -1): void {
    const link = this.links.get(dc) ?? { open: 0, since: this.startedAt };
    const wasUp = link.open > 0;
    link.open += delta;
    this.links.set(dc, link);
    if (wasUp !== link.open > 0) {
      link.since = Date.now();
      this.changed();
    }
  }

  async listen(hostPort: string): Promise<number> {
    const { ca, datacenter, nodeName, catalog, states } = this.opts;
    const identity = federationIdentity(ca, datacenter, nodeName);
    this.certs.setIdentity(await ca.leaf(identity));
    this.certs.setTrusted(ca.roots().roots.map((r) => r.certPem));
    this.unsubscribe.push(
      ca.subscribe((event) => this.onCaEvent(event, identity)),
      catalog.subscribe((e) => {
        if (e.kind === 'config-entry-changed') this.changed();
      }),
      states.subscribe(() => this.changed(), { any: true }),
    );
    const creds = grpc.experimental.createCertificateProviderServerCredentials(
      this.certs,
      this.certs,
      false,
    );
    this.boundPort = await new Promise<number>((resolve, reject) =>
      this.server.bindAsync(hostPort, creds, (err, port) => (err ? reject(err) : resolve(port))),
    );
    return this.boundPort;
  }

  /** Forwarded requests are answered once the HTTP API exists (UNAVAILABLE until then). */
  serveForwarded(handler: ForwardHandler): void {
    this.forwarded = handler;
  }

  async stop(): Promise<void> {
    for (const u of this.unsubscribe.splice(0)) u();
    clearImmediate(this.pending);
    for (const s of this.streams) s.end();
    this.server.forceShutdown();
  }

  private onCaEvent(event: CaEvent, identity: LeafIdentity): void {
    if (event.kind === 'roots-changed') {
      this.certs.setTrusted(event.roots.roots.map((r) => r.certPem));
      void this.opts.ca.leaf(identity).then(
        (leaf) => this.certs.setIdentity(leaf),
        (err: unknown) => this.opts.logger.error({ err }, 'federation server leaf not re-issued'),
      );
      this.changed();
    } else if (event.leaf.holder === undefined && event.leaf.spiffeId === identity.spiffeId) {
      this.certs.setIdentity(event.leaf);
    }
  }

  private async join(req: JoinRequest, callback: grpc.sendUnaryData<JoinResponse>): Promise<void> {
    const { role, ca, secret, logger } = this.opts;
    const refuse = (code: grpc.status, details: string) => callback({ code, details }, null);
    if (role.kind !== 'primary' || !ca.signIntermediate)
      return refuse(
        grpc.status.FAILED_PRECONDITION,
        `this is datacenter ${this.opts.datacenter}, not the primary: join through the primary's gateways`,
      );
    if (!macMatches(joinRequestMac(secret, req), req.mac)) {
      logger.warn(
        { datacenter: req.datacenter.slice(0, 64) },
        'refused a federation join: bad MAC',
      );
      return refuse(
        grpc.status.PERMISSION_DENIED,
        "the join request is not signed with this federation's secret (--federation-secret-file)",
      );
    }
    if (!dnsLabel.test(req.datacenter) || req.datacenter === role.datacenter)
      return refuse(
        grpc.status.INVALID_ARGUMENT,
        `datacenter: ${JSON.stringify(req.datacenter)} is not a secondary datacenter name`,
      );
    try {
      const intermediatePem = await ca.signIntermediate(req.csrPem, req.datacenter);
      const fields = {
        primaryDatacenter: role.datacenter,
        trustDomain: ca.trustDomain,
        intermediatePem,
        rootPems: ca.roots().roots.map((r) => r.certPem),
      };
      logger.info({ datacenter: req.datacenter }, 'signed an intermediate CA for a secondary');
      callback(null, { ...fields, mac: joinResponseMac(secret, req.nonce, fields) });
    } catch (err) {
      refuse(grpc.status.INVALID_ARGUMENT, (err as Error).message);
    }
  }

  private replicate(call: grpc.ServerDuplexStream<FederationState, ReplicatedState>): void {
    const { role, ca, logger } = this.opts;
    if (role.kind !== 'primary') {
      call.emit('error', {
        code: grpc.status.FAILED_PRECONDITION,
        details: `this is datacenter ${this.opts.datacenter}, not the primary`,
      });
      return;
    }
    const dc = verifiedClientUris(call)
      .map((uri) => datacenterOfFederationServer(ca.trustDomain, uri))
      .find((d) => d !== undefined);
    if (!dc || dc === role.datacenter) {
      call.emit('error', {
        code: grpc.status.UNAUTHENTICATED,
        details: 'a federation stream needs a secondary server certificate of this trust domain',
      });
      return;
    }
    this.streams.add(call);
    logger.info({ datacenter: dc }, 'federation stream opened');
    this.linkChanged(dc, 1);
    call.on('data', (msg: FederationState) => void this.onSecondaryState(call, dc, msg));
    const done = () => {
      if (!this.streams.delete(call)) return;
      logger.info({ datacenter: dc }, 'federation stream closed');
      this.linkChanged(dc, -1);
    };
    call.on('end', () => {
      done();
      call.end();
    });
    call.on('error', done);
    call.on('cancelled', done);
    call.write(this.replicatedState());
  }

  private async onSecondaryState(
    call: grpc.ServerDuplexStream<FederationState, ReplicatedState>,
    dc: string,
    msg: FederationState,
  ): Promise<void> {
    const problem = stateProblem(msg, dc);
    if (problem) {
      call.emit('error', { code: grpc.status.INVALID_ARGUMENT, details: problem });
      return;
    }
    await this.opts.states.put(stateRecordOf(msg)).catch((err: unknown) => {
      this.opts.logger.error({ err, datacenter: dc }, 'federation state not stored');
    });
  }

  /**
   * A forwarded request (`?dc=` naming this datacenter, or a secondary's config write): only from
   * a verified federation server of another datacenter of this trust domain, only for this
   * datacenter. After a write on the primary the answer names the replicated state that carries
   * it, so the secondary can answer once it applied it (read-your-writes).
   */
  private async forward(
    call: grpc.ServerUnaryCall<ForwardRequest, ForwardResponse>,
    callback: grpc.sendUnaryData<ForwardResponse>,
  ): Promise<void> {
    const { ca, datacenter, logger } = this.opts;
    const req = call.request;
    const from = verifiedClientUris(call)
      .map((uri) => datacenterOfFederationServer(ca.trustDomain, uri))
      .find((d) => d !== undefined);
    if (!from || from === datacenter)
      return callback({
        code: grpc.status.UNAUTHENTICATED,
        details: 'a forwarded request needs a federation server certificate of another datacenter',
      });
    if (req.datacenter !== datacenter)
      return callback({
        code: grpc.status.FAILED_PRECONDITION,
        details: `this is datacenter ${datacenter}, not ${JSON.stringify(req.datacenter.slice(0, 64))}`,
      });
    const handler = this.forwarded;
    if (!handler)
      return callback({ code: grpc.status.UNAVAILABLE, details: 'the HTTP API is not up yet' });
    try {
      const answer = await handler({ from, method: req.method, path: req.path, body: req.body });
      const wrote = writeMethods.has(req.method) && answer.status < 300;
      const replicatedIndex = wrote && this.opts.role.kind === 'primary' ? this.flush() : 0;
      callback(null, {
        status: answer.status,
        contentType: answer.contentType,
        body: answer.body,
        run: replicatedIndex > 0 ? this.run : '',
        replicatedIndex,
      });
    } catch (err) {
      logger.error({ err, from }, 'a forwarded request failed');
      callback({ code: grpc.status.INTERNAL, details: 'the forwarded request failed' });
    }
  }

  /** Coalesces a burst of changes into one new state for every stream. */
  private changed(): void {
    if (this.pending || this.streams.size === 0) return;
    this.pending = setImmediate(() => {
      this.pending = undefined;
      this.broadcast();
    });
  }

  /**
   * Sends a coalesced change now; the index of the last state sent (0 with no stream open: no
   * secondary is waiting for one).
   */
  private flush(): number {
    if (this.pending) {
      clearImmediate(this.pending);
      this.pending = undefined;
      this.broadcast();
    }
    return this.streams.size > 0 ? this.index : 0;
  }

  private broadcast(): void {
    const state = this.replicatedState();
    for (const s of this.streams) s.write(state);
  }

  private replicatedState(): ReplicatedState {
    const { ca, catalog, states } = this.opts;
    const roots = ca.roots();
    return {
      index: ++this.index,
      roots: {
        trustDomain: roots.trustDomain,
        activeRootId: roots.activeRootId,
        rootPems: roots.roots.map((r) => r.certPem),
      },
      federationStates: states.all().map((s) => {
        const link = this.linkOf(s.datacenter);
        return {
          datacenter: s.datacenter,
          meshGateways: s.meshGateways.map((g) => ({ address: g.address, port: g.port })),
          updatedAt: s.updatedAt,
          servers: (s.servers ?? []).map((m) => ({ ...m })),
          linkUp: link.up,
          linkSince: link.since,
        };
      }),
      configEntries: catalog.allConfigEntries().map((e) => JSON.stringify(e)),
      run: this.run,
    };
  }
}

/** What is wrong with a federation state a datacenter reports, or undefined. */
export function stateProblem(msg: FederationState, expectedDc: string): string | undefined {
  if (msg.datacenter !== expectedDc)
    return `datacenter: ${JSON.stringify(msg.datacenter.slice(0, 64))} is not the certificate's ${expectedDc}`;
  if (msg.meshGateways.length > maxGateways)
    return `mesh_gateways: ${msg.meshGateways.length} gateways; at most ${maxGateways}`;
  if (msg.servers.length > maxServers)
    return `servers: ${msg.servers.length} servers; at most ${maxServers}`;
  for (const [i, m] of msg.servers.entries()) {
    if (m.name === '' || m.name.length > 253) return `servers[${i}].name: empty or too long`;
    if (m.address.length > 300) return `servers[${i}].address: too long`;
  }
  for (const [i, g] of msg.meshGateways.entries()) {
    if (isIP(g.address) === 0 && !dnsHostname.test(g.address))
      return `mesh_gateways[${i}].address: not an IP address or DNS name`;
    if (!Number.isInteger(g.port) || g.port < 1 || g.port > 65535)
      return `mesh_gateways[${i}].port: ${g.port} is not 1-65535`;
  }
  return undefined;
}

export function stateRecordOf(msg: FederationState): FederationStateRecord {
  return {
    datacenter: msg.datacenter,
    meshGateways: msg.meshGateways.map((g) => ({ address: g.address, port: g.port })),
    updatedAt: Number(msg.updatedAt),
    servers: msg.servers.map((m) => ({ name: m.name, address: m.address, leader: m.leader })),
  };
}

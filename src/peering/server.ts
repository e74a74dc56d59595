import { X509Certificate } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import {
  type CaEvent,
  type CertificateAuthority,
  GrpcCertificates,
  type LeafIdentity,
} from '../ca/index.js';
import { IsthmusError } from '../errors.js';
import { grpcStatusOf } from '../grpc-status.js';
import { type FieldError, invalidInput } from '../problems.js';
import {
  type ExchangeSecretRequest,
  type ExchangeSecretResponse,
  type PeeringServiceServer,
  PeeringServiceService,
  type ReplicationMessage,
} from '../gen/isthmus/peering/v1/peering.js';
import type { Logger } from '../log.js';
import { peeringServerName, peeringServerSpiffeId } from '../mesh/names.js';
import type { Peerings } from './peerings.js';
import { rootsCertify, trustDomainFix, trustDomainProblems } from './claims.js';
import { type Peering, isDialer } from './types.js';
import { maxMessageBytes } from './stream/messages.js';

/** The StreamResources handler the stream engine provides (until one is set: UNIMPLEMENTED). */
export type StreamHandler = grpc.handleBidiStreamingCall<ReplicationMessage, ReplicationMessage>;

export interface PeeringServerOptions {
  readonly peerings: Peerings;
  readonly ca: CertificateAuthority;
  readonly datacenter: string;
  readonly logger: Logger;
  readonly streamHandler?: StreamHandler | undefined;
}

/**
 * This cluster's peering identity: server certificate on the peering port, client certificate when
 * dialing.
 */
export function peeringIdentity(
  ca: Pick<CertificateAuthority, 'trustDomain'>,
  datacenter: string,
): LeafIdentity {
  return {
    spiffeId: peeringServerSpiffeId(ca.trustDomain, datacenter),
    dnsSans: [peeringServerName(ca.trustDomain, datacenter)],
  };
}

const maxDialerRoots = 16;

/**
 * Limits of the peering port (issue 18, docs/architecture.md §6 "Limits of the peering port"). A
 * peer needs one connection holding one stream, plus a unary ExchangeSecret now and then.
 */
export const peeringServerChannelOptions: grpc.ServerOptions = {
  'grpc.max_receive_message_length': maxMessageBytes,
  'grpc.max_concurrent_streams': 16,
  // A connection with no call for this long is closed: idle TLS connections hold no slot forever.
  'grpc.max_connection_idle_ms': 60_000,
};

/**
 * The peering port: gRPC over TLS with a CA leaf whose DNS SAN is `server.<dc>.peering.<td>`.
 *
 * Certificates are hot-swapped without a restart through grpc-js's certificate-provider server
 * credentials (`grpc.experimental.createCertificateProviderServerCredentials`): the server calls
 * `setSecureContext` on every provider update, so a renewed leaf (CA `leaf-renewed`) or a new set
 * of trusted client roots applies to new connections while open ones continue.
 *
 * Client certificates are requested but not required (`rejectUnauthorized: false`): ExchangeSecret
 * comes before the acceptor knows the dialer's roots. The trusted list offered is the local roots
 * plus every pinned dialer root; the stream checks the presented certificate against the roots
 * pinned for its own peering (see client-cert.ts).
 */
export class PeeringServer {
  private readonly server = new grpc.Server(peeringServerChannelOptions);
  private readonly certs = new GrpcCertificates();
  private readonly unsubscribe: (() => void)[] = [];
  private streamHandler: StreamHandler | undefined;
  private boundPort: number | undefined;

  constructor(private readonly opts: PeeringServerOptions) {
    this.streamHandler = opts.streamHandler;
    const impl: PeeringServiceServer = {
      exchangeSecret: (call, callback) => void this.exchangeSecret(call, callback),
      streamResources: (call) => this.streamResources(call),
    };
    this.server.addService(PeeringServiceService, impl);
  }

  /** Where the stream engine plugs in; may be called before or after `listen`. */
  setStreamHandler(handler: StreamHandler | undefined): void {
    this.streamHandler = handler;
  }

  get port(): number | undefined {
    return this.boundPort;
  }

  async listen(hostPort: string): Promise<number> {
    const { ca, datacenter, peerings } = this.opts;
    const identity = peeringIdentity(ca, datacenter);
    this.certs.setIdentity(await ca.leaf(identity));
    this.certs.setTrusted(this.trustedRoots());
    this.unsubscribe.push(
      ca.subscribe((event) => this.onCaEvent(event, identity)),
      // setTrusted ignores a list that did not change (most events are stream status updates).
      peerings.subscribe(() => this.certs.setTrusted(this.trustedRoots())),
    );
    const creds = grpc.experimental.createCertificateProviderServerCredentials(
      this.certs,
      this.certs,
      false,
    );
    this.boundPort = await new Promise<number>((resolve, reject) => {
      this.server.bindAsync(hostPort, creds, (err, port) => (err ? reject(err) : resolve(port)));
    });
    this.opts.logger.info(
      { addr: hostPort, port: this.boundPort, serverName: identity.dnsSans?.[0] },
      'peering server listening',
    );
    return this.boundPort;
  }

  async shutdown(graceMs = 5_000): Promise<void> {
    for (const stop of this.unsubscribe.splice(0)) stop();
    if (this.boundPort === undefined) return;
    this.boundPort = undefined;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      new Promise<void>((resolve) => this.server.tryShutdown(() => resolve())),
      new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs))),
    ]);
    clearTimeout(timer);
    this.server.forceShutdown();
  }

  private onCaEvent(event: CaEvent, identity: LeafIdentity): void {
    if (event.kind === 'roots-changed') this.certs.setTrusted(this.trustedRoots());
    else if (event.leaf.spiffeId === identity.spiffeId) {
      this.certs.setIdentity(event.leaf);
      this.opts.logger.info(
        { serial: event.leaf.serial, rootId: event.leaf.rootId },
        'peering server certificate renewed',
      );
    }
  }

  /** Local roots, then the pinned roots of every peering this cluster accepts, without repeats. */
  private trustedRoots(): string[] {
    const pems = this.opts.ca.roots().roots.map((r) => r.certPem.trimEnd());
    for (const p of this.opts.peerings.list())
      if (!isDialer(p)) pems.push(...p.peerCaPems.map((pem) => pem.trimEnd()));
    return [...new Set(pems)];
  }

  private streamResources(
    call: grpc.ServerDuplexStream<ReplicationMessage, ReplicationMessage>,
  ): void {
    const handler = this.streamHandler;
    if (handler) return handler(call);
    call.emit('error', {
      code: grpc.status.UNIMPLEMENTED,
      details: 'the replication stream is not served yet',
    });
  }

  private async exchangeSecret(
    call: grpc.ServerUnaryCall<ExchangeSecretRequest, ExchangeSecretResponse>,
    callback: grpc.sendUnaryData<ExchangeSecretResponse>,
  ): Promise<void> {
    const req = call.request;
    try {
      validateExchange(req);
      const { peerings, ca } = this.opts;
      const claimed = (record: Peering) =>
        refuseClaims([
          ...trustDomainProblems(
            req.dialerTrustDomain,
            'dialer_trust_domain',
            {
              ownTrustDomain: ca.trustDomain,
              peerings: peerings.list(),
              peeringName: record.name,
            },
            req.dialerRootPems,
          ),
          ...rootsCertify(req.dialerTrustDomain, req.dialerRootPems, 'dialer_root_pems'),
        ]);
      const { streamSecret } = await peerings.exchangeSecret(
        {
          peerId: req.peerId,
          establishmentSecret: req.establishmentSecret,
          dialerRootPems: req.dialerRootPems,
          dialerTrustDomain: req.dialerTrustDomain,
          dialerRemote: {
            partition: req.dialer?.partition ?? '',
            datacenter: req.dialer?.datacenter ?? '',
          },
        },
        claimed,
      );
      callback(null, { streamSecret });
    } catch (err) {
      const e = IsthmusError.from(err);
      // IDs and the caller's address only: never the secret.
      this.opts.logger.warn(
        {
          peeringId: req.peerId.slice(0, 64),
          from: call.getPeer(),
          code: e.code,
          reason: e.message,
        },
        'peering secret exchange refused',
      );
      callback({ code: grpcStatusOf(e), details: e.message });
    }
  }
}

/** The dialer's trust-domain claim, refused with every problem and what to do about it. */
function refuseClaims(problems: readonly FieldError[]): void {
  if (problems.length === 0) return;
  const e = invalidInput(problems);
  throw new IsthmusError('invalid_argument', `${e.message} (${trustDomainFix})`, e.field);
}

function validateExchange(req: ExchangeSecretRequest): void {
  const missing = (field: string) =>
    new IsthmusError('invalid_argument', `${field}: missing`, field);
  if (!req.peerId) throw missing('peer_id');
  if (!req.establishmentSecret) throw missing('establishment_secret');
  if (!req.dialerTrustDomain) throw missing('dialer_trust_domain');
  if (req.dialerRootPems.length === 0) throw missing('dialer_root_pems');
  if (req.dialerRootPems.length > maxDialerRoots)
    throw new IsthmusError(
      'invalid_argument',
      `dialer_root_pems: more than ${maxDialerRoots} roots`,
      'dialer_root_pems',
    );
  req.dialerRootPems.forEach((pem, i) => {
    try {
      if (!new X509Certificate(pem).ca) throw new Error('not a CA');
    } catch {
      throw new IsthmusError(
        'invalid_argument',
        `dialer_root_pems[${i}]: not a PEM CA certificate`,
        `dialer_root_pems[${i}]`,
      );
    }
  });
}

import type * as grpc from '@grpc/grpc-js';
import type { Leaf } from './types.js';

/**
 * One grpc-js CertificateProvider serving both the identity (a CA leaf) and the CA list (trusted
 * client roots), for `grpc.experimental.createCertificateProviderServerCredentials`: the server
 * applies every update to new connections while open ones continue (the peering and xDS ports).
 * Listeners hear the latest value on the next tick after subscribing, as grpc-js's own providers
 * do (the server registers its watcher after subscribing).
 */
export class GrpcCertificates implements grpc.experimental.CertificateProvider {
  private identity: grpc.experimental.IdentityCertificateUpdate | undefined;
  private trusted: grpc.experimental.CaCertificateUpdate | undefined;
  private readonly identityListeners =
    new Set<grpc.experimental.IdentityCertificateUpdateListener>();
  private readonly caListeners = new Set<grpc.experimental.CaCertificateUpdateListener>();

  setIdentity(leaf: Leaf): void {
    this.identity = {
      certificate: Buffer.from(leaf.certPem),
      privateKey: Buffer.from(leaf.keyPem),
    };
    for (const l of this.identityListeners) l(this.identity);
  }

  setTrusted(pems: readonly string[]): void {
    const caCertificate = Buffer.from(`${pems.join('\n')}\n`);
    if (this.trusted?.caCertificate.equals(caCertificate)) return;
    this.trusted = { caCertificate };
    for (const l of this.caListeners) l(this.trusted);
  }

  addCaCertificateListener(listener: grpc.experimental.CaCertificateUpdateListener): void {
    this.caListeners.add(listener);
    if (this.trusted) process.nextTick(listener, this.trusted);
  }

  removeCaCertificateListener(listener: grpc.experimental.CaCertificateUpdateListener): void {
    this.caListeners.delete(listener);
  }

  addIdentityCertificateListener(
    listener: grpc.experimental.IdentityCertificateUpdateListener,
  ): void {
    this.identityListeners.add(listener);
    if (this.identity) process.nextTick(listener, this.identity);
  }

  removeIdentityCertificateListener(
    listener: grpc.experimental.IdentityCertificateUpdateListener,
  ): void {
    this.identityListeners.delete(listener);
  }
}

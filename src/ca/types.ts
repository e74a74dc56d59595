/** The built-in CA's public surface, as the snapshot layer, the HTTP API and peering use it. */

export interface CaRoot {
  readonly id: string;
  readonly certPem: string;
  readonly active: boolean;
  readonly notBefore: Date;
  readonly notAfter: Date;
  /**
   * Consul's descriptive fields, served by `GET /v1/connect/ca/roots` (optional for test fakes).
   */
  readonly name?: string;
  readonly serialNumber?: number;
  /** Subject key identifier, colon-hex. */
  readonly signingKeyId?: string;
  /** Store revisions at which the root was created and last changed. */
  readonly createIndex?: number;
  readonly modifyIndex?: number;
}

export interface CaRoots {
  readonly trustDomain: string;
  readonly activeRootId: string;
  /** Every root proxies must trust now (two during a rotation), active first. */
  readonly roots: readonly CaRoot[];
}

/** Who a leaf certificate is for: its SPIFFE URI SAN, and DNS SANs for TLS servers (peering). */
export interface LeafIdentity {
  readonly spiffeId: string;
  readonly dnsSans?: readonly string[] | undefined;
  /**
   * The proxy instance that holds the leaf (its proxy ID): each holder gets its own key pair and
   * serial under the shared SPIFFE ID, one leaf at a time, until `release` (issue 18). Absent: the
   * server's own leaves (the peering port), one per identity.
   */
  readonly holder?: string | undefined;
}

export interface Leaf {
  readonly spiffeId: string;
  /** The proxy instance it was issued to (`LeafIdentity.holder`). */
  readonly holder?: string | undefined;
  readonly certPem: string;
  /** PKCS#8 PEM; never logged. */
  readonly keyPem: string;
  readonly serial: string;
  /** The root that signed it. */
  readonly rootId: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
}

export type CaEvent =
  | { readonly kind: 'roots-changed'; readonly roots: CaRoots }
  | { readonly kind: 'leaf-renewed'; readonly leaf: Leaf };

export interface CertificateAuthority {
  readonly clusterId: string;
  readonly trustDomain: string;
  roots(): CaRoots;
  /**
   * The current leaf for an identity: issued on first use, cached, renewed well before expiry and
   * re-issued under a new root during rotation (each renewal is a `leaf-renewed` event).
   */
  leaf(identity: LeafIdentity): Promise<Leaf>;
  /**
   * The holder is gone (its proxy was deregistered): its leaf is dropped, no longer renewed, and
   * never handed out again; an issuance under way is discarded. A holder of the same ID later
   * gets a new key pair.
   */
  release(holder: string): void;
  /** Starts a root rotation that never breaks a connection (see ca/README or the code). */
  rotate(): Promise<void>;
  subscribe(listener: (event: CaEvent) => void): () => void;
  /**
   * WAN federation, primary only: signs a secondary's intermediate CA request with the active root
   * (docs/architecture.md §6c). Absent on a CA that holds no root.
   */
  signIntermediate?(csrPem: string, datacenter: string): Promise<string>;
  close(): Promise<void>;
}

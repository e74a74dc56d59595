/**
 * The JSON the web UI reads (issue 17; docs/architecture.md §2 "Web UI"), declared once for the
 * server and the browser: `ui-views.ts` builds these shapes and `ui/src` imports this file as is.
 * It imports nothing, so the UI's compile (DOM types only) and bundle take no server module.
 * Shapes of other layers (proxy status, troubleshoot) appear as the fields the UI reads; tsc
 * checks in `ui-routes.ts` that the served JSON is assignable to them.
 */

export type IntentionAction = 'allow' | 'deny';

/** `catalog/types.ts` HealthStatus. */
export type HealthJson = 'passing' | 'warning' | 'critical';

/** `peering/types.ts` PeeringState. */
export type PeeringStateJson =
  | 'PENDING'
  | 'ESTABLISHING'
  | 'ACTIVE'
  | 'FAILING'
  | 'DELETING'
  | 'TERMINATED';

/**
 * A peering in Consul's `api.Peering` JSON, plus LastError, LastNack and Healthy. Never a secret.
 */
export interface PeeringJson {
  readonly ID: string;
  readonly Name: string;
  readonly State: PeeringStateJson;
  readonly PeerID: string;
  readonly PeerServerName: string;
  readonly PeerServerAddresses: readonly string[];
  readonly PeerCAPems: readonly string[];
  readonly Meta: Readonly<Record<string, string>>;
  readonly Remote: { readonly Partition: string; readonly Datacenter: string };
  readonly StreamStatus: {
    readonly ImportedServices: readonly string[];
    readonly ExportedServices: readonly string[];
    readonly LastHeartbeat: string | null;
    readonly LastReceive: string | null;
    readonly LastSend: string | null;
    readonly LastError: string;
    readonly LastNack: string;
  };
  readonly Healthy: boolean;
  readonly CreateIndex: number;
  readonly ModifyIndex: number;
  readonly DeletedAt?: string;
}

/** A peering as the overview shows it: no CA PEMs, with counts and the heartbeat's age. */
export type UiPeeringJson = Omit<PeeringJson, 'PeerCAPems'> & {
  readonly ImportedCount: number;
  readonly ExportedCount: number;
  /** Milliseconds since the last heartbeat when the answer was built; null before the first. */
  readonly HeartbeatAgeMs: number | null;
};

export interface UiRootJson {
  readonly ID: string;
  readonly Name: string;
  readonly Active: boolean;
  readonly NotAfter: string;
  /** Milliseconds until NotAfter when the answer was built (negative: expired). */
  readonly ExpiresInMs: number;
}

export interface UiServerJson {
  readonly Name: string;
  readonly Version: string;
  readonly HTTP: string;
  readonly XDS: string;
  readonly Peering: string;
  /** It runs the peering streams and CA rotation. */
  readonly Leader: boolean;
  /** Proxies connected to it; null for another server (its Proxies page rows say). */
  readonly ConnectedProxies: number | null;
}

export interface UiOverviewJson {
  readonly Datacenter: string;
  readonly TrustDomain: string;
  readonly DefaultIntentionAction: IntentionAction;
  readonly Roots: readonly UiRootJson[];
  readonly Servers: readonly UiServerJson[];
  /** Unhealthy ones first, then by name. */
  readonly Peerings: readonly UiPeeringJson[];
}

export interface UiInstanceJson {
  readonly ID: string;
  readonly Address: string;
  readonly Port: number;
  readonly Health: HealthJson;
  readonly Checks: readonly { readonly Name: string; readonly Status: string }[];
  /** Sidecars: the upstreams, `api` or `api?peer=a`. */
  readonly Upstreams?: readonly string[];
}

export interface UiServiceJson {
  readonly Name: string;
  readonly Kind: 'service' | 'mesh-gateway';
  readonly Instances: readonly UiInstanceJson[];
  readonly Sidecars: readonly UiInstanceJson[];
  /** Peers the service is exported to (local services only). */
  readonly ExportedTo: readonly string[];
}

export interface UiServicesJson {
  readonly Local: readonly UiServiceJson[];
  readonly Imported: readonly {
    readonly Peer: string;
    readonly Services: readonly UiServiceJson[];
  }[];
}

/** A node of the topology: a local service (`api`), an imported one (`a/api`), or `*`. */
export interface UiNodeJson {
  readonly ID: string;
  readonly Name: string;
  /** '' for local services. */
  readonly Peer: string;
}

export interface UiEdgeJson {
  readonly From: string;
  readonly To: string;
  /** `remote`: the destination is a peer's; its own intentions decide, not ours. */
  readonly Action: IntentionAction | 'l7' | 'remote';
  /** The intention that decides; absent for the mesh default and remote destinations. */
  readonly Intention?: string;
  /** A sidecar of From names To as an upstream. */
  readonly Upstream: boolean;
}

export interface UiTopologyJson {
  readonly DefaultIntentionAction: IntentionAction;
  readonly Nodes: readonly UiNodeJson[];
  readonly Edges: readonly UiEdgeJson[];
}

/** What the UI reads of `GET /v1/xds/proxies[/:id]` (`xds-routes.ts` ProxyJson). */
export interface UiProxyJson {
  readonly ID: string;
  readonly Kind: string;
  /** The server of the cluster the proxy is connected to. */
  readonly Server?: string;
  readonly Cluster: string;
  readonly API: string;
  readonly ConnectedAt: string;
  readonly Version: string;
  readonly Types: Readonly<Record<string, { readonly status: string } | undefined>>;
  readonly LastNack?:
    | { readonly Type: string; readonly Message: string; readonly At: string }
    | undefined;
}

/** What the UI reads of `GET /v1/xds/proxies/:id/config/:type` (secrets already redacted). */
export interface UiProxyConfigJson {
  readonly Resources: readonly {
    readonly Name: string;
    readonly Status: string;
    readonly Resource: unknown;
  }[];
}

/** What the UI reads of a troubleshoot checklist (`GET /v1/ui/why`). */
export interface UiChecklistJson {
  readonly Subject: string;
  readonly OK: boolean;
  readonly Checks: readonly {
    readonly Name: string;
    readonly OK: boolean;
    readonly Detail: string;
    readonly Fix?: string;
    readonly Skipped?: true;
  }[];
}

/** What changed, as the web UI refetches it: each page lists the topics it shows. */
export type UiTopic = 'catalog' | 'peerings' | 'ca' | 'proxies';

/** The data of an `event: change` frame of `GET /v1/ui/events`. */
export interface UiChangeJson {
  readonly topics: readonly UiTopic[];
}

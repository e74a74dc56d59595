// The JSON the UI reads: the fields it shows of src/api/ui-views.ts, src/api/xds-routes.ts and
// src/troubleshoot/checklist.ts (declared here so that no server module is compiled for the
// browser; the browser tests in test/ui/ check the two agree).

export type Action = 'allow' | 'deny';

export interface UiOverviewJson {
  readonly Datacenter: string;
  readonly TrustDomain: string;
  readonly DefaultIntentionAction: Action;
  readonly Roots: readonly {
    readonly ID: string;
    readonly Name: string;
    readonly Active: boolean;
    readonly NotAfter: string;
    readonly ExpiresInMs: number;
  }[];
  readonly Servers: readonly {
    readonly Name: string;
    readonly Version: string;
    readonly HTTP: string;
    readonly XDS: string;
    readonly Peering: string;
    readonly Leader: boolean;
    readonly ConnectedProxies: number | null;
  }[];
  readonly Peerings: readonly {
    readonly Name: string;
    readonly State: string;
    readonly Healthy: boolean;
    readonly Remote: { readonly Datacenter: string };
    readonly StreamStatus: { readonly LastError: string };
    readonly ImportedCount: number;
    readonly ExportedCount: number;
    readonly HeartbeatAgeMs: number | null;
  }[];
}

export interface UiInstanceJson {
  readonly ID: string;
  readonly Address: string;
  readonly Port: number;
  readonly Health: string;
  readonly Upstreams?: readonly string[];
}

export interface UiServiceJson {
  readonly Name: string;
  readonly Kind: 'service' | 'mesh-gateway';
  readonly Instances: readonly UiInstanceJson[];
  readonly Sidecars: readonly UiInstanceJson[];
  readonly ExportedTo: readonly string[];
}

export interface UiServicesJson {
  readonly Local: readonly UiServiceJson[];
  readonly Imported: readonly {
    readonly Peer: string;
    readonly Services: readonly UiServiceJson[];
  }[];
}

export interface UiNodeJson {
  readonly ID: string;
  readonly Name: string;
  readonly Peer: string;
}

export interface UiEdgeJson {
  readonly From: string;
  readonly To: string;
  readonly Action: Action | 'l7' | 'remote';
  readonly Intention?: string;
  readonly Upstream: boolean;
}

export interface UiTopologyJson {
  readonly DefaultIntentionAction: Action;
  readonly Nodes: readonly UiNodeJson[];
  readonly Edges: readonly UiEdgeJson[];
}

export interface ProxyJson {
  readonly ID: string;
  readonly Kind: string;
  /** The server of the cluster the proxy is connected to. */
  readonly Server?: string;
  readonly Cluster: string;
  readonly API: string;
  readonly ConnectedAt: string;
  readonly Version: string;
  readonly Types: Readonly<Record<string, { readonly status: string } | undefined>>;
  readonly LastNack?: { readonly Type: string; readonly Message: string; readonly At: string };
}

export interface ProxyConfigJson {
  readonly Resources: readonly {
    readonly Name: string;
    readonly Status: string;
    readonly Resource: unknown;
  }[];
}

export interface Checklist {
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

/** What every page gets from the app. */
export interface PageProps {
  readonly onNeedsToken: () => void;
}

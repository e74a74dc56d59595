/**
 * `service-splitter` and `service-router` as parsed (Consul's JSON shapes; docs/architecture.md
 * §5b "Routers and splitters"). Empty strings mean "unset" (the entry's own service, no subset).
 */

/** Headers added, set (replacing) or removed on a request or a response. */
export interface HeaderModifiers {
  readonly add: Readonly<Record<string, string>>;
  readonly set: Readonly<Record<string, string>>;
  readonly remove: readonly string[];
}

export interface ServiceSplit {
  /** Percent, with at most two decimals (Envoy gets it in 1/10000). */
  readonly weight: number;
  readonly service: string;
  readonly serviceSubset: string;
  /** isthmus extension: a peer's service (Consul reaches one through a resolver's Redirect). */
  readonly peer: string;
  readonly requestHeaders?: HeaderModifiers | undefined;
  readonly responseHeaders?: HeaderModifiers | undefined;
}

export interface ServiceSplitterEntry {
  readonly kind: 'service-splitter';
  readonly name: string;
  readonly namespace: string;
  readonly partition: string;
  readonly splits: readonly ServiceSplit[];
}

/** One of `present`, `exact`, `prefix`, `suffix`, `regex` is set. */
export interface HeaderMatch {
  readonly name: string;
  readonly present: boolean;
  readonly exact: string;
  readonly prefix: string;
  readonly suffix: string;
  readonly regex: string;
  readonly invert: boolean;
}

/** One of `present`, `exact`, `regex` is set. */
export interface QueryParamMatch {
  readonly name: string;
  readonly present: boolean;
  readonly exact: string;
  readonly regex: string;
}

export interface RouteHttpMatch {
  /** At most one of the three path matches is set; none: every path. */
  readonly pathExact: string;
  readonly pathPrefix: string;
  readonly pathRegex: string;
  /** The path match ignores case (Consul's `CaseInsensitive`; absent: case-sensitive). */
  readonly caseInsensitive?: boolean | undefined;
  readonly header: readonly HeaderMatch[];
  readonly queryParam: readonly QueryParamMatch[];
  readonly methods: readonly string[];
}

export interface RouteDestination {
  readonly service: string;
  readonly serviceSubset: string;
  readonly prefixRewrite: string;
  /** 0: unset. */
  readonly requestTimeoutMs: number;
  readonly idleTimeoutMs: number;
  readonly numRetries: number;
  readonly retryOnConnectFailure: boolean;
  readonly retryOn: readonly string[];
  readonly retryOnStatusCodes: readonly number[];
  readonly requestHeaders?: HeaderModifiers | undefined;
  readonly responseHeaders?: HeaderModifiers | undefined;
}

export interface ServiceRoute {
  readonly match: RouteHttpMatch;
  readonly destination: RouteDestination;
}

export interface ServiceRouterEntry {
  readonly kind: 'service-router';
  readonly name: string;
  readonly namespace: string;
  readonly partition: string;
  /** In order: the first that matches wins; unmatched requests go to the service itself. */
  readonly routes: readonly ServiceRoute[];
}

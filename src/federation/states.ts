import { z } from 'zod';
import type { Logger } from '../log.js';
import type { Store } from '../store/index.js';
import { RecordCollection } from '../store/records.js';

/**
 * Federation states (Consul's name, `agent/consul/leader_federation_state_ae.go`): per datacenter,
 * the WAN addresses of its mesh gateways that expose servers. Each datacenter reports its own; the
 * primary keeps them all and replicates the set to every secondary, so every gateway and sidecar
 * knows every other datacenter's gateways with nothing registered by hand.
 */
export interface FederationStateRecord {
  readonly datacenter: string;
  readonly meshGateways: readonly { readonly address: string; readonly port: number }[];
  /** Milliseconds since the epoch, as the datacenter itself last changed it. */
  readonly updatedAt: number;
  /** Its servers as it last reported them (`isthmus members --wan`); absent in older records. */
  readonly servers?: readonly WanServerRecord[] | undefined;
}

/** One server of a datacenter: its node name and federation address (what its gateways dial). */
export interface WanServerRecord {
  readonly name: string;
  readonly address: string;
  readonly leader: boolean;
}

const stateRecord: z.ZodType<FederationStateRecord> = z.strictObject({
  datacenter: z.string(),
  meshGateways: z.array(z.strictObject({ address: z.string(), port: z.number() })),
  updatedAt: z.number(),
  servers: z
    .array(z.strictObject({ name: z.string(), address: z.string(), leader: z.boolean() }))
    .optional(),
});

/** `federation/states/<dc>` */
const storedStates = new RecordCollection(
  { what: 'federation state', version: 1, schema: stateRecord },
  'federation/states/',
);

const sameGateways = (a: FederationStateRecord, b: FederationStateRecord): boolean =>
  JSON.stringify(a.meshGateways) === JSON.stringify(b.meshGateways);
const sameServers = (a: FederationStateRecord, b: FederationStateRecord): boolean =>
  JSON.stringify(a.servers ?? []) === JSON.stringify(b.servers ?? []);

/** The federation states this server knows, persisted (a restart serves the last known set). */
export class FederationStates {
  private readonly byDc = new Map<string, FederationStateRecord>();
  /** Told of gateway changes (proxies are rebuilt), or of every change (`any`). */
  private readonly listeners = new Map<() => void, { readonly any: boolean }>();

  private constructor(
    private readonly store: Store,
    private readonly logger: Logger,
  ) {}

  static async open(store: Store, logger: Logger): Promise<FederationStates> {
    const states = new FederationStates(store, logger);
    for (const { value } of await storedStates.list(store))
      states.byDc.set(value.datacenter, value);
    return states;
  }

  /** Every state, by datacenter name. */
  all(): readonly FederationStateRecord[] {
    return [...this.byDc.values()].sort((a, b) => (a.datacenter < b.datacenter ? -1 : 1));
  }

  get(dc: string): FederationStateRecord | undefined {
    return this.byDc.get(dc);
  }

  /** Records one datacenter's state; unchanged gateways and servers are not written again. */
  async put(state: FederationStateRecord): Promise<void> {
    const old = this.byDc.get(state.datacenter);
    if (old && sameGateways(old, state) && sameServers(old, state)) return;
    await this.store.txn(async (tx) => {
      storedStates.put(tx, state.datacenter, state);
    });
    this.byDc.set(state.datacenter, state);
    this.logger.info(
      {
        datacenter: state.datacenter,
        meshGateways: state.meshGateways.length,
        servers: state.servers?.length ?? 0,
      },
      'federation state updated',
    );
    this.emit(!old || !sameGateways(old, state));
  }

  /** A secondary takes the primary's whole set (its own state included, as the primary has it). */
  async replaceAll(states: readonly FederationStateRecord[]): Promise<void> {
    const next = new Map(states.map((s) => [s.datacenter, s]));
    const differs = (same: typeof sameGateways) =>
      next.size !== this.byDc.size ||
      [...next.values()].some((s) => {
        const old = this.byDc.get(s.datacenter);
        return !old || !same(old, s);
      });
    const gatewaysChanged = differs(sameGateways);
    if (!gatewaysChanged && !differs(sameServers)) return;
    await this.store.txn(async (tx) => {
      for (const dc of this.byDc.keys()) if (!next.has(dc)) storedStates.delete(tx, dc);
      for (const s of next.values()) storedStates.put(tx, s.datacenter, s);
    });
    this.byDc.clear();
    for (const [dc, s] of next) this.byDc.set(dc, s);
    this.logger.info({ datacenters: [...next.keys()] }, 'federation states replicated');
    this.emit(gatewaysChanged);
  }

  /**
   * Calls `listener` when a datacenter's gateways change (what proxies are built from), or with
   * `any` on every change, a datacenter's servers too (what the primary replicates).
   */
  subscribe(listener: () => void, opts: { readonly any?: boolean } = {}): () => void {
    this.listeners.set(listener, { any: opts.any ?? false });
    return () => this.listeners.delete(listener);
  }

  private emit(gatewaysChanged: boolean): void {
    for (const [l, { any }] of [...this.listeners]) {
      if (!any && !gatewaysChanged) continue;
      try {
        l();
      } catch (err) {
        this.logger.error({ err }, 'federation state listener failed');
      }
    }
  }
}

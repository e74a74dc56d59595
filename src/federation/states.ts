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
}

const stateRecord: z.ZodType<FederationStateRecord> = z.strictObject({
  datacenter: z.string(),
  meshGateways: z.array(z.strictObject({ address: z.string(), port: z.number() })),
  updatedAt: z.number(),
});

/** `federation/states/<dc>` */
const storedStates = new RecordCollection(
  { what: 'federation state', version: 1, schema: stateRecord },
  'federation/states/',
);

const sameGateways = (a: FederationStateRecord, b: FederationStateRecord): boolean =>
  JSON.stringify(a.meshGateways) === JSON.stringify(b.meshGateways);

/** The federation states this server knows, persisted (a restart serves the last known set). */
export class FederationStates {
  private readonly byDc = new Map<string, FederationStateRecord>();
  private readonly listeners = new Set<() => void>();

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

  /** Records one datacenter's state; an unchanged gateway list is not written again. */
  async put(state: FederationStateRecord): Promise<void> {
    const old = this.byDc.get(state.datacenter);
    if (old && sameGateways(old, state)) return;
    await this.store.txn(async (tx) => {
      storedStates.put(tx, state.datacenter, state);
    });
    this.byDc.set(state.datacenter, state);
    this.logger.info(
      { datacenter: state.datacenter, meshGateways: state.meshGateways.length },
      'federation state updated',
    );
    this.emit();
  }

  /** A secondary takes the primary's whole set (its own state included, as the primary has it). */
  async replaceAll(states: readonly FederationStateRecord[]): Promise<void> {
    const next = new Map(states.map((s) => [s.datacenter, s]));
    const changed =
      next.size !== this.byDc.size ||
      [...next.values()].some((s) => {
        const old = this.byDc.get(s.datacenter);
        return !old || !sameGateways(old, s);
      });
    if (!changed) return;
    await this.store.txn(async (tx) => {
      for (const dc of this.byDc.keys()) if (!next.has(dc)) storedStates.delete(tx, dc);
      for (const s of next.values()) storedStates.put(tx, s.datacenter, s);
    });
    this.byDc.clear();
    for (const [dc, s] of next) this.byDc.set(dc, s);
    this.logger.info({ datacenters: [...next.keys()] }, 'federation states replicated');
    this.emit();
  }

  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private emit(): void {
    for (const l of [...this.listeners]) {
      try {
        l();
      } catch (err) {
        this.logger.error({ err }, 'federation state listener failed');
      }
    }
  }
}

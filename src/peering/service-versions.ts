import { randomBytes } from 'node:crypto';
import type { ExportedService } from '../gen/isthmus/peering/v1/peering.js';
import type { ResourceChange } from './stream/types.js';

type Emit = (change: ResourceChange) => void;

/** What was last sent of one service: its version, and each instance's JSON by ID. */
interface SentService {
  readonly version: string;
  readonly instances: ReadonlyMap<string, string>;
  readonly patch: boolean;
}

/**
 * The exporter's memory of what the peer was sent, per service, and the choice between a patch
 * and the full state (docs/architecture.md §6 "Replicated").
 */
export class ServiceVersions {
  private readonly sent = new Map<string, SentService>();
  /** Versions are unique per stream, so a patch never matches a version of an earlier stream. */
  private readonly tag = randomBytes(6).toString('base64url');
  private counter = 0;

  constructor(
    private readonly compute: (name: string) => ExportedService,
    private readonly emit: Emit,
  ) {}

  names(): string[] {
    return [...this.sent.keys()];
  }

  /** Sends what changed of `name` since it was last sent: nothing, a patch, or its full state. */
  send(name: string): void {
    const service = this.compute(name);
    const instances = new Map(service.instances.map((i) => [i.id, JSON.stringify(i)]));
    const last = this.sent.get(name);
    const upserted = service.instances.filter(
      (i) => last?.instances.get(i.id) !== instances.get(i.id),
    );
    const removed = last ? [...last.instances.keys()].filter((id) => !instances.has(id)) : [];
    if (last && upserted.length === 0 && removed.length === 0) return;
    const version = `${this.tag}.${++this.counter}`;
    const patch =
      last !== undefined &&
      instances.size === service.instances.length && // IDs unique: a patch can name each
      2 * (upserted.length + removed.length) < service.instances.length;
    this.sent.set(name, { version, instances, patch });
    if (!patch) {
      this.emit({ resourceId: name, operation: 'upsert', resource: { ...service, version } });
      return;
    }
    const resource: ExportedService = {
      service: service.service,
      instances: upserted,
      version,
      patch: { baseVersion: last.version, removedInstanceIds: removed },
    };
    this.emit({ resourceId: name, operation: 'patch', resource });
  }

  delete(name: string): void {
    this.sent.delete(name);
    this.emit({ resourceId: name, operation: 'delete' });
  }

  /**
   * The peer refused a change to `name`. After a refused patch the full state goes at once (the
   * peer holds another version); after a refused full state the next change sends it again.
   */
  rejected(name: string): void {
    const last = this.sent.get(name);
    if (!last) return;
    this.sent.delete(name);
    if (last.patch) this.send(name);
  }
}

import { IsthmusError } from '../errors.js';

/**
 * The stream limits of the xDS port (issue 18). `maxStreams` counts admitted streams only: a
 * stream without a valid token or first request holds no slot, so idle unauthenticated streams
 * cannot lock real proxies out. `maxPerToken` counts every open stream of one proxy token
 * (admitted or not), so one leaked token cannot fill the server either.
 */
export class StreamSlots<S extends object = object> {
  private readonly admitted = new Set<S>();
  private readonly tokenOf = new Map<S, string>();
  private readonly perToken = new Map<string, number>();

  constructor(
    private readonly maxStreams: number,
    private readonly maxPerToken: number,
  ) {}

  /**
   * A stream carrying `token` may open; throws resource_exhausted when the token is at its limit.
   */
  open(token: string | undefined): void {
    if (token === undefined) return;
    if ((this.perToken.get(token) ?? 0) >= this.maxPerToken) {
      throw new IsthmusError(
        'resource_exhausted',
        `this proxy token already holds ${this.maxPerToken} xDS streams (--xds-max-streams-per-token ${this.maxPerToken}); close one or raise the limit`,
      );
    }
  }

  /** Counts the stream that `open` let through under its token. */
  opened(stream: S, token: string | undefined): void {
    if (token === undefined) return;
    this.tokenOf.set(stream, token);
    this.perToken.set(token, (this.perToken.get(token) ?? 0) + 1);
  }

  /** Takes a slot for an admitted stream; throws resource_exhausted when none is left. */
  claim(stream: S): void {
    if (this.admitted.size >= this.maxStreams) {
      throw new IsthmusError(
        'resource_exhausted',
        `xDS stream limit reached (${this.maxStreams}); retry later or raise --xds-max-streams`,
      );
    }
    this.admitted.add(stream);
  }

  /** Streams holding a slot: those admitted and not yet closed. */
  get admittedCount(): number {
    return this.admitted.size;
  }

  /** The stream closed: frees what it held. True when it held a slot. */
  release(stream: S): boolean {
    const token = this.tokenOf.get(stream);
    if (token !== undefined) {
      this.tokenOf.delete(stream);
      const left = (this.perToken.get(token) ?? 1) - 1;
      if (left > 0) this.perToken.set(token, left);
      else this.perToken.delete(token);
    }
    return this.admitted.delete(stream);
  }
}

import { randomUUID } from 'node:crypto';
import type { Metadata } from '@grpc/grpc-js';
import { IsthmusError } from '../errors.js';
import type { Logger } from '../log.js';
import { z } from 'zod';
import { RecordCollection, type Store } from '../store/index.js';
import { TokenIndex } from './token-index.js';
import { hashSecret, newSecret } from './token-secret.js';
import { xdsTokenHeader } from '../mesh/bootstrap.js';

/** A proxy token as listed: never with its secret. */
export interface ProxyToken {
  readonly accessorId: string;
  readonly proxyId: string;
  /** ISO 8601. */
  readonly createTime: string;
}

/** Returned once, at creation: the only time the secret is known to the server. */
export interface CreatedProxyToken extends ProxyToken {
  readonly secretId: string;
}

type TokenRecord = {
  readonly accessorId: string;
  readonly proxyId: string;
  /** SHA-256 of the secret, hex. */
  readonly secretHash: string;
  readonly createTime: string;
};

const tokenRecord: z.ZodType<TokenRecord> = z.strictObject({
  accessorId: z.string(),
  proxyId: z.string(),
  secretHash: z.string(),
  createTime: z.string(),
});

/** `acl/tokens/<accessor ID>` */
const storedTokens = new RecordCollection(
  { what: 'proxy token', version: 1, schema: tokenRecord },
  'acl/tokens/',
);
const maxProxyIdLength = 256;

/** Opens the token index: loaded from the store, then kept current by a watch on `acl/tokens/`. */
export async function openProxyTokens(
  store: Store,
  opts: { logger: Logger; clock?: () => number },
): Promise<ProxyTokens> {
  const tokens = new ProxyTokens(store, opts.logger, opts.clock ?? Date.now);
  await tokens.load();
  return tokens;
}

/**
 * Proxy tokens bind an xDS stream to one proxy ID (issue 3 §3): a proxy must never receive another
 * identity's private key. The store holds accessor ID, proxy ID and the secret's SHA-256 only.
 */
export class ProxyTokens {
  private readonly revokedListeners = new Set<(proxyId: string) => void>();
  private readonly tokens: TokenIndex<TokenRecord>;

  constructor(
    store: Store,
    private readonly logger: Logger,
    private readonly now: () => number,
  ) {
    this.tokens = new TokenIndex(store, storedTokens, {
      what: 'proxy token',
      logger,
      // Streams a deleted (or now invalid) token admitted must be checked again.
      onChange: (old, next) => {
        if (old && !next) for (const listener of this.revokedListeners) listener(old.proxyId);
      },
    });
  }

  load(): Promise<void> {
    return this.tokens.load();
  }

  async create(proxyId: unknown): Promise<CreatedProxyToken> {
    const id = parseProxyId(proxyId);
    const secretId = newSecret();
    const record: TokenRecord = {
      accessorId: randomUUID(),
      proxyId: id,
      secretHash: hashSecret(secretId).toString('hex'),
      createTime: new Date(this.now()).toISOString(),
    };
    await this.tokens.add(record);
    this.logger.info({ accessorId: record.accessorId, proxyId: id }, 'proxy token created');
    return { ...publicView(record), secretId };
  }

  /** Every token, oldest first. */
  list(): ProxyToken[] {
    return this.tokens.all().map(publicView);
  }

  async delete(accessorId: string): Promise<void> {
    const record = await this.tokens.remove(accessorId);
    this.logger.info({ accessorId, proxyId: record.proxyId }, 'proxy token deleted');
  }

  /**
   * The check when an xDS stream opens, before any message is read (issue 18): the stream's
   * `x-isthmus-token` metadata must carry a valid proxy token. Returns the token's accessor ID (the
   * key of the per-token stream limit). Lookup is by the secret's SHA-256 (timing can reveal
   * nothing useful about a hash's preimage), then confirmed in constant time. Errors never name the
   * secret.
   */
  authenticateXds(metadata: Metadata): string {
    const secret = tokenFrom(metadata);
    if (!secret) {
      throw new IsthmusError(
        'unauthenticated',
        `xDS stream needs an ${xdsTokenHeader} metadata entry with a proxy token (isthmus acl token create --proxy-id <node id>)`,
      );
    }
    const record = this.tokens.bySecret(secret);
    if (!record) {
      throw new IsthmusError(
        'unauthenticated',
        `the ${xdsTokenHeader} of the xDS stream is not a valid proxy token`,
      );
    }
    return record.accessorId;
  }

  /**
   * The XdsServer admission check on the first request (and again when a token is revoked): the
   * stream's `x-isthmus-token` metadata must carry a token bound to `nodeId`. Errors name proxy
   * IDs, never the secret.
   */
  authorizeXds(nodeId: string, metadata: Metadata): void {
    const secret = tokenFrom(metadata);
    if (!secret) {
      throw new IsthmusError(
        'permission_denied',
        `xDS stream needs an ${xdsTokenHeader} metadata entry with a proxy token for node "${nodeId}" (isthmus acl token create --proxy-id ${nodeId})`,
      );
    }
    const record = this.tokens.bySecret(secret);
    if (!record) {
      throw new IsthmusError(
        'permission_denied',
        `the ${xdsTokenHeader} of the xDS stream for node "${nodeId}" is not a valid proxy token`,
      );
    }
    if (record.proxyId !== nodeId) {
      throw new IsthmusError(
        'permission_denied',
        `the ${xdsTokenHeader} belongs to proxy "${record.proxyId}", not to node "${nodeId}"`,
      );
    }
  }

  /**
   * Calls `listener` with the proxy ID of every deleted token (here or, through the store watch, on
   * another server): streams it admitted must be checked again (XdsServer.reauthorize).
   */
  onRevoked(listener: (proxyId: string) => void): () => void {
    this.revokedListeners.add(listener);
    return () => this.revokedListeners.delete(listener);
  }

  close(): void {
    this.tokens.close();
    this.revokedListeners.clear();
  }
}

function publicView(record: TokenRecord): ProxyToken {
  return { accessorId: record.accessorId, proxyId: record.proxyId, createTime: record.createTime };
}

function tokenFrom(metadata: Metadata): string | undefined {
  const value = metadata.get(xdsTokenHeader)[0];
  const text = typeof value === 'string' ? value : value?.toString('utf8');
  return text?.trim() || undefined;
}

function parseProxyId(raw: unknown): string {
  if (typeof raw !== 'string' || raw === '') {
    throw new IsthmusError(
      'invalid_argument',
      'ProxyID must be a non-empty string: the registered service ID the proxy uses as its node.id',
      'ProxyID',
    );
  }
  if (raw.length > maxProxyIdLength || /[\s\p{Cc}]/u.test(raw)) {
    throw new IsthmusError(
      'invalid_argument',
      `ProxyID must be at most ${maxProxyIdLength} characters without spaces or control characters`,
      'ProxyID',
    );
  }
  return raw;
}

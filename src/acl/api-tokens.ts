import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { IsthmusError } from '../errors.js';
import type { Logger } from '../log.js';
import { RecordCollection, type Store } from '../store/index.js';
import { type ApiScope, formatApiScope, parseApiScope } from './api-scope.js';
import { TokenIndex } from './token-index.js';
import { hashSecret, newSecret } from './token-secret.js';

/** An HTTP API token as listed: never with its secret. */
export interface ApiToken {
  readonly accessorId: string;
  readonly scope: ApiScope;
  readonly description: string;
  /** ISO 8601. */
  readonly createTime: string;
}

/** Returned once, at creation: the only time the secret is known to the server. */
export interface CreatedApiToken extends ApiToken {
  readonly secretId: string;
}

type ApiTokenRecord = {
  readonly accessorId: string;
  /** `operator`, `read`, `peering` or `service:<name>` (checked with parseApiScope on load). */
  readonly scope: string;
  readonly description: string;
  /** SHA-256 of the secret, hex. */
  readonly secretHash: string;
  readonly createTime: string;
};

const apiTokenRecord: z.ZodType<ApiTokenRecord> = z.strictObject({
  accessorId: z.string(),
  scope: z.string().refine((s) => parseApiScope(s).ok, 'not a valid API token scope'),
  description: z.string(),
  secretHash: z.string(),
  createTime: z.string(),
});

/** `acl/api-tokens/<accessor ID>` (proxy tokens live under `acl/tokens/`). */
const storedApiTokens = new RecordCollection(
  { what: 'API token', version: 1, schema: apiTokenRecord },
  'acl/api-tokens/',
);
const maxDescriptionLength = 256;

export async function openApiTokens(
  store: Store,
  opts: { logger: Logger; clock?: () => number },
): Promise<ApiTokens> {
  const tokens = new ApiTokens(store, opts.logger, opts.clock ?? Date.now);
  await tokens.load();
  return tokens;
}

/**
 * Scoped HTTP API tokens (issue 18). Like proxy tokens, the store holds only the secret's SHA-256;
 * the index follows the store's watch, so a token revoked on one server is refused by all.
 */
export class ApiTokens {
  private readonly tokens: TokenIndex<ApiTokenRecord>;

  constructor(
    store: Store,
    private readonly logger: Logger,
    private readonly now: () => number,
  ) {
    this.tokens = new TokenIndex(store, storedApiTokens, { what: 'API token', logger });
  }

  load(): Promise<void> {
    return this.tokens.load();
  }

  async create(input: { scope: unknown; description?: unknown }): Promise<CreatedApiToken> {
    const scope = parseApiScope(input.scope);
    if (!scope.ok) throw new IsthmusError('invalid_argument', `Scope: ${scope.error}`, 'Scope');
    const description = parseDescription(input.description);
    const secretId = newSecret();
    const record: ApiTokenRecord = {
      accessorId: randomUUID(),
      scope: formatApiScope(scope.value),
      description,
      secretHash: hashSecret(secretId).toString('hex'),
      createTime: new Date(this.now()).toISOString(),
    };
    await this.tokens.add(record);
    this.logger.info({ accessorId: record.accessorId, scope: record.scope }, 'API token created');
    return { ...publicView(record), secretId };
  }

  /** Every token, oldest first. */
  list(): ApiToken[] {
    return this.tokens.all().map(publicView);
  }

  async revoke(accessorId: string): Promise<void> {
    const record = await this.tokens.remove(accessorId);
    this.logger.info({ accessorId, scope: record.scope }, 'API token revoked');
  }

  /**
   * The scope of the token whose secret is `presented`, or undefined when there is none. Lookup is
   * by the secret's SHA-256, then confirmed in constant time (`secretMatches`).
   */
  scopeOf(presented: string): ApiScope | undefined {
    const record = this.tokens.bySecret(presented);
    if (!record) return undefined;
    const scope = parseApiScope(record.scope);
    return scope.ok ? scope.value : undefined;
  }

  close(): void {
    this.tokens.close();
  }
}

function publicView(record: ApiTokenRecord): ApiToken {
  const scope = parseApiScope(record.scope);
  if (!scope.ok) throw new IsthmusError('internal', `stored API token scope: ${scope.error}`);
  return {
    accessorId: record.accessorId,
    scope: scope.value,
    description: record.description,
    createTime: record.createTime,
  };
}

function parseDescription(raw: unknown): string {
  if (raw === undefined || raw === null) return '';
  if (typeof raw !== 'string' || raw.length > maxDescriptionLength || /\p{Cc}/u.test(raw)) {
    throw new IsthmusError(
      'invalid_argument',
      `Description: must be a string of at most ${maxDescriptionLength} characters without control characters`,
      'Description',
    );
  }
  return raw;
}

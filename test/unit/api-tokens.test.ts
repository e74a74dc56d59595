import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type ApiTokens, openApiTokens, parseApiScope } from '../../src/acl/index.js';
import { silentLogger } from '../../src/log.js';
import { openLmdbStore, type Store } from '../../src/store/index.js';

let dir: string;
let store: Store;
const opened: ApiTokens[] = [];

beforeEach(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'isthmus-api-tokens-'));
  store = await openLmdbStore(dir);
});

afterEach(async () => {
  opened.splice(0).forEach((t) => t.close());
  await store.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

async function open(): Promise<ApiTokens> {
  const tokens = await openApiTokens(store, { logger: silentLogger() });
  opened.push(tokens);
  return tokens;
}

describe('API token scopes', () => {
  it('parses the four kinds and refuses anything else', () => {
    expect(parseApiScope('operator')).toEqual({ ok: true, value: { kind: 'operator' } });
    expect(parseApiScope('read')).toEqual({ ok: true, value: { kind: 'read' } });
    expect(parseApiScope('peering')).toEqual({ ok: true, value: { kind: 'peering' } });
    expect(parseApiScope('service:web-2')).toEqual({
      ok: true,
      value: { kind: 'service', service: 'web-2' },
    });
    for (const bad of ['', 'admin', 'service:', 'service:Web', 'service:a/b', 'read ', 7, null])
      expect(parseApiScope(bad).ok, String(bad)).toBe(false);
  });
});

describe('ApiTokens', () => {
  it('stores only the SHA-256 of the secret, and answers the scope of a presented secret', async () => {
    const tokens = await open();
    const created = await tokens.create({ scope: 'service:api', description: 'deploys' });
    const stored = await store.list('acl/api-tokens/');
    expect(stored).toHaveLength(1);
    expect(JSON.stringify(stored)).not.toContain(created.secretId);
    expect(stored[0]!.value).toMatchObject({
      v: 1,
      accessorId: created.accessorId,
      scope: 'service:api',
      secretHash: createHash('sha256').update(created.secretId).digest('hex'),
    });
    expect(tokens.scopeOf(created.secretId)).toEqual({ kind: 'service', service: 'api' });
    expect(tokens.scopeOf(`${created.secretId}x`)).toBeUndefined();
    expect(tokens.list()).toEqual([
      {
        accessorId: created.accessorId,
        scope: { kind: 'service', service: 'api' },
        description: 'deploys',
        createTime: created.createTime,
      },
    ]);
  });

  it('a revocation through the store reaches every server holding the index', async () => {
    const [a, b] = [await open(), await open()];
    const created = await a.create({ scope: 'read' });
    await expect.poll(() => b.scopeOf(created.secretId)).toEqual({ kind: 'read' });
    await b.revoke(created.accessorId);
    await expect.poll(() => a.scopeOf(created.secretId)).toBeUndefined();
    await expect(a.revoke(created.accessorId)).rejects.toThrow(/no API token with AccessorID/);
  });

  it('reloads tokens from the store', async () => {
    const created = await (await open()).create({ scope: 'peering' });
    expect((await open()).scopeOf(created.secretId)).toEqual({ kind: 'peering' });
  });
});

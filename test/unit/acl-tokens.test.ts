import { Metadata } from '@grpc/grpc-js';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type ProxyTokens, openProxyTokens, xdsAuthorizer } from '../../src/acl/index.js';
import { IsthmusError } from '../../src/errors.js';
import { createLogger, silentLogger } from '../../src/log.js';
import { openLmdbStore, type Store } from '../../src/store/index.js';

let dir: string;
let store: Store;
const opened: ProxyTokens[] = [];

beforeEach(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'isthmus-acl-'));
  store = await openLmdbStore(dir);
});

afterEach(async () => {
  opened.splice(0).forEach((t) => t.close());
  await store.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

async function open(): Promise<ProxyTokens> {
  const tokens = await openProxyTokens(store, { logger: silentLogger() });
  opened.push(tokens);
  return tokens;
}

function withToken(secret?: string): Metadata {
  const md = new Metadata();
  if (secret !== undefined) md.set('x-isthmus-token', secret);
  return md;
}

function refusal(fn: () => void): IsthmusError {
  try {
    fn();
  } catch (err) {
    if (err instanceof IsthmusError) return err;
    throw err;
  }
  throw new Error('expected a refusal');
}

describe('proxy tokens', () => {
  it('creates a 128-bit secret in UUID form and stores only its SHA-256', async () => {
    const tokens = await open();
    const created = await tokens.create('web-sidecar-proxy');
    expect(created.secretId).toMatch(
      /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/,
    );
    expect(created.accessorId).not.toBe(created.secretId);
    expect(created).toMatchObject({
      proxyId: 'web-sidecar-proxy',
      createTime: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
    });
    const stored = JSON.stringify(await store.list('acl/'));
    expect(stored).not.toContain(created.secretId);
    expect(stored).toContain(createHash('sha256').update(created.secretId).digest('hex'));
    expect(
      new Set((await Promise.all([1, 2, 3].map(() => tokens.create('x')))).map((t) => t.secretId))
        .size,
    ).toBe(3);
  });

  it('lists without secrets, deletes by accessor, and says not_found for an unknown accessor', async () => {
    const tokens = await open();
    const a = await tokens.create('a');
    const b = await tokens.create('b');
    expect(tokens.list()).toEqual(
      [
        { accessorId: a.accessorId, proxyId: 'a', createTime: a.createTime },
        { accessorId: b.accessorId, proxyId: 'b', createTime: b.createTime },
      ].sort(
        (x, y) =>
          x.createTime.localeCompare(y.createTime) || x.accessorId.localeCompare(y.accessorId),
      ),
    );
    await tokens.delete(a.accessorId);
    expect(tokens.list().map((t) => t.proxyId)).toEqual(['b']);
    await expect(tokens.delete(a.accessorId)).rejects.toMatchObject({ code: 'not_found' });
    expect(() => tokens.authorizeXds('a', withToken(a.secretId))).toThrow(IsthmusError);
  });

  it('refuses bad proxy IDs naming the field', async () => {
    const tokens = await open();
    for (const bad of [undefined, '', 42, 'has space', 'x'.repeat(257), 'tab\there']) {
      await expect(tokens.create(bad), JSON.stringify(bad)).rejects.toMatchObject({
        code: 'invalid_argument',
        field: 'ProxyID',
      });
    }
    expect(tokens.list()).toEqual([]);
  });

  it('loads the index from the store at start and follows writes from elsewhere', async () => {
    const first = await open();
    const created = await first.create('web');
    const second = await open();
    expect(() => second.authorizeXds('web', withToken(created.secretId))).not.toThrow();
    await first.delete(created.accessorId);
    expect(() => second.authorizeXds('web', withToken(created.secretId))).toThrow(
      /not a valid proxy token/,
    );
  });
});

describe('xDS admission (authorizeXds)', () => {
  it("admits the token of the stream's own node and nothing else", async () => {
    const tokens = await open();
    const web = await tokens.create('web-sidecar');
    const api = await tokens.create('api-sidecar');
    expect(() => tokens.authorizeXds('web-sidecar', withToken(web.secretId))).not.toThrow();

    const missing = refusal(() => tokens.authorizeXds('web-sidecar', withToken()));
    expect(missing).toMatchObject({
      code: 'permission_denied',
      message: expect.stringContaining('needs an x-isthmus-token'),
    });
    expect(refusal(() => tokens.authorizeXds('web-sidecar', withToken('')))).toMatchObject({
      code: 'permission_denied',
    });

    const wrong = refusal(() =>
      tokens.authorizeXds('web-sidecar', withToken('00000000-0000-0000-0000-000000000000')),
    );
    expect(wrong).toMatchObject({
      code: 'permission_denied',
      message: expect.stringContaining('not a valid proxy token'),
    });

    const other = refusal(() => tokens.authorizeXds('web-sidecar', withToken(api.secretId)));
    expect(other.code).toBe('permission_denied');
    expect(other.message).toContain('"api-sidecar"');
    expect(other.message).toContain('"web-sidecar"');
    expect(other.message).not.toContain(api.secretId);
  });

  it('--xds-auth off admits everyone and warns once', async () => {
    let output = '';
    const logger = createLogger(
      'info',
      new Writable({ write: (chunk, _enc, done) => void ((output += String(chunk)), done()) }),
    );
    const authorize = xdsAuthorizer('off', await open(), logger);
    authorize('anyone', withToken());
    authorize('anyone-else', withToken('junk'));
    logger.flush();
    const lines = output
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { level: number; msg: string });
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({
      level: 40,
      msg: expect.stringContaining('xDS authentication is off'),
    });
    expect(() => xdsAuthorizer('token', opened[0]!, silentLogger())('anyone', withToken())).toThrow(
      /x-isthmus-token/,
    );
  });
});

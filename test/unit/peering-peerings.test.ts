import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createRoot } from '../../src/ca/x509.js';
import { IsthmusError } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';
import { type LocalPeeringInfo, Peerings } from '../../src/peering/peerings.js';
import type { PeeringToken } from '../../src/peering/token.js';
import { type PeeringEvent, isHealthy } from '../../src/peering/types.js';
import { openLmdbStore, type Store } from '../../src/store/index.js';

let dir: string;
let store: Store;
const opened: Peerings[] = [];
let acceptorRoot: string;
let dialerRoot: string;

const local: LocalPeeringInfo = {
  datacenter: 'dc-a',
  partition: 'default',
  serverName: 'server.dc-a.peering.a.consul',
  rootPems: () => [acceptorRoot],
  serverAddresses: () => ['127.0.0.1:8503'],
};

async function open(): Promise<Peerings> {
  const p = await Peerings.open(store, { local, logger: silentLogger() });
  opened.push(p);
  return p;
}

async function reopen(): Promise<Peerings> {
  await Promise.all(opened.splice(0).map((p) => p.close()));
  await store.close();
  store = await openLmdbStore(dir);
  return open();
}

const exchange = (p: Peerings, token: PeeringToken, secret = token.EstablishmentSecret) =>
  p.exchangeSecret({
    peerId: token.PeerID,
    establishmentSecret: secret,
    dialerRootPems: [dialerRoot],
    dialerTrustDomain: 'b.consul',
    dialerRemote: { partition: 'default', datacenter: 'dc-b' },
  });

async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
    return 'ok';
  } catch (err) {
    return err instanceof IsthmusError ? err.code : String(err);
  }
}

beforeEach(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'isthmus-peerings-'));
  store = await openLmdbStore(dir);
  const now = Date.now();
  acceptorRoot ??= (
    await createRoot({ rootUri: 'spiffe://a.consul', name: 'a', now, validityMs: 3600_000 })
  ).certPem;
  dialerRoot ??= (
    await createRoot({ rootUri: 'spiffe://b.consul', name: 'b', now, validityMs: 3600_000 })
  ).certPem;
});

afterEach(async () => {
  await Promise.all(opened.splice(0).map((p) => p.close()));
  await store.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('Peerings: acceptor', () => {
  it("generate → exchange: PENDING with the token's ID, dialer roots pinned, a stream secret that verifies", async () => {
    const peerings = await open();
    const events: PeeringEvent[] = [];
    peerings.subscribe((e) => events.push(e));
    const { token, peering } = await peerings.generateToken({
      PeerName: 'cluster-b',
      Meta: { env: 'test' },
    });
    expect(token).toMatchObject({
      CA: [acceptorRoot],
      ServerAddresses: ['127.0.0.1:8503'],
      ManualServerAddresses: [],
      ServerName: local.serverName,
      PeerID: peering.id,
    });
    expect(token.Remote).toEqual({ Partition: 'default', Datacenter: 'dc-a' });
    expect(token.EstablishmentSecret).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(peering).toMatchObject({
      name: 'cluster-b',
      state: 'PENDING',
      peerCaPems: [],
      meta: { env: 'test' },
    });
    expect(peering.createIndex).toBe(peering.modifyIndex);

    const { streamSecret, peering: exchanged } = await exchange(peerings, token);
    expect(exchanged).toMatchObject({
      state: 'PENDING',
      peerCaPems: [dialerRoot],
      peerTrustDomain: 'b.consul',
      remote: { partition: 'default', datacenter: 'dc-b' },
    });
    expect(exchanged.modifyIndex).toBeGreaterThan(peering.modifyIndex);
    expect(await peerings.verifyStream(peering.id, streamSecret)).toMatchObject({
      name: 'cluster-b',
    });
    expect(events.map((e) => e.kind)).toEqual(['peering-upserted', 'peering-upserted']);
    expect(JSON.stringify(events)).not.toContain(token.EstablishmentSecret);
    expect(JSON.stringify(events)).not.toContain(streamSecret);
  });

  it('of 20 concurrent exchanges with one secret exactly one wins', async () => {
    const peerings = await open();
    const { token } = await peerings.generateToken({ PeerName: 'cluster-b' });
    const codes = await Promise.all(
      Array.from({ length: 20 }, () => codeOf(exchange(peerings, token))),
    );
    expect(codes.filter((c) => c === 'ok')).toHaveLength(1);
    expect(codes.filter((c) => c === 'permission_denied')).toHaveLength(19);
  });

  it('a reused, wrong or unknown secret is permission_denied "generate a new token", and changes nothing', async () => {
    const peerings = await open();
    const { token } = await peerings.generateToken({ PeerName: 'cluster-b' });
    const before = peerings.read('cluster-b');
    await expect(exchange(peerings, token, 'wrong')).rejects.toMatchObject({
      code: 'permission_denied',
      message: 'establishment secret already used or unknown: generate a new token',
    });
    await expect(exchange(peerings, { ...token, PeerID: 'nope' })).rejects.toMatchObject({
      code: 'permission_denied',
    });
    expect(peerings.read('cluster-b')).toEqual(before);
    await exchange(peerings, token);
    await expect(exchange(peerings, token)).rejects.toMatchObject({
      code: 'permission_denied',
      message: /generate a new token/,
    });
  });

  it('regenerating invalidates the unused token', async () => {
    const peerings = await open();
    const first = (await peerings.generateToken({ PeerName: 'cluster-b' })).token;
    const second = (await peerings.generateToken({ PeerName: 'cluster-b' })).token;
    expect(second.PeerID).toBe(first.PeerID);
    await expect(exchange(peerings, first)).rejects.toMatchObject({ code: 'permission_denied' });
    await exchange(peerings, second);
  });

  it('regenerating leaves an active stream alone: state and stream secret stay; re-establishing swaps the secret only when used', async () => {
    const peerings = await open();
    const { token, peering } = await peerings.generateToken({ PeerName: 'cluster-b' });
    const { streamSecret: oldSecret } = await exchange(peerings, token);
    await peerings.verifyStream(peering.id, oldSecret);
    await peerings.setState('cluster-b', 'ACTIVE');

    const again = (await peerings.generateToken({ PeerName: 'cluster-b' })).token;
    expect(peerings.read('cluster-b')?.state).toBe('ACTIVE');
    await peerings.verifyStream(peering.id, oldSecret);

    const { streamSecret: newSecret } = await exchange(peerings, again);
    // Until the new secret opens a stream, both are valid; then only the new one. A refusal by the
    // caller's check (client certificate) promotes nothing.
    await peerings.verifyStream(peering.id, oldSecret);
    const refuse = () => {
      throw new IsthmusError(
        'permission_denied',
        'client certificate does not chain to the pinned roots',
      );
    };
    await expect(peerings.verifyStream(peering.id, newSecret, refuse)).rejects.toMatchObject({
      code: 'permission_denied',
    });
    await peerings.verifyStream(peering.id, oldSecret);
    await peerings.verifyStream(peering.id, newSecret);
    await expect(peerings.verifyStream(peering.id, oldSecret)).rejects.toMatchObject({
      code: 'permission_denied',
    });
    expect(peerings.read('cluster-b')?.state).toBe('ACTIVE');
  });

  it('a TERMINATED peering starts over as PENDING with a new token, its old stream secret dead', async () => {
    const peerings = await open();
    const { token, peering } = await peerings.generateToken({ PeerName: 'cluster-b' });
    const { streamSecret } = await exchange(peerings, token);
    await peerings.setState('cluster-b', 'TERMINATED');
    const { peering: fresh } = await peerings.generateToken({ PeerName: 'cluster-b' });
    expect(fresh).toMatchObject({
      id: peering.id,
      state: 'PENDING',
      peerCaPems: [],
      createIndex: peering.createIndex,
    });
    await expect(peerings.verifyStream(peering.id, streamSecret)).rejects.toMatchObject({
      code: 'permission_denied',
    });
  });

  it('verifyStream refuses a wrong secret and an unknown ID without changing anything', async () => {
    const peerings = await open();
    const { token, peering } = await peerings.generateToken({ PeerName: 'cluster-b' });
    const { streamSecret } = await exchange(peerings, token);
    const revision = await store.revision();
    await expect(peerings.verifyStream(peering.id, 'x')).rejects.toMatchObject({
      code: 'permission_denied',
      message: 'stream secret is not valid for this peering',
    });
    await expect(
      peerings.verifyStream(peering.id, token.EstablishmentSecret),
    ).rejects.toMatchObject({ code: 'permission_denied' });
    await expect(peerings.verifyStream('unknown', streamSecret)).rejects.toMatchObject({
      code: 'permission_denied',
    });
    expect(await store.revision()).toBe(revision);
  });

  it('secrets are not in the record: only digests in separate keys on the acceptor', async () => {
    const peerings = await open();
    const { token } = await peerings.generateToken({ PeerName: 'cluster-b' });
    const { streamSecret } = await exchange(peerings, token);
    const everything = JSON.stringify(await store.list(''));
    expect(everything).not.toContain(token.EstablishmentSecret);
    expect(everything).not.toContain(streamSecret);
    expect(JSON.stringify(peerings.list())).not.toMatch(/Sha256|secret/i);
  });

  it('refuses a token without a dialable address', async () => {
    const peerings = await Peerings.open(store, {
      local: { ...local, serverAddresses: () => [] },
      logger: silentLogger(),
    });
    opened.push(peerings);
    await expect(peerings.generateToken({ PeerName: 'x' })).rejects.toMatchObject({
      code: 'failed_precondition',
      message: /--advertise-addr/,
    });
    const { token } = await peerings.generateToken({
      PeerName: 'x',
      ServerExternalAddresses: ['gw.example.com:443'],
    });
    expect(token).toMatchObject({
      ServerAddresses: ['gw.example.com:443'],
      ManualServerAddresses: ['gw.example.com:443'],
    });
  });
});

describe('Peerings: dialer', () => {
  const tokenFrom = (peerId: string): PeeringToken => ({
    CA: [acceptorRoot],
    ServerAddresses: ['10.0.0.1:8503'],
    ManualServerAddresses: [],
    ServerName: 'server.dc-a.peering.a.consul',
    PeerID: peerId,
    EstablishmentSecret: 'used',
    Remote: { Partition: 'default', Datacenter: 'dc-a' },
  });

  it("records ESTABLISHING with the acceptor's name, addresses, CA and trust domain; the stream secret is kept for Open", async () => {
    const peerings = await open();
    const p = await peerings.recordEstablished({
      name: 'cluster-a',
      token: tokenFrom('acceptor-id'),
      streamSecret: 'stream-1',
    });
    expect(p).toMatchObject({
      name: 'cluster-a',
      state: 'ESTABLISHING',
      peerId: 'acceptor-id',
      peerServerName: 'server.dc-a.peering.a.consul',
      peerServerAddresses: ['10.0.0.1:8503'],
      peerCaPems: [acceptorRoot],
      peerTrustDomain: 'a.consul',
      remote: { partition: 'default', datacenter: 'dc-a' },
    });
    expect(peerings.byPeerId('acceptor-id')?.name).toBe('cluster-a');
    expect(peerings.byId(p.id)?.name).toBe('cluster-a');
    expect(await peerings.streamSecretOf('cluster-a')).toBe('stream-1');
    // A dialer record is not an acceptor: its stream is not verified here.
    await expect(peerings.verifyStream(p.id, 'stream-1')).rejects.toMatchObject({
      code: 'permission_denied',
    });
  });

  it('the same name cannot be both roles; another peer under a live name is refused; TERMINATED re-establishes', async () => {
    const peerings = await open();
    await peerings.generateToken({ PeerName: 'acc' });
    expect(() => peerings.checkCanEstablish('acc', tokenFrom('x'))).toThrow(/generating a token/);
    await peerings.recordEstablished({ name: 'dial', token: tokenFrom('p1'), streamSecret: 's' });
    await expect(peerings.generateToken({ PeerName: 'dial' })).rejects.toMatchObject({
      code: 'already_exists',
    });
    expect(() => peerings.checkCanEstablish('dial', tokenFrom('p2'))).toThrow(
      /already exists with another peer/,
    );
    expect(() => peerings.checkCanEstablish('dial', tokenFrom('p1'))).not.toThrow();
    await peerings.setState('dial', 'TERMINATED');
    const again = await peerings.recordEstablished({
      name: 'dial',
      token: tokenFrom('p2'),
      streamSecret: 's2',
    });
    expect(again).toMatchObject({ state: 'ESTABLISHING', peerId: 'p2' });
  });
});

describe('Peerings: status, state, delete, persistence', () => {
  it('stream status merges; state changes carry LastError; Healthy needs ACTIVE and a fresh heartbeat', async () => {
    const peerings = await open();
    await peerings.generateToken({ PeerName: 'b' });
    const now = Date.now();
    await peerings.setStreamStatus('b', {
      importedServices: ['web'],
      lastHeartbeat: new Date(now - 1000).toISOString(),
    });
    let p = await peerings.setStreamStatus('b', { exportedServices: ['api', 'db'] });
    expect(p.streamStatus).toMatchObject({
      importedServices: ['web'],
      exportedServices: ['api', 'db'],
    });
    expect(isHealthy(p, now)).toBe(false);
    p = await peerings.setState('b', 'ACTIVE');
    expect(isHealthy(p, now)).toBe(true);
    expect(isHealthy(p, now + 120_000)).toBe(false);
    p = await peerings.setState('b', 'FAILING', 'stream closed: connection reset');
    expect(p.streamStatus.lastError).toBe('stream closed: connection reset');
    expect(isHealthy(p, now)).toBe(false);
    await expect(peerings.setState('nobody', 'ACTIVE')).rejects.toMatchObject({
      code: 'not_found',
    });
  });

  it('delete: DELETING at once (DeletedAt), the hook runs, then record and secrets are gone; the stream cannot revive it', async () => {
    const peerings = await open();
    const { peering } = await peerings.generateToken({ PeerName: 'b' });
    let release!: () => void;
    const hookRan: string[] = [];
    peerings.setDeletionHook(async (p) => {
      hookRan.push(p.state);
      await new Promise<void>((resolve) => (release = resolve));
    });
    const deleting = await peerings.delete('b');
    expect(deleting).toMatchObject({ state: 'DELETING' });
    expect(deleting.deletedAt).toMatch(/^\d{4}-\d\d-\d\dT/);
    expect((await peerings.setState('b', 'FAILING', 'gone')).state).toBe('DELETING');
    await expect(peerings.generateToken({ PeerName: 'b' })).rejects.toMatchObject({
      code: 'failed_precondition',
    });
    await new Promise((r) => setTimeout(r, 10));
    release();
    await peerings.settled();
    expect(hookRan).toEqual(['DELETING']);
    expect(peerings.read('b')).toBeUndefined();
    expect(await store.list('peering/')).toEqual([]);
    expect(peering.id).toBeTruthy();
    await expect(peerings.delete('b')).rejects.toMatchObject({ code: 'not_found' });
  });

  it('records, pinned roots and secrets survive a reopen; a deletion interrupted by a restart finishes', async () => {
    let peerings = await open();
    const { token } = await peerings.generateToken({ PeerName: 'b' });
    const { streamSecret } = await exchange(peerings, token);
    await peerings.recordEstablished({
      name: 'a',
      token: { ...token, PeerID: 'remote', CA: [acceptorRoot] },
      streamSecret: 'dial-secret',
    });
    const { peering: doomed } = await peerings.generateToken({ PeerName: 'doomed' });
    peerings.setDeletionHook(() => new Promise<void>(() => undefined));
    await peerings.delete('doomed');
    const before = peerings.list().filter((p) => p.name !== 'doomed');

    // Close without waiting for the stuck hook: simulate a crash by reopening the store under it.
    opened.splice(opened.indexOf(peerings), 1);
    await store.close();
    store = await openLmdbStore(dir);
    peerings = await open();
    expect(peerings.read('doomed')?.state).toBe('DELETING');
    peerings.resumeDeletions();
    await peerings.settled();
    expect(peerings.list()).toEqual(before);
    expect(peerings.read('doomed')).toBeUndefined();
    expect(peerings.byId(doomed.id)).toBeUndefined();
    expect(peerings.read('b')?.peerCaPems).toEqual([dialerRoot]);
    expect((await peerings.verifyStream(token.PeerID, streamSecret)).name).toBe('b');
    expect(await peerings.streamSecretOf('a')).toBe('dial-secret');
    await expect(exchange(peerings, token)).rejects.toMatchObject({ code: 'permission_denied' });

    const reopened = await reopen();
    expect(reopened.list()).toEqual(peerings.list());
  });
});

import { createHmac, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { IsthmusError } from '../errors.js';

/**
 * The federation secret (`--federation-secret-file`), shared by every federated server as Consul's
 * servers share their gossip key. It authenticates a Join both ways before any certificate is
 * trusted: the secondary proves it knows the secret with an HMAC over its request and a fresh
 * nonce, the primary with an HMAC over that nonce and its answer. The secret never travels, so a
 * gateway in the path (or anyone posing as the primary) learns nothing from it.
 */
export async function readFederationSecret(path: string): Promise<Buffer> {
  let text: string;
  try {
    text = (await readFile(path, 'utf8')).trim();
  } catch (err) {
    throw new IsthmusError(
      'invalid_argument',
      `--federation-secret-file: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? String(err)})`,
    );
  }
  if (text.length < 16)
    throw new IsthmusError(
      'invalid_argument',
      `--federation-secret-file: ${path} holds ${text.length} characters; use 16 or more (e.g. openssl rand -base64 32), the same file on every server`,
    );
  return Buffer.from(text, 'utf8');
}

/** HMAC-SHA256 over a JSON array of the fields: an unambiguous encoding of any strings. */
function mac(secret: Buffer, label: string, fields: readonly unknown[]): string {
  return createHmac('sha256', secret)
    .update(JSON.stringify([label, ...fields]))
    .digest('base64');
}

export interface JoinRequestFields {
  readonly datacenter: string;
  readonly csrPem: string;
  readonly nonce: string;
}

export interface JoinResponseFields {
  readonly primaryDatacenter: string;
  readonly trustDomain: string;
  readonly intermediatePem: string;
  readonly rootPems: readonly string[];
}

export function joinRequestMac(secret: Buffer, r: JoinRequestFields): string {
  return mac(secret, 'isthmus-federation-join-request', [r.datacenter, r.csrPem, r.nonce]);
}

export function joinResponseMac(secret: Buffer, nonce: string, r: JoinResponseFields): string {
  return mac(secret, 'isthmus-federation-join-response', [
    nonce,
    r.primaryDatacenter,
    r.trustDomain,
    r.intermediatePem,
    r.rootPems,
  ]);
}

/** Constant-time comparison of two base64 MACs. */
export function macMatches(expected: string, presented: string): boolean {
  const a = Buffer.from(expected, 'base64');
  const b = Buffer.from(presented, 'base64');
  return a.length === b.length && a.length > 0 && timingSafeEqual(a, b);
}

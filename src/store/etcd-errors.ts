import { GRPCUnavailableError } from 'etcd3';

/** A call refused before it reached an etcd member (no connection to it): safe to send again. */
export function neverSent(err: Error): boolean {
  return (
    err instanceof GRPCUnavailableError &&
    /No connection established|ECONNREFUSED/.test(err.message)
  );
}

/** What went wrong, independent of the transport that reports it. */
export type ErrorCode =
  | 'invalid_argument'
  | 'not_found'
  | 'already_exists'
  | 'permission_denied'
  | 'unauthenticated'
  | 'failed_precondition'
  | 'resource_exhausted'
  /** The data directory has no space left: writes are refused, reads keep serving. */
  | 'storage_full'
  | 'unavailable'
  | 'internal';

/**
 * The one error class of isthmus. `field` names the offending input path (e.g.
 * `Proxy.Upstreams[2].LocalBindPort`) when the error is about user input. Mapped to gRPC or HTTP
 * status only at the boundary.
 */
export class IsthmusError extends Error {
  override readonly name = 'IsthmusError';
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly field?: string,
  ) {
    super(message);
  }

  static from(err: unknown): IsthmusError {
    if (err instanceof IsthmusError) return err;
    const message = err instanceof Error ? err.message : String(err);
    return new IsthmusError('internal', message);
  }
}

const httpCodes: Record<ErrorCode, number> = {
  invalid_argument: 400,
  not_found: 404,
  already_exists: 409,
  permission_denied: 403,
  unauthenticated: 401,
  failed_precondition: 412,
  resource_exhausted: 429,
  storage_full: 507,
  unavailable: 503,
  internal: 500,
};

export function httpStatusOf(err: IsthmusError): number {
  return httpCodes[err.code];
}

const codesOfHttp = new Map<number, ErrorCode>(
  Object.entries(httpCodes).map(([code, status]) => [status, code as ErrorCode]),
);

/**
 * The error code an HTTP status stands for (the inverse of httpStatusOf); `internal` for others.
 */
export function errorCodeOfHttpStatus(status: number): ErrorCode {
  return codesOfHttp.get(status) ?? 'internal';
}

import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { IsthmusError, httpStatusOf } from '../errors.js';
import { clip } from '../problems.js';

/** The longest `error` text a response carries: problems are clipped already, this is the guard. */
const maxErrorChars = 2_048;

/** The JSON body of every HTTP error: `field` names the offending input when there is one. */
export interface HttpErrorBody {
  readonly error: string;
  readonly field?: string;
}

/**
 * Maps errors to JSON at the boundary: IsthmusError by its code, fastify's own client errors
 * (bad JSON, body too large) by their status; anything else is a 500 whose details stay in the log.
 */
export function handleHttpError(
  err: FastifyError | Error,
  request: FastifyRequest,
  reply: FastifyReply,
): FastifyReply {
  if (err instanceof IsthmusError) {
    const status = httpStatusOf(err);
    // A peer or dependency that cannot be reached is an operational condition, not a bug: no stack.
    if (err.code === 'unavailable' || err.code === 'storage_full')
      request.log.warn(
        { url: request.url, error: err.message },
        'request failed: dependency unavailable',
      );
    else if (status >= 500) request.log.error({ err, url: request.url }, 'request failed');
    return reply.status(status).send(errorBody(err.message, err.field));
  }
  const status = 'statusCode' in err && typeof err.statusCode === 'number' ? err.statusCode : 500;
  if (status === 413)
    return reply
      .status(413)
      .send(
        errorBody(
          `request body is larger than ${request.routeOptions.bodyLimit} bytes (--http-max-body-bytes)`,
        ),
      );
  if (status >= 400 && status < 500) return reply.status(status).send(errorBody(err.message));
  // Never a stack trace to the client: the detail goes to the log.
  request.log.error({ err, url: request.url }, 'request failed');
  return reply.status(500).send(errorBody('internal error'));
}

export function handleNotFound(request: FastifyRequest, reply: FastifyReply): FastifyReply {
  return reply.status(404).send(errorBody(`no route for ${request.method} ${clip(request.url)}`));
}

function errorBody(error: string, field?: string): HttpErrorBody {
  const text = clip(error, maxErrorChars);
  return field === undefined ? { error: text } : { error: text, field: clip(field, 200) };
}

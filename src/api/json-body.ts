import type { FastifyInstance } from 'fastify';
import { IsthmusError } from '../errors.js';

/**
 * Parses every request body of `scope` as JSON whatever its Content-Type: Consul's docs and users
 * send registrations with `curl --data @file` (form-encoded) or with no Content-Type at all. An
 * empty body is `undefined`, for the route to reject in its own words.
 */
export function acceptJsonBodies(scope: FastifyInstance): void {
  scope.removeAllContentTypeParsers();
  scope.addContentTypeParser('*', { parseAs: 'string' }, (_request, body, done) => {
    const text = typeof body === 'string' ? body : body.toString('utf8');
    if (text.trim() === '') {
      done(null, undefined);
      return;
    }
    try {
      done(null, JSON.parse(text));
    } catch (err) {
      done(
        new IsthmusError(
          'invalid_argument',
          `request body is not valid JSON: ${(err as Error).message}`,
        ),
        undefined,
      );
    }
  });
}

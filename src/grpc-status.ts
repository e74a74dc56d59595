/**
 * IsthmusError codes as gRPC status codes, for the gRPC boundaries (xDS, CSDS, peering). Apart
 * from errors.ts so that loading the error class does not load grpc-js (every CLI command does).
 */
import { status as GrpcStatus } from '@grpc/grpc-js';
import type { ErrorCode, IsthmusError } from './errors.js';

const grpcCodes: Record<ErrorCode, GrpcStatus> = {
  invalid_argument: GrpcStatus.INVALID_ARGUMENT,
  not_found: GrpcStatus.NOT_FOUND,
  already_exists: GrpcStatus.ALREADY_EXISTS,
  permission_denied: GrpcStatus.PERMISSION_DENIED,
  unauthenticated: GrpcStatus.UNAUTHENTICATED,
  failed_precondition: GrpcStatus.FAILED_PRECONDITION,
  resource_exhausted: GrpcStatus.RESOURCE_EXHAUSTED,
  storage_full: GrpcStatus.RESOURCE_EXHAUSTED,
  unavailable: GrpcStatus.UNAVAILABLE,
  internal: GrpcStatus.INTERNAL,
};

export function grpcStatusOf(err: IsthmusError): GrpcStatus {
  return grpcCodes[err.code];
}

/**
 * @towerline/grpc — @grpc/grpc-js with towerline: the gRPC `Connector` (the channel's readiness
 * under towerline's reconnect engine and backoff, `resilientGrpc`, typed `grpcMethods`), channel
 * connectivity as events and readiness (`GrpcConnectivity`), unary methods as services
 * (`unaryService`), the `grpc` backoff preset, and a `RetryLayer` that retries only chosen
 * status codes and never repeats a call that may have run on a non-idempotent method
 * (`grpcRetry`).
 *
 * @packageDocumentation
 */
export {
  type ConnectivityEvents,
  type ConnectivityName,
  GrpcConnectivity,
} from './connectivity.js';
export {
  type GrpcConnectorOptions,
  type GrpcMethods,
  type GrpcRequest,
  grpcConnector,
  grpcMethods,
  type ResilientGrpcOptions,
  resilientGrpc,
  type UnaryMethods,
} from './connector.js';
export {
  isDefinitiveStatus,
  isIdempotentMethod,
  isNotSentStatus,
  type UnaryCallOptions,
} from './methods.js';
export {
  type GrpcRetryOptions,
  grpcChannelOptions,
  grpcRetry,
  type UnaryOptions,
  unaryService,
} from './unary.js';

/**
 * @towerline/grpc — @grpc/grpc-js with towerline: channel connectivity as events
 * (`GrpcConnectivity`), unary methods as services (`unaryService`), the `grpc` backoff preset
 * for the channel and for retries, and a `RetryLayer` that retries only chosen status codes
 * (`grpcRetry`, default UNAVAILABLE).
 *
 * @packageDocumentation
 */
export {
  type ConnectivityEvents,
  type ConnectivityName,
  GrpcConnectivity,
  type GrpcRetryOptions,
  grpcChannelOptions,
  grpcRetry,
  type UnaryOptions,
  unaryService,
} from './grpc.js';

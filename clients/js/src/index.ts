export { BridgeClient, CloseCodes, isExactSeq, isPublishableType, isValidPattern, isValidRoom, overlaps } from './client.js';
export { backoffDelay, reconnectAfterMs } from './backoff.js';
export { BatchSubprotocols, Subprotocols } from './codec.js';
export {
  BridgeError,
  type Ack,
  type BridgeClientOptions,
  type ConnectionState,
  type Envelope,
  type FetchLike,
  type Format,
  type JoinOptions,
  type JoinResult,
  type ReconnectOptions,
  type SkippedFrame,
  type StateChange,
  type TransportKind,
  type WebSocketConstructor,
  type WebSocketLike,
} from './types.js';

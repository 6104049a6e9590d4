import { decode } from '@msgpack/msgpack';
import WebSocket from 'ws';
import { BridgeClient } from '../../dist/index.js';

/** A client (over the `ws` package in Node) that records every room message and state change it sees. */
export function recordingClient(url, options = {}) {
  const client = new BridgeClient({ url, WebSocket, reconnect: { minDelayMs: 100, maxDelayMs: 1000 }, ...options });
  const messages = [];
  const states = [];
  client.on('*', (m) => messages.push(m));
  client.onState((s) => states.push(s));
  return { client, messages, states };
}

/** Ids of the messages of one room, in the order they arrived. */
export function idsOf(messages, room) {
  return messages.filter((m) => m.room === room).map((m) => m.id);
}

/** The `ws` WebSocket, recording every frame each connection sends (decoded, with its size on the wire). */
export function recordingSocket(format) {
  const sockets = [];
  class RecordingWebSocket extends WebSocket {
    constructor(...args) {
      super(...args);
      this.sent = [];
      sockets.push(this);
    }

    send(data, ...rest) {
      const bytes = typeof data === 'string' ? Buffer.byteLength(data) : data.byteLength;
      const frame = format === 'msgpack' ? decode(data) : JSON.parse(data);
      this.sent.push({ frame, bytes });
      return super.send(data, ...rest);
    }
  }
  return { WebSocket: RecordingWebSocket, sockets };
}

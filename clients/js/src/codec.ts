import { decode as mpDecode, encode as mpEncode } from '@msgpack/msgpack';
import type { Envelope, Format } from './types.js';

export const Subprotocols: Record<Format, string> = {
  json: 'bridge.v1.json',
  msgpack: 'bridge.v1.msgpack',
};

/**
 * The batch subprotocols (docs/protocol.md §1): every server message is an array of one or more envelopes, in send
 * order; client frames are as in the plain format.
 */
export const BatchSubprotocols: Record<Format, string> = {
  json: 'bridge.v1.json-batch',
  msgpack: 'bridge.v1.msgpack-batch',
};

/** A frame the client sends: the keys the server reads (docs/protocol.md §2). */
export interface OutboundFrame {
  type: string;
  room?: string;
  id?: string;
  payload?: unknown;
}

/** A frame encoded for the wire: JSON text, or MessagePack bytes. */
export type EncodedFrame = string | Uint8Array;

const encoder = new TextEncoder();

/** Encodes a frame for the wire. JSON: a top-level Uint8Array payload goes as base64 with `enc`. */
export function encodeFrame(frame: OutboundFrame, format: Format): EncodedFrame {
  if (format === 'msgpack') {
    // A top-level Uint8Array becomes MessagePack bin: a binary payload (§3).
    return mpEncode(stripUndefined(frame), { ignoreUndefined: true });
  }

  return JSON.stringify(toJsonFrame(frame));
}

/** JSON form of a frame (also the HTTP publish body). */
export function toJsonFrame(frame: OutboundFrame): Record<string, unknown> {
  const out: Record<string, unknown> = { type: frame.type };
  if (frame.room !== undefined) out.room = frame.room;
  if (frame.id !== undefined) out.id = frame.id;
  if (frame.payload instanceof Uint8Array) {
    out.enc = 'base64';
    out.payload = bytesToBase64(frame.payload);
  } else if (frame.payload !== undefined) {
    out.payload = frame.payload;
  }
  return out;
}

/** Size of a frame on the wire, in bytes. */
export function encodedSize(data: EncodedFrame): number {
  return typeof data === 'string' ? encoder.encode(data).length : data.length;
}

/**
 * Decodes one server WebSocket message into its envelopes, in order: one for a plain message, every element for a
 * batch subprotocol's array (a plain subprotocol never sends an array, so an array is always a batch). Elements that
 * are not envelopes (an object with a string `type`) are skipped.
 */
export function decodeFrames(data: unknown, format: Format): Envelope[] {
  const value = decodeValue(data, format);
  if (!Array.isArray(value)) {
    const env = value === undefined ? undefined : normalize(value);
    return env ? [env] : [];
  }
  const envelopes: Envelope[] = [];
  for (const element of value) {
    const env = normalize(element);
    if (env) envelopes.push(env);
  }
  return envelopes;
}

function decodeValue(data: unknown, format: Format): unknown {
  let value: unknown;
  if (typeof data === 'string') {
    value = JSON.parse(data);
  } else if (data instanceof ArrayBuffer || ArrayBuffer.isView(data)) {
    const bytes = data instanceof ArrayBuffer
      ? new Uint8Array(data)
      : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    value = format === 'msgpack' ? mpDecode(bytes) : JSON.parse(new TextDecoder().decode(bytes));
  } else {
    return undefined;
  }
  return value;
}

/** Checks the shape and turns a base64 payload into bytes, so every transport hands out the same thing. */
export function normalize(value: unknown): Envelope | undefined {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return undefined;
  const env = value as Envelope;
  if (typeof env.type !== 'string') return undefined;
  if (env.enc === 'base64' && typeof env.payload === 'string') {
    env.payload = base64ToBytes(env.payload);
    delete env.enc;
  }
  if (typeof env.seq === 'bigint') env.seq = Number(env.seq);
  if (typeof env.ts === 'bigint') env.ts = Number(env.ts);
  return env;
}

function stripUndefined(frame: OutboundFrame): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(frame)) if (v !== undefined) out[k] = v;
  return out;
}

export function bytesToBase64(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) {
    s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(s);
}

export function base64ToBytes(text: string): Uint8Array {
  const s = atob(text);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

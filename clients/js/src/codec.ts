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
 * are not envelopes (an object with a string `type`) are skipped, and so is an element that cannot be read: the
 * array's other envelopes are still handed out (one bad element must not cost the messages sent with it).
 */
export function decodeFrames(data: unknown, format: Format): Envelope[] {
  const bytes = typeof data === 'string' ? undefined : asBytes(data);
  if (format === 'msgpack' && bytes) return decodeMessagePackFrames(bytes);
  const text = typeof data === 'string' ? data : bytes ? new TextDecoder().decode(bytes) : undefined;
  if (text === undefined) return [];
  const value: unknown = JSON.parse(text);
  return Array.isArray(value) ? readEach(value) : readEach([value]);
}

/** The envelopes of `values`, in order: each value that is not one, or cannot be read, is left out alone. */
export function readEach(values: unknown[]): Envelope[] {
  const envelopes: Envelope[] = [];
  for (const value of values) {
    try {
      const env = normalize(value);
      if (env) envelopes.push(env);
    } catch {
      // An element this client cannot read (a payload marked base64 that is not): skipped alone.
    }
  }
  return envelopes;
}

function asBytes(data: unknown): Uint8Array | undefined {
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return undefined;
}

/**
 * A MessagePack server message: decoded whole when it can be (nearly always). The decoder refuses some values the
 * worker passes on as stored (docs/protocol.md §10): a map key `__proto__` (any user's JSON payload may hold one; the
 * decoder refuses it to guard against prototype pollution) and map keys that are neither strings nor numbers (a
 * backend's MessagePack). Then each envelope is read alone, and within one the payload alone: a payload the decoder
 * refuses arrives as its MessagePack bytes (a `Uint8Array`, as the worker gives a JSON member a value without a JSON
 * form: binary), the envelope keeps its `seq`, and the other envelopes of the array are untouched.
 */
function decodeMessagePackFrames(bytes: Uint8Array): Envelope[] {
  try {
    const value = mpDecode(bytes);
    return Array.isArray(value) ? readEach(value) : readEach([value]);
  } catch {
    // Read the parts alone below.
  }
  let parts: Uint8Array[];
  try {
    parts = bytes[0] !== undefined && isArrayHeader(bytes[0]) ? splitContainer(bytes).values : [bytes];
  } catch {
    return []; // not MessagePack at all (truncated, or a byte no value starts with)
  }
  const envelopes: Envelope[] = [];
  for (const part of parts) {
    const env = readEnvelopeByParts(part);
    if (env) envelopes.push(env);
  }
  return envelopes;
}

/** One envelope (a map) whose whole decode failed: each key and value decoded alone; a payload that fails is its bytes. */
function readEnvelopeByParts(part: Uint8Array): Envelope | undefined {
  try {
    return readEach([mpDecode(part)])[0];
  } catch {
    // below
  }
  try {
    if (part[0] === undefined || isArrayHeader(part[0])) return undefined;
    const { values } = splitContainer(part);
    const out: Record<string, unknown> = {};
    for (let i = 0; i + 1 < values.length; i += 2) {
      const key = mpDecode(values[i]!);
      if (typeof key !== 'string' || key === '__proto__') continue;
      let value: unknown;
      try {
        value = mpDecode(values[i + 1]!);
      } catch (e) {
        if (key !== 'payload') throw e;
        value = values[i + 1]!.slice();
      }
      out[key] = value;
    }
    return readEach([out])[0];
  } catch {
    return undefined; // an envelope field this client cannot read: the envelope is skipped alone
  }
}

function isArrayHeader(b: number): boolean {
  return (b >= 0x90 && b <= 0x9f) || b === 0xdc || b === 0xdd;
}

/**
 * The encoded values inside the MessagePack array or map at the start of `bytes` (a map's keys and values in turn),
 * each as a view of its bytes, without decoding them. Throws on a value that is truncated, not a container, or
 * followed by more bytes.
 */
function splitContainer(bytes: Uint8Array): { values: Uint8Array[] } {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const header = containerHeader(view, 0);
  if (!header) throw new Error('not a MessagePack array or map');
  const values: Uint8Array[] = [];
  let at = header.at;
  for (let i = 0; i < header.count; i++) {
    const end = skipValue(view, at);
    values.push(bytes.subarray(at, end));
    at = end;
  }
  if (at !== bytes.length) throw new Error('unexpected data after the MessagePack value');
  return { values };
}

/** An array's or map's item count (a map counts keys and values) and where its items start; undefined for another value. */
function containerHeader(view: DataView, at: number): { count: number; at: number } | undefined {
  const b = view.getUint8(at);
  if (b >= 0x90 && b <= 0x9f) return { count: b & 0x0f, at: at + 1 };
  if (b >= 0x80 && b <= 0x8f) return { count: 2 * (b & 0x0f), at: at + 1 };
  if (b === 0xdc) return { count: view.getUint16(at + 1), at: at + 3 };
  if (b === 0xdd) return { count: view.getUint32(at + 1), at: at + 5 };
  if (b === 0xde) return { count: 2 * view.getUint16(at + 1), at: at + 3 };
  if (b === 0xdf) return { count: 2 * view.getUint32(at + 1), at: at + 5 };
  return undefined;
}

/** The end of the MessagePack value at `at` (its nested values walked without recursion). Throws when it is truncated. */
function skipValue(view: DataView, at: number): number {
  let pending = 1;
  while (pending > 0) {
    pending--;
    const container = containerHeader(view, at);
    if (container) {
      pending += container.count;
      at = container.at;
      continue;
    }
    const b = view.getUint8(at);
    let size: number;
    if (b <= 0x7f || b >= 0xe0 || b === 0xc0 || b === 0xc2 || b === 0xc3) size = 1;
    else if (b >= 0xa0 && b <= 0xbf) size = 1 + (b & 0x1f);
    else if (b === 0xc4 || b === 0xd9) size = 2 + view.getUint8(at + 1);
    else if (b === 0xc5 || b === 0xda) size = 3 + view.getUint16(at + 1);
    else if (b === 0xc6 || b === 0xdb) size = 5 + view.getUint32(at + 1);
    else if (b === 0xc7) size = 3 + view.getUint8(at + 1);
    else if (b === 0xc8) size = 4 + view.getUint16(at + 1);
    else if (b === 0xc9) size = 6 + view.getUint32(at + 1);
    else if (b === 0xca) size = 5;
    else if (b === 0xcb) size = 9;
    else if (b >= 0xcc && b <= 0xcf) size = 1 + (1 << (b - 0xcc));
    else if (b >= 0xd0 && b <= 0xd3) size = 1 + (1 << (b - 0xd0));
    else if (b >= 0xd4 && b <= 0xd8) size = 2 + (1 << (b - 0xd4));
    else throw new Error(`0x${b.toString(16)} starts no MessagePack value`);
    at += size;
    if (at > view.byteLength) throw new Error('truncated MessagePack value');
  }
  return at;
}

/**
 * Checks the shape and turns a base64 payload into bytes, so every transport hands out the same thing. Envelope fields
 * of the wrong kind are left out (a `room` that is not a string, a `seq` or `ts` that is not a number), as if absent.
 * Throws when a payload marked base64 is not base64.
 */
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
  for (const key of ['room', 'id', 'from'] as const) {
    if (env[key] !== undefined && typeof env[key] !== 'string') delete env[key];
  }
  for (const key of ['seq', 'ts'] as const) {
    if (env[key] !== undefined && typeof env[key] !== 'number') delete env[key];
  }
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

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
 * Told of each part of a server message the client cannot read and leaves out: `index` is its place in the message's
 * array (a batch message's element), undefined when the whole message is left out; `reason` says why.
 */
export type SkipListener = (index: number | undefined, reason: string) => void;

/**
 * Decodes one server WebSocket message into its envelopes, in order: one for a plain message, every element for a
 * batch subprotocol's array (a plain subprotocol never sends an array, so an array is always a batch). Elements that
 * are not envelopes (an object with a string `type`) are left out, and so is an element that cannot be read: the
 * array's other envelopes are still handed out (one bad element must not cost the messages sent with it). Each part
 * left out is told to `skipped`. Never throws.
 */
export function decodeFrames(data: unknown, format: Format, skipped?: SkipListener): Envelope[] {
  const bytes = typeof data === 'string' ? undefined : asBytes(data);
  if (format === 'msgpack' && bytes) return decodeMessagePackFrames(bytes, skipped);
  const text = typeof data === 'string' ? data : bytes ? new TextDecoder().decode(bytes) : undefined;
  if (text === undefined) {
    skipped?.(undefined, 'neither text nor bytes');
    return [];
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    skipped?.(undefined, `malformed JSON: ${errorText(e)}`);
    return [];
  }
  return Array.isArray(value) ? readEach(value, skipped) : readEach([value], whole(skipped));
}

/**
 * The envelopes of `values`, in order: each value that is not one, or cannot be read, is left out alone and told to
 * `skipped` with its index.
 */
export function readEach(values: unknown[], skipped?: SkipListener): Envelope[] {
  const envelopes: Envelope[] = [];
  values.forEach((value, index) => {
    try {
      const env = normalize(value);
      if (env) envelopes.push(env);
      else skipped?.(index, 'not an envelope (an object with a string type)');
    } catch (e) {
      // An element this client cannot read (a payload marked base64 that is not): left out alone.
      skipped?.(index, errorText(e));
    }
  });
  return envelopes;
}

/** The listener of a message that is one envelope, not an array: what is left out is the whole message. */
function whole(skipped: SkipListener | undefined): SkipListener | undefined {
  return skipped && ((_index, reason) => skipped(undefined, reason));
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
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
 * backend's MessagePack). Then each envelope is read alone ({@link readEnvelopeByParts}), and the other envelopes of
 * the array are untouched.
 */
function decodeMessagePackFrames(bytes: Uint8Array, skipped?: SkipListener): Envelope[] {
  try {
    const value = mpDecode(bytes);
    return Array.isArray(value) ? readEach(value, skipped) : readEach([value], whole(skipped));
  } catch {
    // Read the parts alone below.
  }
  let parts: Uint8Array[];
  let batch: boolean;
  try {
    batch = bytes[0] !== undefined && isArrayHeader(bytes[0]);
    parts = batch ? splitContainer(bytes).values : [bytes];
  } catch (e) {
    // Not MessagePack at all (truncated, or a byte no value starts with).
    skipped?.(undefined, `malformed MessagePack: ${errorText(e)}`);
    return [];
  }
  const envelopes: Envelope[] = [];
  parts.forEach((part, index) => {
    const env = readEnvelopeByParts(part, (reason) => skipped?.(batch ? index : undefined, reason));
    if (env) envelopes.push(env);
  });
  return envelopes;
}

/**
 * One envelope (a map) whose whole decode failed, read key by key, as the .NET client reads one: a key the decoder
 * refuses, or that is not a string, is left out with its value; a value the decoder refuses is left out, as a field
 * of the wrong kind is ({@link normalize}), except the payload, which arrives as its MessagePack bytes (as the worker
 * gives a JSON member a value without a JSON form: binary), or for `room.state` as its messages each read alone. So
 * the message is delivered with its `type`, `room` and `seq` whenever those can be read; only a map that is not
 * MessagePack at all, or has no readable `type`, is left out (told to `skipped`).
 */
function readEnvelopeByParts(part: Uint8Array, skipped: (reason: string) => void): Envelope | undefined {
  try {
    return readEach([mpDecode(part)], (_i, reason) => skipped(reason))[0];
  } catch {
    // below
  }
  let values: Uint8Array[];
  try {
    if (part[0] === undefined || !isMapHeader(part[0])) throw new Error('an envelope must be a MessagePack map');
    values = splitContainer(part).values;
  } catch (e) {
    skipped(`malformed MessagePack: ${errorText(e)}`);
    return undefined;
  }
  const out = readMapByParts(values, 'payload');
  const payload = out.get('payload') as Uint8Array | undefined;
  out.delete('payload');
  const env: Record<string, unknown> = Object.fromEntries(out);
  if (payload !== undefined) env.payload = readPayloadByParts(env.type, payload);
  return readEach([env], (_i, reason) => skipped(reason))[0];
}

/**
 * The string keys of a map's encoded keys and values (as {@link splitContainer} gives them), each with its value
 * decoded, except key `raw`, kept as its bytes. A key the decoder refuses or that is not a string is left out, and so
 * is a value the decoder refuses; `__proto__` is left out too (it would set the object's prototype).
 */
function readMapByParts(values: Uint8Array[], raw: string): Map<string, unknown> {
  const out = new Map<string, unknown>();
  for (let i = 0; i + 1 < values.length; i += 2) {
    let key: unknown;
    try {
      key = mpDecode(values[i]!);
    } catch {
      continue;
    }
    if (typeof key !== 'string' || key === '__proto__') continue;
    if (key === raw) {
      out.set(key, values[i + 1]!);
      continue;
    }
    try {
      out.set(key, mpDecode(values[i + 1]!));
    } catch {
      out.delete(key); // a value this client cannot read: absent, as a field of the wrong kind is
    }
  }
  return out;
}

/**
 * A payload the whole envelope's decode may have failed on: decoded if it can be, else its MessagePack bytes. A
 * `room.state`'s payload holds whole envelopes (docs/protocol.md §4): when it cannot be decoded whole, each of its
 * messages is read alone as a room message is, so only the message whose payload the decoder refuses is affected (its
 * payload arrives as bytes) and the others arrive decoded; a message that cannot be read at all is left out.
 */
function readPayloadByParts(type: unknown, bytes: Uint8Array): unknown {
  try {
    return mpDecode(bytes);
  } catch {
    // below
  }
  if (type === 'room.state' && bytes[0] !== undefined && isMapHeader(bytes[0])) {
    try {
      const state = readMapByParts(splitContainer(bytes).values, 'messages');
      const messages = state.get('messages') as Uint8Array | undefined;
      if (messages !== undefined) {
        if (messages[0] === undefined || !isArrayHeader(messages[0])) throw new Error('room.state messages must be an array');
        const list: Envelope[] = [];
        for (const element of splitContainer(messages).values) {
          const env = readEnvelopeByParts(element, () => undefined);
          if (env) list.push(env);
        }
        state.set('messages', list);
      }
      return Object.fromEntries(state);
    } catch {
      // below
    }
  }
  return bytes.slice();
}

function isMapHeader(b: number): boolean {
  return (b >= 0x80 && b <= 0x8f) || b === 0xde || b === 0xdf;
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

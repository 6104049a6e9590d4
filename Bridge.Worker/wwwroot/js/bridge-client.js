// Generated from clients/js by `npm run build` (esbuild). Do not edit.
var __defProp = Object.defineProperty;
var __defNormalProp = (obj, key, value) => key in obj ? __defProp(obj, key, { enumerable: true, configurable: true, writable: true, value }) : obj[key] = value;
var __publicField = (obj, key, value) => __defNormalProp(obj, typeof key !== "symbol" ? key + "" : key, value);

// src/backoff.ts
function backoffDelay(attempt, minMs, maxMs, random) {
  const ceiling = Math.min(maxMs, minMs * 2 ** Math.min(attempt, 30));
  return Math.floor(random() * ceiling);
}
function reconnectAfterMs(reason) {
  if (!reason) return void 0;
  const match = /reconnect_after_ms=(\d+)/.exec(reason);
  if (!match) return void 0;
  const value = Number(match[1]);
  return Number.isFinite(value) ? value : void 0;
}
function randomId() {
  const bytes = new Uint8Array(16);
  globalThis.crypto.getRandomValues(bytes);
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}
function jwtExpiryMs(token) {
  if (!token) return void 0;
  const parts = token.split(".");
  if (parts.length !== 3) return void 0;
  try {
    const json = atob(parts[1].replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(parts[1].length / 4) * 4, "="));
    const exp = JSON.parse(json).exp;
    return typeof exp === "number" ? exp * 1e3 : void 0;
  } catch {
    return void 0;
  }
}

// node_modules/@msgpack/msgpack/dist.esm/utils/utf8.mjs
function utf8Count(str) {
  const strLength = str.length;
  let byteLength = 0;
  let pos = 0;
  while (pos < strLength) {
    let value = str.charCodeAt(pos++);
    if ((value & 4294967168) === 0) {
      byteLength++;
      continue;
    } else if ((value & 4294965248) === 0) {
      byteLength += 2;
    } else {
      if (value >= 55296 && value <= 56319) {
        if (pos < strLength) {
          const extra = str.charCodeAt(pos);
          if ((extra & 64512) === 56320) {
            ++pos;
            value = ((value & 1023) << 10) + (extra & 1023) + 65536;
          }
        }
      }
      if ((value & 4294901760) === 0) {
        byteLength += 3;
      } else {
        byteLength += 4;
      }
    }
  }
  return byteLength;
}
function utf8EncodeJs(str, output, outputOffset) {
  const strLength = str.length;
  let offset = outputOffset;
  let pos = 0;
  while (pos < strLength) {
    let value = str.charCodeAt(pos++);
    if ((value & 4294967168) === 0) {
      output[offset++] = value;
      continue;
    } else if ((value & 4294965248) === 0) {
      output[offset++] = value >> 6 & 31 | 192;
    } else {
      if (value >= 55296 && value <= 56319) {
        if (pos < strLength) {
          const extra = str.charCodeAt(pos);
          if ((extra & 64512) === 56320) {
            ++pos;
            value = ((value & 1023) << 10) + (extra & 1023) + 65536;
          }
        }
      }
      if ((value & 4294901760) === 0) {
        output[offset++] = value >> 12 & 15 | 224;
        output[offset++] = value >> 6 & 63 | 128;
      } else {
        output[offset++] = value >> 18 & 7 | 240;
        output[offset++] = value >> 12 & 63 | 128;
        output[offset++] = value >> 6 & 63 | 128;
      }
    }
    output[offset++] = value & 63 | 128;
  }
}
var sharedTextEncoder = new TextEncoder();
var TEXT_ENCODER_THRESHOLD = 50;
function utf8EncodeTE(str, output, outputOffset) {
  sharedTextEncoder.encodeInto(str, output.subarray(outputOffset));
}
function utf8Encode(str, output, outputOffset) {
  if (str.length > TEXT_ENCODER_THRESHOLD) {
    utf8EncodeTE(str, output, outputOffset);
  } else {
    utf8EncodeJs(str, output, outputOffset);
  }
}
var CHUNK_SIZE = 4096;
function utf8DecodeJs(bytes, inputOffset, byteLength) {
  let offset = inputOffset;
  const end = offset + byteLength;
  const units = [];
  let result = "";
  while (offset < end) {
    const byte1 = bytes[offset++];
    if ((byte1 & 128) === 0) {
      units.push(byte1);
    } else if ((byte1 & 224) === 192) {
      const byte2 = bytes[offset++] & 63;
      units.push((byte1 & 31) << 6 | byte2);
    } else if ((byte1 & 240) === 224) {
      const byte2 = bytes[offset++] & 63;
      const byte3 = bytes[offset++] & 63;
      units.push((byte1 & 31) << 12 | byte2 << 6 | byte3);
    } else if ((byte1 & 248) === 240) {
      const byte2 = bytes[offset++] & 63;
      const byte3 = bytes[offset++] & 63;
      const byte4 = bytes[offset++] & 63;
      let unit = (byte1 & 7) << 18 | byte2 << 12 | byte3 << 6 | byte4;
      if (unit > 65535) {
        unit -= 65536;
        units.push(unit >>> 10 & 1023 | 55296);
        unit = 56320 | unit & 1023;
      }
      units.push(unit);
    } else {
      units.push(byte1);
    }
    if (units.length >= CHUNK_SIZE) {
      result += String.fromCharCode(...units);
      units.length = 0;
    }
  }
  if (units.length > 0) {
    result += String.fromCharCode(...units);
  }
  return result;
}
var sharedTextDecoder = new TextDecoder();
var TEXT_DECODER_THRESHOLD = 200;
function utf8DecodeTD(bytes, inputOffset, byteLength) {
  const stringBytes = bytes.subarray(inputOffset, inputOffset + byteLength);
  return sharedTextDecoder.decode(stringBytes);
}
function utf8Decode(bytes, inputOffset, byteLength) {
  if (byteLength > TEXT_DECODER_THRESHOLD) {
    return utf8DecodeTD(bytes, inputOffset, byteLength);
  } else {
    return utf8DecodeJs(bytes, inputOffset, byteLength);
  }
}

// node_modules/@msgpack/msgpack/dist.esm/ExtData.mjs
var ExtData = class {
  constructor(type, data) {
    __publicField(this, "type");
    __publicField(this, "data");
    this.type = type;
    this.data = data;
  }
};

// node_modules/@msgpack/msgpack/dist.esm/DecodeError.mjs
var DecodeError = class _DecodeError extends Error {
  constructor(message) {
    super(message);
    const proto = Object.create(_DecodeError.prototype);
    Object.setPrototypeOf(this, proto);
    Object.defineProperty(this, "name", {
      configurable: true,
      enumerable: false,
      value: _DecodeError.name
    });
  }
};

// node_modules/@msgpack/msgpack/dist.esm/utils/int.mjs
var UINT32_MAX = 4294967295;
function setUint64(view, offset, value) {
  const high = value / 4294967296;
  const low = value;
  view.setUint32(offset, high);
  view.setUint32(offset + 4, low);
}
function setInt64(view, offset, value) {
  const high = Math.floor(value / 4294967296);
  const low = value;
  view.setUint32(offset, high);
  view.setUint32(offset + 4, low);
}
function getInt64(view, offset) {
  const high = view.getInt32(offset);
  const low = view.getUint32(offset + 4);
  return high * 4294967296 + low;
}
function getUint64(view, offset) {
  const high = view.getUint32(offset);
  const low = view.getUint32(offset + 4);
  return high * 4294967296 + low;
}

// node_modules/@msgpack/msgpack/dist.esm/timestamp.mjs
var EXT_TIMESTAMP = -1;
var TIMESTAMP32_MAX_SEC = 4294967296 - 1;
var TIMESTAMP64_MAX_SEC = 17179869184 - 1;
function encodeTimeSpecToTimestamp({ sec, nsec }) {
  if (sec >= 0 && nsec >= 0 && sec <= TIMESTAMP64_MAX_SEC) {
    if (nsec === 0 && sec <= TIMESTAMP32_MAX_SEC) {
      const rv = new Uint8Array(4);
      const view = new DataView(rv.buffer);
      view.setUint32(0, sec);
      return rv;
    } else {
      const secHigh = sec / 4294967296;
      const secLow = sec & 4294967295;
      const rv = new Uint8Array(8);
      const view = new DataView(rv.buffer);
      view.setUint32(0, nsec << 2 | secHigh & 3);
      view.setUint32(4, secLow);
      return rv;
    }
  } else {
    const rv = new Uint8Array(12);
    const view = new DataView(rv.buffer);
    view.setUint32(0, nsec);
    setInt64(view, 4, sec);
    return rv;
  }
}
function encodeDateToTimeSpec(date) {
  const msec = date.getTime();
  const sec = Math.floor(msec / 1e3);
  const nsec = (msec - sec * 1e3) * 1e6;
  const nsecInSec = Math.floor(nsec / 1e9);
  return {
    sec: sec + nsecInSec,
    nsec: nsec - nsecInSec * 1e9
  };
}
function encodeTimestampExtension(object) {
  if (object instanceof Date) {
    const timeSpec = encodeDateToTimeSpec(object);
    return encodeTimeSpecToTimestamp(timeSpec);
  } else {
    return null;
  }
}
function decodeTimestampToTimeSpec(data) {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  switch (data.byteLength) {
    case 4: {
      const sec = view.getUint32(0);
      const nsec = 0;
      return { sec, nsec };
    }
    case 8: {
      const nsec30AndSecHigh2 = view.getUint32(0);
      const secLow32 = view.getUint32(4);
      const sec = (nsec30AndSecHigh2 & 3) * 4294967296 + secLow32;
      const nsec = nsec30AndSecHigh2 >>> 2;
      return { sec, nsec };
    }
    case 12: {
      const sec = getInt64(view, 4);
      const nsec = view.getUint32(0);
      return { sec, nsec };
    }
    default:
      throw new DecodeError(`Unrecognized data size for timestamp (expected 4, 8, or 12): ${data.length}`);
  }
}
function decodeTimestampExtension(data) {
  const timeSpec = decodeTimestampToTimeSpec(data);
  return new Date(timeSpec.sec * 1e3 + timeSpec.nsec / 1e6);
}
var timestampExtension = {
  type: EXT_TIMESTAMP,
  encode: encodeTimestampExtension,
  decode: decodeTimestampExtension
};

// node_modules/@msgpack/msgpack/dist.esm/ExtensionCodec.mjs
var _ExtensionCodec = class _ExtensionCodec {
  constructor() {
    // ensures ExtensionCodecType<X> matches ExtensionCodec<X>
    // this will make type errors a lot more clear
    // eslint-disable-next-line @typescript-eslint/naming-convention
    __publicField(this, "__brand");
    // built-in extensions
    __publicField(this, "builtInEncoders", []);
    __publicField(this, "builtInDecoders", []);
    // custom extensions
    __publicField(this, "encoders", []);
    __publicField(this, "decoders", []);
    this.register(timestampExtension);
  }
  register({ type, encode: encode2, decode: decode2 }) {
    if (type >= 0) {
      this.encoders[type] = encode2;
      this.decoders[type] = decode2;
    } else {
      const index = -1 - type;
      this.builtInEncoders[index] = encode2;
      this.builtInDecoders[index] = decode2;
    }
  }
  tryToEncode(object, context) {
    for (let i = 0; i < this.builtInEncoders.length; i++) {
      const encodeExt = this.builtInEncoders[i];
      if (encodeExt != null) {
        const data = encodeExt(object, context);
        if (data != null) {
          const type = -1 - i;
          return new ExtData(type, data);
        }
      }
    }
    for (let i = 0; i < this.encoders.length; i++) {
      const encodeExt = this.encoders[i];
      if (encodeExt != null) {
        const data = encodeExt(object, context);
        if (data != null) {
          const type = i;
          return new ExtData(type, data);
        }
      }
    }
    if (object instanceof ExtData) {
      return object;
    }
    return null;
  }
  decode(data, type, context) {
    const decodeExt = type < 0 ? this.builtInDecoders[-1 - type] : this.decoders[type];
    if (decodeExt) {
      return decodeExt(data, type, context);
    } else {
      return new ExtData(type, data);
    }
  }
};
__publicField(_ExtensionCodec, "defaultCodec", new _ExtensionCodec());
var ExtensionCodec = _ExtensionCodec;

// node_modules/@msgpack/msgpack/dist.esm/utils/typedArrays.mjs
function isArrayBufferLike(buffer) {
  return buffer instanceof ArrayBuffer || typeof SharedArrayBuffer !== "undefined" && buffer instanceof SharedArrayBuffer;
}
function ensureUint8Array(buffer) {
  if (buffer instanceof Uint8Array) {
    return buffer;
  } else if (ArrayBuffer.isView(buffer)) {
    return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  } else if (isArrayBufferLike(buffer)) {
    return new Uint8Array(buffer);
  } else {
    return Uint8Array.from(buffer);
  }
}

// node_modules/@msgpack/msgpack/dist.esm/Encoder.mjs
var DEFAULT_MAX_DEPTH = 100;
var DEFAULT_INITIAL_BUFFER_SIZE = 2048;
var Encoder = class _Encoder {
  constructor(options) {
    __publicField(this, "extensionCodec");
    __publicField(this, "context");
    __publicField(this, "useBigInt64");
    __publicField(this, "maxDepth");
    __publicField(this, "initialBufferSize");
    __publicField(this, "sortKeys");
    __publicField(this, "forceFloat32");
    __publicField(this, "ignoreUndefined");
    __publicField(this, "forceIntegerToFloat");
    __publicField(this, "pos");
    __publicField(this, "view");
    __publicField(this, "bytes");
    __publicField(this, "entered", false);
    this.extensionCodec = options?.extensionCodec ?? ExtensionCodec.defaultCodec;
    this.context = options?.context;
    this.useBigInt64 = options?.useBigInt64 ?? false;
    this.maxDepth = options?.maxDepth ?? DEFAULT_MAX_DEPTH;
    this.initialBufferSize = options?.initialBufferSize ?? DEFAULT_INITIAL_BUFFER_SIZE;
    this.sortKeys = options?.sortKeys ?? false;
    this.forceFloat32 = options?.forceFloat32 ?? false;
    this.ignoreUndefined = options?.ignoreUndefined ?? false;
    this.forceIntegerToFloat = options?.forceIntegerToFloat ?? false;
    this.pos = 0;
    this.view = new DataView(new ArrayBuffer(this.initialBufferSize));
    this.bytes = new Uint8Array(this.view.buffer);
  }
  clone() {
    return new _Encoder({
      extensionCodec: this.extensionCodec,
      context: this.context,
      useBigInt64: this.useBigInt64,
      maxDepth: this.maxDepth,
      initialBufferSize: this.initialBufferSize,
      sortKeys: this.sortKeys,
      forceFloat32: this.forceFloat32,
      ignoreUndefined: this.ignoreUndefined,
      forceIntegerToFloat: this.forceIntegerToFloat
    });
  }
  reinitializeState() {
    this.pos = 0;
  }
  /**
   * This is almost equivalent to {@link Encoder#encode}, but it returns an reference of the encoder's internal buffer and thus much faster than {@link Encoder#encode}.
   *
   * @returns Encodes the object and returns a shared reference the encoder's internal buffer.
   */
  encodeSharedRef(object) {
    if (this.entered) {
      const instance = this.clone();
      return instance.encodeSharedRef(object);
    }
    try {
      this.entered = true;
      this.reinitializeState();
      this.doEncode(object, 1);
      return this.bytes.subarray(0, this.pos);
    } finally {
      this.entered = false;
    }
  }
  /**
   * @returns Encodes the object and returns a copy of the encoder's internal buffer.
   */
  encode(object) {
    if (this.entered) {
      const instance = this.clone();
      return instance.encode(object);
    }
    try {
      this.entered = true;
      this.reinitializeState();
      this.doEncode(object, 1);
      return this.bytes.slice(0, this.pos);
    } finally {
      this.entered = false;
    }
  }
  doEncode(object, depth) {
    if (depth > this.maxDepth) {
      throw new Error(`Too deep objects in depth ${depth}`);
    }
    if (object == null) {
      this.encodeNil();
    } else if (typeof object === "boolean") {
      this.encodeBoolean(object);
    } else if (typeof object === "number") {
      if (!this.forceIntegerToFloat) {
        this.encodeNumber(object);
      } else {
        this.encodeNumberAsFloat(object);
      }
    } else if (typeof object === "string") {
      this.encodeString(object);
    } else if (this.useBigInt64 && typeof object === "bigint") {
      this.encodeBigInt64(object);
    } else {
      this.encodeObject(object, depth);
    }
  }
  ensureBufferSizeToWrite(sizeToWrite) {
    const requiredSize = this.pos + sizeToWrite;
    if (this.view.byteLength < requiredSize) {
      this.resizeBuffer(requiredSize * 2);
    }
  }
  resizeBuffer(newSize) {
    const newBuffer = new ArrayBuffer(newSize);
    const newBytes = new Uint8Array(newBuffer);
    const newView = new DataView(newBuffer);
    newBytes.set(this.bytes);
    this.view = newView;
    this.bytes = newBytes;
  }
  encodeNil() {
    this.writeU8(192);
  }
  encodeBoolean(object) {
    if (object === false) {
      this.writeU8(194);
    } else {
      this.writeU8(195);
    }
  }
  encodeNumber(object) {
    if (!this.forceIntegerToFloat && Number.isSafeInteger(object)) {
      if (object >= 0) {
        if (object < 128) {
          this.writeU8(object);
        } else if (object < 256) {
          this.writeU8(204);
          this.writeU8(object);
        } else if (object < 65536) {
          this.writeU8(205);
          this.writeU16(object);
        } else if (object < 4294967296) {
          this.writeU8(206);
          this.writeU32(object);
        } else if (!this.useBigInt64) {
          this.writeU8(207);
          this.writeU64(object);
        } else {
          this.encodeNumberAsFloat(object);
        }
      } else {
        if (object >= -32) {
          this.writeU8(224 | object + 32);
        } else if (object >= -128) {
          this.writeU8(208);
          this.writeI8(object);
        } else if (object >= -32768) {
          this.writeU8(209);
          this.writeI16(object);
        } else if (object >= -2147483648) {
          this.writeU8(210);
          this.writeI32(object);
        } else if (!this.useBigInt64) {
          this.writeU8(211);
          this.writeI64(object);
        } else {
          this.encodeNumberAsFloat(object);
        }
      }
    } else {
      this.encodeNumberAsFloat(object);
    }
  }
  encodeNumberAsFloat(object) {
    if (this.forceFloat32) {
      this.writeU8(202);
      this.writeF32(object);
    } else {
      this.writeU8(203);
      this.writeF64(object);
    }
  }
  encodeBigInt64(object) {
    if (object >= BigInt(0)) {
      this.writeU8(207);
      this.writeBigUint64(object);
    } else {
      this.writeU8(211);
      this.writeBigInt64(object);
    }
  }
  writeStringHeader(byteLength) {
    if (byteLength < 32) {
      this.writeU8(160 + byteLength);
    } else if (byteLength < 256) {
      this.writeU8(217);
      this.writeU8(byteLength);
    } else if (byteLength < 65536) {
      this.writeU8(218);
      this.writeU16(byteLength);
    } else if (byteLength < 4294967296) {
      this.writeU8(219);
      this.writeU32(byteLength);
    } else {
      throw new Error(`Too long string: ${byteLength} bytes in UTF-8`);
    }
  }
  encodeString(object) {
    const maxHeaderSize = 1 + 4;
    const byteLength = utf8Count(object);
    this.ensureBufferSizeToWrite(maxHeaderSize + byteLength);
    this.writeStringHeader(byteLength);
    utf8Encode(object, this.bytes, this.pos);
    this.pos += byteLength;
  }
  encodeObject(object, depth) {
    const ext = this.extensionCodec.tryToEncode(object, this.context);
    if (ext != null) {
      this.encodeExtension(ext);
    } else if (Array.isArray(object)) {
      this.encodeArray(object, depth);
    } else if (ArrayBuffer.isView(object)) {
      this.encodeBinary(object);
    } else if (typeof object === "object") {
      this.encodeMap(object, depth);
    } else {
      throw new Error(`Unrecognized object: ${Object.prototype.toString.apply(object)}`);
    }
  }
  encodeBinary(object) {
    const size = object.byteLength;
    if (size < 256) {
      this.writeU8(196);
      this.writeU8(size);
    } else if (size < 65536) {
      this.writeU8(197);
      this.writeU16(size);
    } else if (size < 4294967296) {
      this.writeU8(198);
      this.writeU32(size);
    } else {
      throw new Error(`Too large binary: ${size}`);
    }
    const bytes = ensureUint8Array(object);
    this.writeU8a(bytes);
  }
  encodeArray(object, depth) {
    const size = object.length;
    if (size < 16) {
      this.writeU8(144 + size);
    } else if (size < 65536) {
      this.writeU8(220);
      this.writeU16(size);
    } else if (size < 4294967296) {
      this.writeU8(221);
      this.writeU32(size);
    } else {
      throw new Error(`Too large array: ${size}`);
    }
    for (const item of object) {
      this.doEncode(item, depth + 1);
    }
  }
  countWithoutUndefined(object, keys) {
    let count = 0;
    for (const key of keys) {
      if (object[key] !== void 0) {
        count++;
      }
    }
    return count;
  }
  encodeMap(object, depth) {
    const keys = Object.keys(object);
    if (this.sortKeys) {
      keys.sort();
    }
    const size = this.ignoreUndefined ? this.countWithoutUndefined(object, keys) : keys.length;
    if (size < 16) {
      this.writeU8(128 + size);
    } else if (size < 65536) {
      this.writeU8(222);
      this.writeU16(size);
    } else if (size < 4294967296) {
      this.writeU8(223);
      this.writeU32(size);
    } else {
      throw new Error(`Too large map object: ${size}`);
    }
    for (const key of keys) {
      const value = object[key];
      if (!(this.ignoreUndefined && value === void 0)) {
        this.encodeString(key);
        this.doEncode(value, depth + 1);
      }
    }
  }
  encodeExtension(ext) {
    if (typeof ext.data === "function") {
      const data = ext.data(this.pos + 6);
      const size2 = data.length;
      if (size2 >= 4294967296) {
        throw new Error(`Too large extension object: ${size2}`);
      }
      this.writeU8(201);
      this.writeU32(size2);
      this.writeI8(ext.type);
      this.writeU8a(data);
      return;
    }
    const size = ext.data.length;
    if (size === 1) {
      this.writeU8(212);
    } else if (size === 2) {
      this.writeU8(213);
    } else if (size === 4) {
      this.writeU8(214);
    } else if (size === 8) {
      this.writeU8(215);
    } else if (size === 16) {
      this.writeU8(216);
    } else if (size < 256) {
      this.writeU8(199);
      this.writeU8(size);
    } else if (size < 65536) {
      this.writeU8(200);
      this.writeU16(size);
    } else if (size < 4294967296) {
      this.writeU8(201);
      this.writeU32(size);
    } else {
      throw new Error(`Too large extension object: ${size}`);
    }
    this.writeI8(ext.type);
    this.writeU8a(ext.data);
  }
  writeU8(value) {
    this.ensureBufferSizeToWrite(1);
    this.view.setUint8(this.pos, value);
    this.pos++;
  }
  writeU8a(values) {
    const size = values.length;
    this.ensureBufferSizeToWrite(size);
    this.bytes.set(values, this.pos);
    this.pos += size;
  }
  writeI8(value) {
    this.ensureBufferSizeToWrite(1);
    this.view.setInt8(this.pos, value);
    this.pos++;
  }
  writeU16(value) {
    this.ensureBufferSizeToWrite(2);
    this.view.setUint16(this.pos, value);
    this.pos += 2;
  }
  writeI16(value) {
    this.ensureBufferSizeToWrite(2);
    this.view.setInt16(this.pos, value);
    this.pos += 2;
  }
  writeU32(value) {
    this.ensureBufferSizeToWrite(4);
    this.view.setUint32(this.pos, value);
    this.pos += 4;
  }
  writeI32(value) {
    this.ensureBufferSizeToWrite(4);
    this.view.setInt32(this.pos, value);
    this.pos += 4;
  }
  writeF32(value) {
    this.ensureBufferSizeToWrite(4);
    this.view.setFloat32(this.pos, value);
    this.pos += 4;
  }
  writeF64(value) {
    this.ensureBufferSizeToWrite(8);
    this.view.setFloat64(this.pos, value);
    this.pos += 8;
  }
  writeU64(value) {
    this.ensureBufferSizeToWrite(8);
    setUint64(this.view, this.pos, value);
    this.pos += 8;
  }
  writeI64(value) {
    this.ensureBufferSizeToWrite(8);
    setInt64(this.view, this.pos, value);
    this.pos += 8;
  }
  writeBigUint64(value) {
    this.ensureBufferSizeToWrite(8);
    this.view.setBigUint64(this.pos, value);
    this.pos += 8;
  }
  writeBigInt64(value) {
    this.ensureBufferSizeToWrite(8);
    this.view.setBigInt64(this.pos, value);
    this.pos += 8;
  }
};

// node_modules/@msgpack/msgpack/dist.esm/encode.mjs
function encode(value, options) {
  const encoder2 = new Encoder(options);
  return encoder2.encodeSharedRef(value);
}

// node_modules/@msgpack/msgpack/dist.esm/utils/prettyByte.mjs
function prettyByte(byte) {
  return `${byte < 0 ? "-" : ""}0x${Math.abs(byte).toString(16).padStart(2, "0")}`;
}

// node_modules/@msgpack/msgpack/dist.esm/CachedKeyDecoder.mjs
var DEFAULT_MAX_KEY_LENGTH = 16;
var DEFAULT_MAX_LENGTH_PER_KEY = 16;
var CachedKeyDecoder = class {
  constructor(maxKeyLength = DEFAULT_MAX_KEY_LENGTH, maxLengthPerKey = DEFAULT_MAX_LENGTH_PER_KEY) {
    __publicField(this, "hit", 0);
    __publicField(this, "miss", 0);
    __publicField(this, "caches");
    __publicField(this, "maxKeyLength");
    __publicField(this, "maxLengthPerKey");
    this.maxKeyLength = maxKeyLength;
    this.maxLengthPerKey = maxLengthPerKey;
    this.caches = [];
    for (let i = 0; i < this.maxKeyLength; i++) {
      this.caches.push([]);
    }
  }
  canBeCached(byteLength) {
    return byteLength > 0 && byteLength <= this.maxKeyLength;
  }
  find(bytes, inputOffset, byteLength) {
    const records = this.caches[byteLength - 1];
    FIND_CHUNK: for (const record of records) {
      const recordBytes = record.bytes;
      for (let j = 0; j < byteLength; j++) {
        if (recordBytes[j] !== bytes[inputOffset + j]) {
          continue FIND_CHUNK;
        }
      }
      return record.str;
    }
    return null;
  }
  store(bytes, value) {
    const records = this.caches[bytes.length - 1];
    const record = { bytes, str: value };
    if (records.length >= this.maxLengthPerKey) {
      records[Math.random() * records.length | 0] = record;
    } else {
      records.push(record);
    }
  }
  decode(bytes, inputOffset, byteLength) {
    const cachedValue = this.find(bytes, inputOffset, byteLength);
    if (cachedValue != null) {
      this.hit++;
      return cachedValue;
    }
    this.miss++;
    const str = utf8DecodeJs(bytes, inputOffset, byteLength);
    const slicedCopyOfBytes = Uint8Array.prototype.slice.call(bytes, inputOffset, inputOffset + byteLength);
    this.store(slicedCopyOfBytes, str);
    return str;
  }
};

// node_modules/@msgpack/msgpack/dist.esm/Decoder.mjs
var STATE_ARRAY = "array";
var STATE_MAP_KEY = "map_key";
var STATE_MAP_VALUE = "map_value";
var mapKeyConverter = (key) => {
  if (typeof key === "string" || typeof key === "number") {
    return key;
  }
  throw new DecodeError("The type of key must be string or number but " + typeof key);
};
var StackPool = class {
  constructor() {
    __publicField(this, "stack", []);
    __publicField(this, "stackHeadPosition", -1);
  }
  get length() {
    return this.stackHeadPosition + 1;
  }
  top() {
    return this.stack[this.stackHeadPosition];
  }
  pushArrayState(size) {
    const state = this.getUninitializedStateFromPool();
    state.type = STATE_ARRAY;
    state.position = 0;
    state.size = size;
    state.array = new Array(size);
  }
  pushMapState(size) {
    const state = this.getUninitializedStateFromPool();
    state.type = STATE_MAP_KEY;
    state.readCount = 0;
    state.size = size;
    state.map = {};
  }
  getUninitializedStateFromPool() {
    this.stackHeadPosition++;
    if (this.stackHeadPosition === this.stack.length) {
      const partialState = {
        type: void 0,
        size: 0,
        array: void 0,
        position: 0,
        readCount: 0,
        map: void 0,
        key: null
      };
      this.stack.push(partialState);
    }
    return this.stack[this.stackHeadPosition];
  }
  release(state) {
    const topStackState = this.stack[this.stackHeadPosition];
    if (topStackState !== state) {
      throw new Error("Invalid stack state. Released state is not on top of the stack.");
    }
    if (state.type === STATE_ARRAY) {
      const partialState = state;
      partialState.size = 0;
      partialState.array = void 0;
      partialState.position = 0;
      partialState.type = void 0;
    }
    if (state.type === STATE_MAP_KEY || state.type === STATE_MAP_VALUE) {
      const partialState = state;
      partialState.size = 0;
      partialState.map = void 0;
      partialState.readCount = 0;
      partialState.type = void 0;
    }
    this.stackHeadPosition--;
  }
  reset() {
    this.stack.length = 0;
    this.stackHeadPosition = -1;
  }
};
var HEAD_BYTE_REQUIRED = -1;
var EMPTY_VIEW = new DataView(new ArrayBuffer(0));
var EMPTY_BYTES = new Uint8Array(EMPTY_VIEW.buffer);
try {
  EMPTY_VIEW.getInt8(0);
} catch (e) {
  if (!(e instanceof RangeError)) {
    throw new Error("This module is not supported in the current JavaScript engine because DataView does not throw RangeError on out-of-bounds access");
  }
}
var MORE_DATA = new RangeError("Insufficient data");
var sharedCachedKeyDecoder = new CachedKeyDecoder();
var Decoder = class _Decoder {
  constructor(options) {
    __publicField(this, "extensionCodec");
    __publicField(this, "context");
    __publicField(this, "useBigInt64");
    __publicField(this, "rawStrings");
    __publicField(this, "maxStrLength");
    __publicField(this, "maxBinLength");
    __publicField(this, "maxArrayLength");
    __publicField(this, "maxMapLength");
    __publicField(this, "maxExtLength");
    __publicField(this, "keyDecoder");
    __publicField(this, "mapKeyConverter");
    __publicField(this, "totalPos", 0);
    __publicField(this, "pos", 0);
    __publicField(this, "view", EMPTY_VIEW);
    __publicField(this, "bytes", EMPTY_BYTES);
    __publicField(this, "headByte", HEAD_BYTE_REQUIRED);
    __publicField(this, "stack", new StackPool());
    __publicField(this, "entered", false);
    this.extensionCodec = options?.extensionCodec ?? ExtensionCodec.defaultCodec;
    this.context = options?.context;
    this.useBigInt64 = options?.useBigInt64 ?? false;
    this.rawStrings = options?.rawStrings ?? false;
    this.maxStrLength = options?.maxStrLength ?? UINT32_MAX;
    this.maxBinLength = options?.maxBinLength ?? UINT32_MAX;
    this.maxArrayLength = options?.maxArrayLength ?? UINT32_MAX;
    this.maxMapLength = options?.maxMapLength ?? UINT32_MAX;
    this.maxExtLength = options?.maxExtLength ?? UINT32_MAX;
    this.keyDecoder = options?.keyDecoder !== void 0 ? options.keyDecoder : sharedCachedKeyDecoder;
    this.mapKeyConverter = options?.mapKeyConverter ?? mapKeyConverter;
  }
  clone() {
    return new _Decoder({
      extensionCodec: this.extensionCodec,
      context: this.context,
      useBigInt64: this.useBigInt64,
      rawStrings: this.rawStrings,
      maxStrLength: this.maxStrLength,
      maxBinLength: this.maxBinLength,
      maxArrayLength: this.maxArrayLength,
      maxMapLength: this.maxMapLength,
      maxExtLength: this.maxExtLength,
      keyDecoder: this.keyDecoder
    });
  }
  reinitializeState() {
    this.totalPos = 0;
    this.headByte = HEAD_BYTE_REQUIRED;
    this.stack.reset();
  }
  setBuffer(buffer) {
    const bytes = ensureUint8Array(buffer);
    this.bytes = bytes;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.pos = 0;
  }
  appendBuffer(buffer) {
    if (this.headByte === HEAD_BYTE_REQUIRED && !this.hasRemaining(1)) {
      this.setBuffer(buffer);
    } else {
      const remainingData = this.bytes.subarray(this.pos);
      const newData = ensureUint8Array(buffer);
      const newBuffer = new Uint8Array(remainingData.length + newData.length);
      newBuffer.set(remainingData);
      newBuffer.set(newData, remainingData.length);
      this.setBuffer(newBuffer);
    }
  }
  hasRemaining(size) {
    return this.view.byteLength - this.pos >= size;
  }
  createExtraByteError(posToShow) {
    const { view, pos } = this;
    return new RangeError(`Extra ${view.byteLength - pos} of ${view.byteLength} byte(s) found at buffer[${posToShow}]`);
  }
  /**
   * @throws {@link DecodeError}
   * @throws {@link RangeError}
   */
  decode(buffer) {
    if (this.entered) {
      const instance = this.clone();
      return instance.decode(buffer);
    }
    try {
      this.entered = true;
      this.reinitializeState();
      this.setBuffer(buffer);
      const object = this.doDecodeSync();
      if (this.hasRemaining(1)) {
        throw this.createExtraByteError(this.pos);
      }
      return object;
    } finally {
      this.entered = false;
    }
  }
  *decodeMulti(buffer) {
    if (this.entered) {
      const instance = this.clone();
      yield* instance.decodeMulti(buffer);
      return;
    }
    try {
      this.entered = true;
      this.reinitializeState();
      this.setBuffer(buffer);
      while (this.hasRemaining(1)) {
        yield this.doDecodeSync();
      }
    } finally {
      this.entered = false;
    }
  }
  async decodeAsync(stream) {
    if (this.entered) {
      const instance = this.clone();
      return instance.decodeAsync(stream);
    }
    try {
      this.entered = true;
      let decoded = false;
      let object;
      for await (const buffer of stream) {
        if (decoded) {
          this.entered = false;
          throw this.createExtraByteError(this.totalPos);
        }
        this.appendBuffer(buffer);
        try {
          object = this.doDecodeSync();
          decoded = true;
        } catch (e) {
          if (!(e instanceof RangeError)) {
            throw e;
          }
        }
        this.totalPos += this.pos;
      }
      if (decoded) {
        if (this.hasRemaining(1)) {
          throw this.createExtraByteError(this.totalPos);
        }
        return object;
      }
      const { headByte, pos, totalPos } = this;
      throw new RangeError(`Insufficient data in parsing ${prettyByte(headByte)} at ${totalPos} (${pos} in the current buffer)`);
    } finally {
      this.entered = false;
    }
  }
  decodeArrayStream(stream) {
    return this.decodeMultiAsync(stream, true);
  }
  decodeStream(stream) {
    return this.decodeMultiAsync(stream, false);
  }
  async *decodeMultiAsync(stream, isArray) {
    if (this.entered) {
      const instance = this.clone();
      yield* instance.decodeMultiAsync(stream, isArray);
      return;
    }
    try {
      this.entered = true;
      let isArrayHeaderRequired = isArray;
      let arrayItemsLeft = -1;
      for await (const buffer of stream) {
        if (isArray && arrayItemsLeft === 0) {
          throw this.createExtraByteError(this.totalPos);
        }
        this.appendBuffer(buffer);
        if (isArrayHeaderRequired) {
          arrayItemsLeft = this.readArraySize();
          isArrayHeaderRequired = false;
          this.complete();
        }
        try {
          while (true) {
            yield this.doDecodeSync();
            if (--arrayItemsLeft === 0) {
              break;
            }
          }
        } catch (e) {
          if (!(e instanceof RangeError)) {
            throw e;
          }
        }
        this.totalPos += this.pos;
      }
    } finally {
      this.entered = false;
    }
  }
  doDecodeSync() {
    DECODE: while (true) {
      const headByte = this.readHeadByte();
      let object;
      if (headByte >= 224) {
        object = headByte - 256;
      } else if (headByte < 192) {
        if (headByte < 128) {
          object = headByte;
        } else if (headByte < 144) {
          const size = headByte - 128;
          if (size !== 0) {
            this.pushMapState(size);
            this.complete();
            continue DECODE;
          } else {
            object = {};
          }
        } else if (headByte < 160) {
          const size = headByte - 144;
          if (size !== 0) {
            this.pushArrayState(size);
            this.complete();
            continue DECODE;
          } else {
            object = [];
          }
        } else {
          const byteLength = headByte - 160;
          object = this.decodeString(byteLength, 0);
        }
      } else if (headByte === 192) {
        object = null;
      } else if (headByte === 194) {
        object = false;
      } else if (headByte === 195) {
        object = true;
      } else if (headByte === 202) {
        object = this.readF32();
      } else if (headByte === 203) {
        object = this.readF64();
      } else if (headByte === 204) {
        object = this.readU8();
      } else if (headByte === 205) {
        object = this.readU16();
      } else if (headByte === 206) {
        object = this.readU32();
      } else if (headByte === 207) {
        if (this.useBigInt64) {
          object = this.readU64AsBigInt();
        } else {
          object = this.readU64();
        }
      } else if (headByte === 208) {
        object = this.readI8();
      } else if (headByte === 209) {
        object = this.readI16();
      } else if (headByte === 210) {
        object = this.readI32();
      } else if (headByte === 211) {
        if (this.useBigInt64) {
          object = this.readI64AsBigInt();
        } else {
          object = this.readI64();
        }
      } else if (headByte === 217) {
        const byteLength = this.lookU8();
        object = this.decodeString(byteLength, 1);
      } else if (headByte === 218) {
        const byteLength = this.lookU16();
        object = this.decodeString(byteLength, 2);
      } else if (headByte === 219) {
        const byteLength = this.lookU32();
        object = this.decodeString(byteLength, 4);
      } else if (headByte === 220) {
        const size = this.readU16();
        if (size !== 0) {
          this.pushArrayState(size);
          this.complete();
          continue DECODE;
        } else {
          object = [];
        }
      } else if (headByte === 221) {
        const size = this.readU32();
        if (size !== 0) {
          this.pushArrayState(size);
          this.complete();
          continue DECODE;
        } else {
          object = [];
        }
      } else if (headByte === 222) {
        const size = this.readU16();
        if (size !== 0) {
          this.pushMapState(size);
          this.complete();
          continue DECODE;
        } else {
          object = {};
        }
      } else if (headByte === 223) {
        const size = this.readU32();
        if (size !== 0) {
          this.pushMapState(size);
          this.complete();
          continue DECODE;
        } else {
          object = {};
        }
      } else if (headByte === 196) {
        const size = this.lookU8();
        object = this.decodeBinary(size, 1);
      } else if (headByte === 197) {
        const size = this.lookU16();
        object = this.decodeBinary(size, 2);
      } else if (headByte === 198) {
        const size = this.lookU32();
        object = this.decodeBinary(size, 4);
      } else if (headByte === 212) {
        object = this.decodeExtension(1, 0);
      } else if (headByte === 213) {
        object = this.decodeExtension(2, 0);
      } else if (headByte === 214) {
        object = this.decodeExtension(4, 0);
      } else if (headByte === 215) {
        object = this.decodeExtension(8, 0);
      } else if (headByte === 216) {
        object = this.decodeExtension(16, 0);
      } else if (headByte === 199) {
        const size = this.lookU8();
        object = this.decodeExtension(size, 1);
      } else if (headByte === 200) {
        const size = this.lookU16();
        object = this.decodeExtension(size, 2);
      } else if (headByte === 201) {
        const size = this.lookU32();
        object = this.decodeExtension(size, 4);
      } else {
        throw new DecodeError(`Unrecognized type byte: ${prettyByte(headByte)}`);
      }
      this.complete();
      const stack = this.stack;
      while (stack.length > 0) {
        const state = stack.top();
        if (state.type === STATE_ARRAY) {
          state.array[state.position] = object;
          state.position++;
          if (state.position === state.size) {
            object = state.array;
            stack.release(state);
          } else {
            continue DECODE;
          }
        } else if (state.type === STATE_MAP_KEY) {
          if (object === "__proto__") {
            throw new DecodeError("The key __proto__ is not allowed");
          }
          state.key = this.mapKeyConverter(object);
          state.type = STATE_MAP_VALUE;
          continue DECODE;
        } else {
          state.map[state.key] = object;
          state.readCount++;
          if (state.readCount === state.size) {
            object = state.map;
            stack.release(state);
          } else {
            state.key = null;
            state.type = STATE_MAP_KEY;
            continue DECODE;
          }
        }
      }
      return object;
    }
  }
  readHeadByte() {
    if (this.headByte === HEAD_BYTE_REQUIRED) {
      this.headByte = this.readU8();
    }
    return this.headByte;
  }
  complete() {
    this.headByte = HEAD_BYTE_REQUIRED;
  }
  readArraySize() {
    const headByte = this.readHeadByte();
    switch (headByte) {
      case 220:
        return this.readU16();
      case 221:
        return this.readU32();
      default: {
        if (headByte < 160) {
          return headByte - 144;
        } else {
          throw new DecodeError(`Unrecognized array type byte: ${prettyByte(headByte)}`);
        }
      }
    }
  }
  pushMapState(size) {
    if (size > this.maxMapLength) {
      throw new DecodeError(`Max length exceeded: map length (${size}) > maxMapLengthLength (${this.maxMapLength})`);
    }
    this.stack.pushMapState(size);
  }
  pushArrayState(size) {
    if (size > this.maxArrayLength) {
      throw new DecodeError(`Max length exceeded: array length (${size}) > maxArrayLength (${this.maxArrayLength})`);
    }
    this.stack.pushArrayState(size);
  }
  decodeString(byteLength, headerOffset) {
    if (!this.rawStrings || this.stateIsMapKey()) {
      return this.decodeUtf8String(byteLength, headerOffset);
    }
    return this.decodeBinary(byteLength, headerOffset);
  }
  /**
   * @throws {@link RangeError}
   */
  decodeUtf8String(byteLength, headerOffset) {
    if (byteLength > this.maxStrLength) {
      throw new DecodeError(`Max length exceeded: UTF-8 byte length (${byteLength}) > maxStrLength (${this.maxStrLength})`);
    }
    if (this.bytes.byteLength < this.pos + headerOffset + byteLength) {
      throw MORE_DATA;
    }
    const offset = this.pos + headerOffset;
    let object;
    if (this.stateIsMapKey() && this.keyDecoder?.canBeCached(byteLength)) {
      object = this.keyDecoder.decode(this.bytes, offset, byteLength);
    } else {
      object = utf8Decode(this.bytes, offset, byteLength);
    }
    this.pos += headerOffset + byteLength;
    return object;
  }
  stateIsMapKey() {
    if (this.stack.length > 0) {
      const state = this.stack.top();
      return state.type === STATE_MAP_KEY;
    }
    return false;
  }
  /**
   * @throws {@link RangeError}
   */
  decodeBinary(byteLength, headOffset) {
    if (byteLength > this.maxBinLength) {
      throw new DecodeError(`Max length exceeded: bin length (${byteLength}) > maxBinLength (${this.maxBinLength})`);
    }
    if (!this.hasRemaining(byteLength + headOffset)) {
      throw MORE_DATA;
    }
    const offset = this.pos + headOffset;
    const object = this.bytes.subarray(offset, offset + byteLength);
    this.pos += headOffset + byteLength;
    return object;
  }
  decodeExtension(size, headOffset) {
    if (size > this.maxExtLength) {
      throw new DecodeError(`Max length exceeded: ext length (${size}) > maxExtLength (${this.maxExtLength})`);
    }
    const extType = this.view.getInt8(this.pos + headOffset);
    const data = this.decodeBinary(
      size,
      headOffset + 1
      /* extType */
    );
    return this.extensionCodec.decode(data, extType, this.context);
  }
  lookU8() {
    return this.view.getUint8(this.pos);
  }
  lookU16() {
    return this.view.getUint16(this.pos);
  }
  lookU32() {
    return this.view.getUint32(this.pos);
  }
  readU8() {
    const value = this.view.getUint8(this.pos);
    this.pos++;
    return value;
  }
  readI8() {
    const value = this.view.getInt8(this.pos);
    this.pos++;
    return value;
  }
  readU16() {
    const value = this.view.getUint16(this.pos);
    this.pos += 2;
    return value;
  }
  readI16() {
    const value = this.view.getInt16(this.pos);
    this.pos += 2;
    return value;
  }
  readU32() {
    const value = this.view.getUint32(this.pos);
    this.pos += 4;
    return value;
  }
  readI32() {
    const value = this.view.getInt32(this.pos);
    this.pos += 4;
    return value;
  }
  readU64() {
    const value = getUint64(this.view, this.pos);
    this.pos += 8;
    return value;
  }
  readI64() {
    const value = getInt64(this.view, this.pos);
    this.pos += 8;
    return value;
  }
  readU64AsBigInt() {
    const value = this.view.getBigUint64(this.pos);
    this.pos += 8;
    return value;
  }
  readI64AsBigInt() {
    const value = this.view.getBigInt64(this.pos);
    this.pos += 8;
    return value;
  }
  readF32() {
    const value = this.view.getFloat32(this.pos);
    this.pos += 4;
    return value;
  }
  readF64() {
    const value = this.view.getFloat64(this.pos);
    this.pos += 8;
    return value;
  }
};

// node_modules/@msgpack/msgpack/dist.esm/decode.mjs
function decode(buffer, options) {
  const decoder = new Decoder(options);
  return decoder.decode(buffer);
}

// src/codec.ts
var Subprotocols = {
  json: "bridge.v1.json",
  msgpack: "bridge.v1.msgpack"
};
var BatchSubprotocols = {
  json: "bridge.v1.json-batch",
  msgpack: "bridge.v1.msgpack-batch"
};
var encoder = new TextEncoder();
function encodeFrame(frame, format) {
  if (format === "msgpack") {
    return encode(stripUndefined(frame), { ignoreUndefined: true });
  }
  return JSON.stringify(toJsonFrame(frame));
}
function toJsonFrame(frame) {
  const out = { type: frame.type };
  if (frame.room !== void 0) out.room = frame.room;
  if (frame.id !== void 0) out.id = frame.id;
  if (frame.payload instanceof Uint8Array) {
    out.enc = "base64";
    out.payload = bytesToBase64(frame.payload);
  } else if (frame.payload !== void 0) {
    out.payload = frame.payload;
  }
  return out;
}
function encodedSize(data) {
  return typeof data === "string" ? encoder.encode(data).length : data.length;
}
function decodeFrames(data, format, skipped) {
  const bytes = typeof data === "string" ? void 0 : asBytes(data);
  if (format === "msgpack" && bytes) return decodeMessagePackFrames(bytes, skipped);
  const text = typeof data === "string" ? data : bytes ? new TextDecoder().decode(bytes) : void 0;
  if (text === void 0) {
    skipped?.(void 0, "neither text nor bytes");
    return [];
  }
  let value;
  try {
    value = JSON.parse(text);
  } catch (e) {
    skipped?.(void 0, `malformed JSON: ${errorText(e)}`);
    return [];
  }
  return Array.isArray(value) ? readEach(value, skipped) : readEach([value], whole(skipped));
}
function readEach(values, skipped) {
  const envelopes = [];
  values.forEach((value, index) => {
    try {
      const env = normalize(value);
      if (env) envelopes.push(env);
      else skipped?.(index, "not an envelope (an object with a string type)");
    } catch (e) {
      skipped?.(index, errorText(e));
    }
  });
  return envelopes;
}
function whole(skipped) {
  return skipped && ((_index, reason) => skipped(void 0, reason));
}
function errorText(e) {
  return e instanceof Error ? e.message : String(e);
}
function asBytes(data) {
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return void 0;
}
function decodeMessagePackFrames(bytes, skipped) {
  try {
    const value = decode(bytes);
    return Array.isArray(value) ? readEach(value, skipped) : readEach([value], whole(skipped));
  } catch {
  }
  let parts;
  let batch;
  try {
    batch = bytes[0] !== void 0 && isArrayHeader(bytes[0]);
    parts = batch ? splitContainer(bytes).values : [bytes];
  } catch (e) {
    skipped?.(void 0, `malformed MessagePack: ${errorText(e)}`);
    return [];
  }
  const envelopes = [];
  parts.forEach((part, index) => {
    const env = readEnvelopeByParts(part, (reason) => skipped?.(batch ? index : void 0, reason));
    if (env) envelopes.push(env);
  });
  return envelopes;
}
function readEnvelopeByParts(part, skipped) {
  try {
    return readEach([decode(part)], (_i, reason) => skipped(reason))[0];
  } catch {
  }
  let values;
  try {
    if (part[0] === void 0 || !isMapHeader(part[0])) throw new Error("an envelope must be a MessagePack map");
    values = splitContainer(part).values;
  } catch (e) {
    skipped(`malformed MessagePack: ${errorText(e)}`);
    return void 0;
  }
  const out = readMapByParts(values, "payload");
  const payload = out.get("payload");
  out.delete("payload");
  const env = Object.fromEntries(out);
  if (payload !== void 0) env.payload = readPayloadByParts(env.type, payload);
  return readEach([env], (_i, reason) => skipped(reason))[0];
}
function readMapByParts(values, raw) {
  const out = /* @__PURE__ */ new Map();
  for (let i = 0; i + 1 < values.length; i += 2) {
    let key;
    try {
      key = decode(values[i]);
    } catch {
      continue;
    }
    if (typeof key !== "string" || key === "__proto__") continue;
    if (key === raw) {
      out.set(key, values[i + 1]);
      continue;
    }
    try {
      out.set(key, decode(values[i + 1]));
    } catch {
      out.delete(key);
    }
  }
  return out;
}
function readPayloadByParts(type, bytes) {
  try {
    return decode(bytes);
  } catch {
  }
  if (type === "room.state" && bytes[0] !== void 0 && isMapHeader(bytes[0])) {
    try {
      const state = readMapByParts(splitContainer(bytes).values, "messages");
      const messages = state.get("messages");
      if (messages !== void 0) {
        if (messages[0] === void 0 || !isArrayHeader(messages[0])) throw new Error("room.state messages must be an array");
        const list = [];
        for (const element of splitContainer(messages).values) {
          const env = readEnvelopeByParts(element, () => void 0);
          if (env) list.push(env);
        }
        state.set("messages", list);
      }
      return Object.fromEntries(state);
    } catch {
    }
  }
  return bytes.slice();
}
function isMapHeader(b) {
  return b >= 128 && b <= 143 || b === 222 || b === 223;
}
function isArrayHeader(b) {
  return b >= 144 && b <= 159 || b === 220 || b === 221;
}
function splitContainer(bytes) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const header = containerHeader(view, 0);
  if (!header) throw new Error("not a MessagePack array or map");
  const values = [];
  let at = header.at;
  for (let i = 0; i < header.count; i++) {
    const end = skipValue(view, at);
    values.push(bytes.subarray(at, end));
    at = end;
  }
  if (at !== bytes.length) throw new Error("unexpected data after the MessagePack value");
  return { values };
}
function containerHeader(view, at) {
  const b = view.getUint8(at);
  if (b >= 144 && b <= 159) return { count: b & 15, at: at + 1 };
  if (b >= 128 && b <= 143) return { count: 2 * (b & 15), at: at + 1 };
  if (b === 220) return { count: view.getUint16(at + 1), at: at + 3 };
  if (b === 221) return { count: view.getUint32(at + 1), at: at + 5 };
  if (b === 222) return { count: 2 * view.getUint16(at + 1), at: at + 3 };
  if (b === 223) return { count: 2 * view.getUint32(at + 1), at: at + 5 };
  return void 0;
}
function skipValue(view, at) {
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
    let size;
    if (b <= 127 || b >= 224 || b === 192 || b === 194 || b === 195) size = 1;
    else if (b >= 160 && b <= 191) size = 1 + (b & 31);
    else if (b === 196 || b === 217) size = 2 + view.getUint8(at + 1);
    else if (b === 197 || b === 218) size = 3 + view.getUint16(at + 1);
    else if (b === 198 || b === 219) size = 5 + view.getUint32(at + 1);
    else if (b === 199) size = 3 + view.getUint8(at + 1);
    else if (b === 200) size = 4 + view.getUint16(at + 1);
    else if (b === 201) size = 6 + view.getUint32(at + 1);
    else if (b === 202) size = 5;
    else if (b === 203) size = 9;
    else if (b >= 204 && b <= 207) size = 1 + (1 << b - 204);
    else if (b >= 208 && b <= 211) size = 1 + (1 << b - 208);
    else if (b >= 212 && b <= 216) size = 2 + (1 << b - 212);
    else throw new Error(`0x${b.toString(16)} starts no MessagePack value`);
    at += size;
    if (at > view.byteLength) throw new Error("truncated MessagePack value");
  }
  return at;
}
function normalize(value) {
  if (value === null || typeof value !== "object" || Array.isArray(value)) return void 0;
  const env = value;
  if (typeof env.type !== "string") return void 0;
  if (env.enc === "base64" && typeof env.payload === "string") {
    env.payload = base64ToBytes(env.payload);
    delete env.enc;
  }
  if (typeof env.seq === "bigint") env.seq = Number(env.seq);
  if (typeof env.ts === "bigint") env.ts = Number(env.ts);
  for (const key of ["room", "id", "from"]) {
    if (env[key] !== void 0 && typeof env[key] !== "string") delete env[key];
  }
  for (const key of ["seq", "ts"]) {
    if (env[key] !== void 0 && typeof env[key] !== "number") delete env[key];
  }
  return env;
}
function stripUndefined(frame) {
  const out = {};
  for (const [k, v] of Object.entries(frame)) if (v !== void 0) out[k] = v;
  return out;
}
function bytesToBase64(bytes) {
  let s = "";
  for (let i = 0; i < bytes.length; i += 32768) {
    s += String.fromCharCode(...bytes.subarray(i, i + 32768));
  }
  return btoa(s);
}
function base64ToBytes(text) {
  const s = atob(text);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

// src/pacer.ts
var SendPacer = class _SendPacer {
  constructor(framesPerSecond, frameBurst, now) {
    __publicField(this, "now", now);
    __publicField(this, "capacity");
    __publicField(this, "perMs");
    /** The worker's refill interval (ms), as its token bucket has it (TokenBuckets.PerSecond). */
    __publicField(this, "refillMs");
    __publicField(this, "tokens");
    __publicField(this, "last");
    /** No send before this time: the worker's bucket was empty, and it refills once per {@link refillMs}. */
    __publicField(this, "holdUntil", Number.NEGATIVE_INFINITY);
    this.capacity = Math.max(1, Math.floor(frameBurst / 2));
    this.perMs = framesPerSecond * 0.8 / 1e3;
    this.refillMs = Math.max(1, Math.ceil(framesPerSecond / 10)) / framesPerSecond * 1e3;
    this.tokens = this.capacity;
    this.last = now();
  }
  /** The pacer for a `welcome` payload; undefined when it says no frame rate (SSE, older workers). */
  static fromWelcome(welcome, now = monotonicNow) {
    const rate = welcome.framesPerSecond;
    const burst = welcome.frameBurst;
    if (!isPositiveInteger(rate) || !isPositiveInteger(burst)) return void 0;
    return new _SendPacer(rate, burst, now);
  }
  /** Takes a token for a send; false when there is none now (the send waits {@link msUntilNext}). */
  tryTake() {
    this.refill();
    if (this.tokens < 1 || this.last < this.holdUntil) return false;
    this.tokens -= 1;
    return true;
  }
  /** Another frame goes out: takes a token if there is one. */
  debit() {
    this.refill();
    this.tokens = Math.max(0, this.tokens - 1);
  }
  /**
   * The worker refused a frame `rate_limited`: its bucket is empty, so this one is too, and no send goes before the
   * worker's next refill (one refill interval from now: the refusal was sent before it came).
   */
  drain() {
    this.refill();
    this.tokens = 0;
    this.holdUntil = this.last + this.refillMs;
  }
  /** Milliseconds until a send may take a token (0: now). */
  msUntilNext() {
    this.refill();
    const hold = Math.max(0, this.holdUntil - this.last);
    return Math.ceil(Math.max(hold, this.tokens >= 1 ? 0 : (1 - this.tokens) / this.perMs));
  }
  refill() {
    const t = this.now();
    this.tokens = Math.min(this.capacity, this.tokens + (t - this.last) * this.perMs);
    this.last = t;
  }
};
function isPositiveInteger(value) {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 1;
}
function monotonicNow() {
  return globalThis.performance?.now() ?? Date.now();
}

// src/transports/transport.ts
var OpenError = class extends Error {
  constructor(message, info = {}) {
    super(message);
    __publicField(this, "info");
    this.name = "OpenError";
    this.info = { reason: message, ...info };
  }
};
function setJoinOptions(url, rooms) {
  if (rooms.some((r) => r.latest)) url.searchParams.set("latest", "true");
  if (rooms.length > 0 && rooms.every((r) => r.maxRate !== void 0)) {
    url.searchParams.set("maxRate", String(Math.min(...rooms.map((r) => r.maxRate))));
  }
}
function formatCursor(rooms) {
  return rooms.filter((r) => r.position !== void 0).map((r) => `${r.room}=${r.position}`).join(",");
}
function parseCursor(text, rooms) {
  const out = /* @__PURE__ */ new Map();
  if (!text) return out;
  if (!text.includes("=")) {
    if (rooms.length === 1) out.set(rooms[0], Number(text));
    return out;
  }
  for (const pair of text.split(",")) {
    const eq = pair.indexOf("=");
    if (eq > 0) out.set(pair.slice(0, eq), Number(pair.slice(eq + 1)));
  }
  return out;
}
function authHeaders(token) {
  return token ? { Authorization: `Bearer ${token}` } : {};
}
async function probe(host) {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), host.openTimeoutMs);
  try {
    const res = await host.fetch(`${host.baseUrl}/healthz`, { signal: abort.signal, cache: "no-store" });
    if (!res.ok) throw new OpenError(`healthz answered ${res.status}`, { httpStatus: res.status });
    await res.arrayBuffer();
  } catch (e) {
    if (e instanceof OpenError) throw e;
    throw new OpenError(`worker unreachable: ${e.message}`);
  } finally {
    clearTimeout(timer);
  }
}
async function problemText(res) {
  try {
    const body = await res.json();
    return `${res.status} ${body.code ?? ""} ${body.message ?? ""}`.trim();
  } catch {
    return `${res.status}`;
  }
}

// src/transports/poll.ts
var PollTransport = class {
  constructor(host, requestTimeoutMs) {
    __publicField(this, "host", host);
    __publicField(this, "requestTimeoutMs", requestTimeoutMs);
    __publicField(this, "kind", "poll");
    __publicField(this, "twoWay", false);
    __publicField(this, "closed", false);
    __publicField(this, "abort");
    __publicField(this, "announced", /* @__PURE__ */ new Set());
    __publicField(this, "wake");
    __publicField(this, "restart", false);
  }
  async open() {
    await probe(this.host);
    void this.loop();
  }
  send(_frame) {
    return false;
  }
  roomsChanged() {
    this.restart = true;
    this.abort?.abort();
    this.wake?.();
  }
  close() {
    this.closed = true;
    this.abort?.abort();
    this.wake?.();
  }
  async loop() {
    while (!this.closed) {
      const rooms = this.host.rooms();
      if (rooms.length === 0) {
        await new Promise((resolve) => this.wake = resolve);
        this.wake = void 0;
        continue;
      }
      for (const known of [...this.announced]) {
        if (!rooms.some((r) => r.room === known)) this.announced.delete(known);
      }
      const names = rooms.map((r) => r.room);
      const url = new URL("/poll", this.host.baseUrl + "/");
      url.searchParams.set("rooms", names.join(","));
      setJoinOptions(url, rooms);
      const cursor = formatCursor(rooms);
      if (cursor) url.searchParams.set("cursor", cursor);
      const abort = new AbortController();
      this.abort = abort;
      this.restart = false;
      const timer = setTimeout(() => abort.abort(), this.requestTimeoutMs);
      let answer;
      let bytes = 0;
      try {
        const res = await this.host.fetch(url.toString(), {
          headers: authHeaders(this.host.token()),
          signal: abort.signal,
          cache: "no-store"
        });
        if (!res.ok) {
          const text2 = await problemText(res);
          if (!this.closed) this.host.lost(new OpenError(`poll refused: ${text2}`, { httpStatus: res.status }).info);
          return;
        }
        const text = await res.text();
        bytes = encodedSize(text);
        const body = JSON.parse(text);
        answer = body !== null && typeof body === "object" ? body : {};
      } catch (e) {
        if (this.closed) return;
        if (this.restart) continue;
        this.host.lost({ reason: `poll failed: ${e.message}` });
        return;
      } finally {
        clearTimeout(timer);
      }
      if (this.closed) return;
      this.deliver(answer, names, bytes);
      if (this.restart) continue;
    }
  }
  deliver(answer, names, bytes) {
    const replayed = /* @__PURE__ */ new Map();
    const skipped = (list) => (index, reason) => this.host.skipped({ transport: "poll", bytes, index, reason: `${list}[${index}]: ${reason}` });
    for (const env of readEach(Array.isArray(answer.messages) ? answer.messages : [], skipped("messages"))) {
      if (env.room) replayed.set(env.room, (replayed.get(env.room) ?? 0) + 1);
      this.host.frame(env);
    }
    for (const env of readEach(Array.isArray(answer.errors) ? answer.errors : [], skipped("errors"))) {
      this.host.frame(env);
    }
    const truncated = new Set(Array.isArray(answer.truncated) ? answer.truncated : []);
    for (const [room, seq] of parseCursor(typeof answer.cursor === "string" ? answer.cursor : "", names)) {
      if (!Number.isFinite(seq)) continue;
      this.host.advance(room, seq);
      if (!this.announced.has(room) || truncated.has(room)) {
        this.announced.add(room);
        const joined = {
          type: "room.joined",
          room,
          seq,
          payload: { replayed: replayed.get(room) ?? 0, truncated: truncated.has(room) }
        };
        this.host.frame(joined);
      }
    }
  }
};

// src/transports/sse.ts
var DEFAULT_IDLE_MS = 45e3;
var SseTransport = class {
  constructor(host) {
    __publicField(this, "host", host);
    __publicField(this, "kind", "sse");
    __publicField(this, "twoWay", false);
    __publicField(this, "abort");
    __publicField(this, "closed", false);
    __publicField(this, "restartQueued", false);
    __publicField(this, "generation", 0);
  }
  async open() {
    if (this.host.rooms().length === 0) {
      await probe(this.host);
      return;
    }
    await this.start(true);
  }
  send(_frame) {
    return false;
  }
  roomsChanged() {
    if (this.closed || this.restartQueued) return;
    this.restartQueued = true;
    queueMicrotask(() => {
      this.restartQueued = false;
      if (this.closed) return;
      this.abort?.abort();
      this.abort = void 0;
      if (this.host.rooms().length === 0) return;
      this.start(false).catch((e) => {
        if (!this.closed) this.host.lost(e.info ?? { reason: String(e) });
      });
    });
  }
  close() {
    this.closed = true;
    this.abort?.abort();
  }
  /** Opens the stream; resolves on its `welcome`. Later events and the stream's end are reported to the host. */
  start(first) {
    const generation = ++this.generation;
    const abort = new AbortController();
    this.abort = abort;
    const rooms = this.host.rooms();
    const url = new URL("/sse", this.host.baseUrl + "/");
    url.searchParams.set("rooms", rooms.map((r) => r.room).join(","));
    setJoinOptions(url, rooms);
    const cursor = formatCursor(rooms);
    if (cursor) url.searchParams.set("lastEventId", cursor);
    return new Promise((resolve, reject) => {
      let opened = false;
      const timer = setTimeout(() => {
        if (!opened) {
          abort.abort();
          reject(new OpenError("SSE stream did not open in time"));
        }
      }, this.host.openTimeoutMs);
      const fail = (info) => {
        clearTimeout(timer);
        if (!opened) reject(info);
        else if (!this.closed && generation === this.generation) this.host.lost(info.info);
      };
      (async () => {
        let res;
        try {
          res = await this.host.fetch(url.toString(), {
            headers: { Accept: "text/event-stream", ...authHeaders(this.host.token()) },
            signal: abort.signal,
            cache: "no-store"
          });
        } catch (e) {
          fail(new OpenError(`SSE request failed: ${e.message}`));
          return;
        }
        if (!res.ok || !(res.headers.get("content-type") ?? "").startsWith("text/event-stream") || !res.body) {
          fail(new OpenError(`SSE refused: ${await problemText(res)}`, { httpStatus: res.status }));
          return;
        }
        const reader = res.body.getReader();
        const decoder = new TextDecoder();
        let buffer = "";
        let idleMs = DEFAULT_IDLE_MS;
        let idle;
        let stalled = false;
        const watch = () => {
          clearTimeout(idle);
          idle = setTimeout(() => {
            stalled = true;
            abort.abort();
          }, idleMs);
        };
        watch();
        try {
          for (; ; ) {
            const { value, done } = await reader.read();
            if (done) break;
            watch();
            buffer += decoder.decode(value, { stream: true });
            let end;
            while ((end = buffer.indexOf("\n\n")) >= 0) {
              const block = buffer.slice(0, end);
              buffer = buffer.slice(end + 2);
              if (generation !== this.generation || this.closed) continue;
              const env = parseEvent(block, (bytes, reason) => this.host.skipped({ transport: "sse", bytes, reason }));
              if (!env) continue;
              if (env.type === "welcome") {
                const beat = env.payload?.heartbeatMs;
                if (typeof beat === "number" && beat > 0) idleMs = 2 * beat + 2e3;
              }
              if (!opened && env.type === "welcome") {
                opened = true;
                clearTimeout(timer);
                if (first) resolve();
              }
              this.host.frame(env);
            }
          }
          fail(new OpenError("SSE stream ended"));
        } catch (e) {
          if (stalled) {
            fail(new OpenError(`SSE stream silent for ${idleMs} ms`));
            return;
          }
          if (abort.signal.aborted && (this.closed || generation !== this.generation)) return;
          fail(new OpenError(`SSE stream broke: ${e.message}`));
        } finally {
          clearTimeout(idle);
        }
      })();
      if (!first) {
        opened = true;
        clearTimeout(timer);
        resolve();
      }
    });
  }
};
function parseEvent(block, skipped) {
  const data = [];
  for (const line of block.split("\n")) {
    if (line.startsWith("data:")) data.push(line.slice(line.charAt(5) === " " ? 6 : 5));
  }
  if (data.length === 0) return void 0;
  const text = data.join("\n");
  let env;
  try {
    env = normalize(JSON.parse(text));
  } catch (e) {
    skipped(encodedSize(text), e instanceof Error ? e.message : String(e));
    return void 0;
  }
  if (!env) skipped(encodedSize(text), "not an envelope (an object with a string type)");
  return env;
}

// src/transports/websocket.ts
var OPEN = 1;
var WebSocketTransport = class {
  constructor(host, ctor, format, batch = true) {
    __publicField(this, "host", host);
    __publicField(this, "ctor", ctor);
    __publicField(this, "format", format);
    __publicField(this, "batch", batch);
    __publicField(this, "kind", "websocket");
    __publicField(this, "twoWay", true);
    __publicField(this, "socket");
    __publicField(this, "closedByUs", false);
  }
  open() {
    return new Promise((resolve, reject) => {
      const url = new URL("/ws", this.host.baseUrl.replace(/^http/, "ws") + "/");
      const token = this.host.token();
      if (token) url.searchParams.set("access_token", token);
      let ws;
      try {
        const protocols = this.batch ? [BatchSubprotocols[this.format], Subprotocols[this.format]] : [Subprotocols[this.format]];
        ws = new this.ctor(url.toString(), protocols);
      } catch (e) {
        reject(new OpenError(`WebSocket refused: ${e.message}`));
        return;
      }
      this.socket = ws;
      ws.binaryType = "arraybuffer";
      let opened = false;
      const timer = setTimeout(() => {
        if (opened) return;
        this.closedByUs = true;
        ws.close();
        reject(new OpenError("WebSocket did not open in time"));
      }, this.host.openTimeoutMs);
      ws.onmessage = (ev) => {
        const envelopes = decodeFrames(ev.data, this.format, (index, reason) => this.host.skipped({ transport: "websocket", bytes: messageBytes(ev.data), index, reason }));
        for (const env of envelopes) {
          if (!opened && env.type === "welcome") {
            opened = true;
            clearTimeout(timer);
            resolve();
          }
          this.host.frame(env);
        }
      };
      ws.onerror = () => {
      };
      ws.onclose = (ev) => {
        clearTimeout(timer);
        if (!opened) {
          reject(new OpenError(`WebSocket closed before welcome (${ev.code})`, { code: ev.code, reason: ev.reason }));
        } else if (!this.closedByUs) {
          this.host.lost({ code: ev.code, reason: ev.reason });
        }
      };
    });
  }
  send(frame) {
    const ws = this.socket;
    if (!ws || ws.readyState !== OPEN) return false;
    ws.send(typeof frame === "string" || frame instanceof Uint8Array ? frame : encodeFrame(frame, this.format));
    return true;
  }
  roomsChanged() {
  }
  close(code = 1e3, reason = "client closed") {
    this.closedByUs = true;
    try {
      this.socket?.close(code, reason);
    } catch {
      this.socket?.close();
    }
  }
};
function messageBytes(data) {
  if (typeof data === "string") return encodedSize(data);
  if (data instanceof ArrayBuffer) return data.byteLength;
  if (ArrayBuffer.isView(data)) return data.byteLength;
  return 0;
}

// src/types.ts
var BridgeError = class extends Error {
  constructor(code, message, ref = null) {
    super(`${code}: ${message}`);
    __publicField(this, "code");
    __publicField(this, "ref");
    this.name = "BridgeError";
    this.code = code;
    this.ref = ref;
  }
};

// src/client.ts
var CloseCodes = {
  Normal: 1e3,
  ServiceRestart: 1012,
  TokenExpired: 4001,
  Forbidden: 4003,
  SlowConsumer: 4008,
  TooManyConnections: 4029,
  /** Sent by this client when an ack is overdue: it treats the connection as dead. */
  AckTimeout: 4e3
};
var NAME_TOKEN = /^[A-Za-z0-9_-]+$/;
var RESERVED_PREFIXES = ["room.", "auth.", "presence.", "server.", "bridge."];
var RESERVED_NAMES = ["welcome", "ack", "error"];
var MAX_BATCH_ENTRIES = 1e3;
var BATCH_FRAME_OVERHEAD = 96;
var RETRYABLE_JOIN_ERRORS = ["unavailable", "rate_limited"];
var MAX_JOIN_ATTEMPTS = 5;
var FALLBACK_JOINS_PER_INTERVAL = 20;
var FALLBACK_INTERVAL_MS = 1e3;
var MAX_RATE_LIMITED_REFUSALS = 20;
function isDotted(name, maxLength, maxTokens) {
  if (name.length < 1 || name.length > maxLength) return false;
  const tokens = name.split(".");
  return tokens.length <= maxTokens && tokens.every((t) => NAME_TOKEN.test(t));
}
function isValidRoom(room) {
  return typeof room === "string" && isDotted(room, 128, 16);
}
function isValidPattern(pattern) {
  if (typeof pattern !== "string" || pattern.length < 1 || pattern.length > 128 || !/[*>]/.test(pattern)) return false;
  const tokens = pattern.split(".");
  return tokens.length <= 16 && tokens.every((t, i) => t === "*" || t === ">" && i === tokens.length - 1 || NAME_TOKEN.test(t));
}
function overlaps(name, other) {
  const a = name.split(".");
  const b = other.split(".");
  for (let i = 0; ; i++) {
    if (i === a.length || i === b.length) return a.length === b.length;
    const x = a[i];
    const y = b[i];
    if (x === ">" || y === ">") return true;
    if (x !== "*" && y !== "*" && x !== y) return false;
  }
}
function isExactSeq(seq) {
  return typeof seq === "number" && Number.isSafeInteger(seq) && seq >= 0;
}
function isPublishableType(type) {
  return typeof type === "string" && isDotted(type, 64, 8) && !isReservedType(type);
}
function isReservedType(type) {
  const lower = type.toLowerCase();
  return RESERVED_NAMES.includes(lower) || RESERVED_PREFIXES.some((p) => lower.startsWith(p));
}
function typeRefusal(type) {
  if (typeof type !== "string" || !isDotted(type, 64, 8)) {
    return new BridgeError("invalid_type", "type must be 1-64 characters of dot-separated [A-Za-z0-9_-] tokens");
  }
  if (!isReservedType(type)) return void 0;
  const dot = type.indexOf(".");
  const hint = /[A-Z]/.test(dot < 0 ? type : type.slice(0, dot)) ? " (reserved types are matched ignoring case; gateway types are lowercase)" : "";
  return new BridgeError("unknown_type", `'${type}' is reserved for the gateway and not a client message type${hint}`);
}
var BridgeClient = class _BridgeClient {
  constructor(options) {
    __publicField(this, "baseUrl");
    __publicField(this, "format");
    __publicField(this, "batch");
    __publicField(this, "transports");
    __publicField(this, "WebSocketCtor");
    __publicField(this, "fetchFn");
    __publicField(this, "getToken");
    __publicField(this, "minDelayMs");
    __publicField(this, "maxDelayMs");
    __publicField(this, "maxQueue");
    __publicField(this, "ackTimeoutMs");
    __publicField(this, "openTimeoutMs");
    __publicField(this, "maxPublishAttempts");
    __publicField(this, "maxFrameBytes");
    __publicField(this, "syncLimit");
    __publicField(this, "pollRequestTimeoutMs");
    __publicField(this, "refreshBeforeExpiryMs");
    __publicField(this, "random");
    __publicField(this, "newId");
    __publicField(this, "currentToken");
    __publicField(this, "stateValue", "closed");
    __publicField(this, "transport");
    __publicField(this, "epoch", 0);
    __publicField(this, "attempt", 0);
    __publicField(this, "ready", false);
    __publicField(this, "userClosed", false);
    __publicField(this, "running", false);
    __publicField(this, "pumping", false);
    __publicField(this, "reconnectTimer");
    __publicField(this, "readyTimer");
    __publicField(this, "refreshTimer");
    __publicField(this, "welcomePayload");
    /** The current connection's `welcome` payload: undefined while disconnected and on long-poll (no `welcome`). */
    __publicField(this, "connectionWelcome");
    /** Paces sends within the current connection's worker's frame rate (its `welcome`); undefined without one. */
    __publicField(this, "pacer");
    /** Flushes again when the pacer has a token. */
    __publicField(this, "paceTimer");
    /** The last flush stopped at a send refused `rate_limited` while sends after it were unanswered: each answer flushes. */
    __publicField(this, "waitingForAnswers", false);
    __publicField(this, "firstOpen");
    __publicField(this, "rooms", /* @__PURE__ */ new Map());
    /** Batch joins sent on the current connection, by frame id (an error's `ref`). */
    __publicField(this, "batches", /* @__PURE__ */ new Map());
    /** Sends not yet acknowledged, in the order they were made. */
    __publicField(this, "outbox", /* @__PURE__ */ new Map());
    /** Rooms whose `join()` on the open connection waits for the end of the tick, to go out in batch frames together. */
    __publicField(this, "tickJoins", /* @__PURE__ */ new Set());
    __publicField(this, "leaves", /* @__PURE__ */ new Map());
    __publicField(this, "syncs", /* @__PURE__ */ new Map());
    __publicField(this, "handlers", /* @__PURE__ */ new Map());
    __publicField(this, "stateHandlers", /* @__PURE__ */ new Set());
    __publicField(this, "skippedHandlers", /* @__PURE__ */ new Set());
    if (!options || typeof options.url !== "string") throw new TypeError("options.url is required");
    this.baseUrl = options.url.replace(/\/+$/, "");
    this.format = options.format ?? "json";
    this.batch = options.batch ?? true;
    this.transports = options.transports ?? ["websocket", "sse", "poll"];
    this.WebSocketCtor = options.WebSocket ?? globalThis.WebSocket;
    const f = options.fetch ?? (globalThis.fetch ? globalThis.fetch.bind(globalThis) : void 0);
    this.fetchFn = f ?? (() => Promise.reject(new Error("no fetch available")));
    this.getToken = options.getToken;
    this.currentToken = options.token;
    this.minDelayMs = options.reconnect?.minDelayMs ?? 500;
    this.maxDelayMs = options.reconnect?.maxDelayMs ?? 2e4;
    this.maxQueue = options.maxQueue ?? 1e3;
    this.ackTimeoutMs = options.ackTimeoutMs ?? 2e4;
    this.openTimeoutMs = options.openTimeoutMs ?? 1e4;
    this.maxPublishAttempts = options.maxPublishAttempts ?? 5;
    this.maxFrameBytes = options.maxFrameBytes ?? 65536;
    this.syncLimit = options.syncLimit ?? 100;
    this.pollRequestTimeoutMs = options.pollRequestTimeoutMs ?? 35e3;
    this.refreshBeforeExpiryMs = options.refreshBeforeExpiryMs ?? 3e4;
    this.random = options.random ?? Math.random;
    this.newId = options.newId ?? randomId;
    if (this.format !== "json" && this.format !== "msgpack") throw new TypeError(`unknown format ${String(this.format)}`);
    if (!(this.minDelayMs > 0) || !(this.maxDelayMs >= this.minDelayMs)) {
      throw new RangeError("reconnect: need 0 < minDelayMs <= maxDelayMs");
    }
    if (!(this.maxQueue >= 1)) throw new RangeError("maxQueue must be at least 1");
    if (!(this.syncLimit >= 1 && this.syncLimit <= 100)) throw new RangeError("syncLimit must be 1-100");
    for (const t of this.transports) {
      if (t !== "websocket" && t !== "sse" && t !== "poll") throw new TypeError(`unknown transport ${String(t)}`);
    }
  }
  /** The current connection state. */
  get state() {
    return this.stateValue;
  }
  /** The transport of the open connection, if any. */
  get transportKind() {
    return this.stateValue === "open" ? this.transport?.kind : void 0;
  }
  /**
   * The last `welcome` payload (connectionId, serverId, heartbeatMs, protocol, user, and from workers that say them
   * maxFrameBytes and maxRoomsPerConnection, and on a WebSocket framesPerSecond and frameBurst, which sends are paced to).
   */
  get welcome() {
    return this.welcomePayload;
  }
  /** Sends waiting for an ack (queued or in flight). */
  get pending() {
    return this.outbox.size;
  }
  /** Rooms wanted, with the position each resumes from. */
  get positions() {
    return new Map([...this.rooms.values()].map((r) => [r.name, r.position]));
  }
  /**
   * Handlers by frame type: a room message type (`chat.message`), a control type (`welcome`, `room.joined`,
   * `room.state`, `ack`, `error`, `presence.update`...), a prefix (`presence.*`, `sensor.*`), or `*` for every room
   * message (after de-duplication). Returns a function that removes the handler.
   */
  on(type, handler) {
    let set = this.handlers.get(type);
    if (!set) this.handlers.set(type, set = /* @__PURE__ */ new Set());
    set.add(handler);
    return () => set.delete(handler);
  }
  /** Connection state changes. Returns a function that removes the handler. */
  onState(handler) {
    this.stateHandlers.add(handler);
    return () => this.stateHandlers.delete(handler);
  }
  /**
   * Messages from the server the client could not read and left out ({@link SkippedFrame}: the transport, the size of
   * the message that held it, its place in a batch array, the reason). The connection stays and the other envelopes
   * of the message are delivered; a worker never sends such a message, so this tells of a proxy or server bug, or of a
   * server newer than the client. Returns a function that removes the handler.
   */
  onSkipped(handler) {
    this.skippedHandlers.add(handler);
    return () => this.skippedHandlers.delete(handler);
  }
  /** Starts connecting; resolves on the first open connection, rejects if the client is closed first. */
  connect() {
    if (this.userClosed) return Promise.reject(new BridgeError("closed", "the client was closed"));
    if (!this.firstOpen) {
      let resolve;
      let reject;
      const promise = new Promise((res, rej) => (resolve = res, reject = rej));
      promise.catch(() => void 0);
      this.firstOpen = { promise, resolve, reject };
    }
    if (!this.running) {
      this.running = true;
      this.attempt = 0;
      this.setState("connecting", {});
      void this.connectOnce();
    }
    return this.firstOpen.promise;
  }
  /** Closes the connection for good: pending sends and joins reject with `closed`. */
  close() {
    if (this.userClosed) return;
    this.userClosed = true;
    this.shutdown({ code: CloseCodes.Normal, reason: "closed by the client" }, new BridgeError("closed", "the client was closed"));
  }
  /**
   * Joins a room or a room pattern (now, or when connected) and keeps it joined across reconnects, resuming from its
   * last seq (a pattern's position is a stream seq too). `since` resumes from a position the application kept (e.g. in
   * storage); `latest` sends each room's current value first; `maxRate` conflates ({@link JoinOptions}). Resolves
   * with `room.joined`. The joins of one tick on an open connection go out together in batch `room.join` frames
   * (protocol §4), each promise settled by its own room's answer; a join alone in its tick is a single join. A join
   * that shares rooms with one held (a room and a pattern matching it) rejects with
   * `overlapping_join`. Refused `unavailable` or `rate_limited`, it is tried again with backoff: 5 tries before it
   * rejects with that code; once resolved, the room is held and its rejoins are tried for as long as it is (each
   * refusal an `error` event naming it). Any other refusal rejects it, or ends a held room with that `error` event.
   */
  join(room, options = {}) {
    const pattern = isValidPattern(room);
    if (!pattern && !isValidRoom(room)) return Promise.reject(new BridgeError("invalid_room", `bad room name or pattern '${room}'`));
    if (options.since !== void 0 && !isExactSeq(options.since)) {
      return Promise.reject(new BridgeError("invalid_argument", "since must be an integer from 0 to 2^53 - 1 (Number.MAX_SAFE_INTEGER)"));
    }
    if (options.latest !== void 0 && typeof options.latest !== "boolean") {
      return Promise.reject(new BridgeError("invalid_argument", "latest must be true or false"));
    }
    const rate = options.maxRate;
    if (rate !== void 0 && !(typeof rate === "number" && Number.isFinite(rate) && rate > 0 && rate <= 1e3)) {
      return Promise.reject(new BridgeError("invalid_argument", "maxRate must be a number of messages per second above 0 and at most 1000"));
    }
    if (this.userClosed) return Promise.reject(new BridgeError("closed", "the client was closed"));
    let entry = this.rooms.get(room);
    const isNew = !entry;
    if (!entry) {
      const other = [...this.rooms.keys()].find((r) => overlaps(r, room));
      if (other !== void 0) {
        return Promise.reject(new BridgeError("overlapping_join", `'${room}' shares rooms with '${other}', joined already; join one of them`));
      }
      entry = {
        name: room,
        pattern,
        latest: options.latest === true,
        maxRate: rate,
        position: rate === void 0 ? options.since : void 0,
        conflatedSince: void 0,
        joined: false,
        joinId: void 0,
        batchId: void 0,
        joinAttempts: 0,
        held: false,
        unanswered: /* @__PURE__ */ new Set(),
        retryTimer: void 0,
        waiters: []
      };
      this.rooms.set(room, entry);
    }
    if (entry.joined) {
      return Promise.resolve({ room, seq: entry.position ?? 0, replayed: 0, truncated: false });
    }
    const result = new Promise((resolve, reject) => entry.waiters.push({ resolve, reject }));
    if (this.transport && this.stateValue === "open") {
      if (this.transport.twoWay) {
        if (!entry.joinId) this.joinThisTick(entry);
      } else if (isNew) {
        this.transport.roomsChanged();
      }
    }
    return result;
  }
  /** Leaves a room: no more of its messages are delivered, and it is not resumed on reconnect. */
  leave(room) {
    const entry = this.rooms.get(room);
    if (!entry) return Promise.resolve();
    this.rooms.delete(room);
    const unsent = this.tickJoins.delete(entry) && entry.unanswered.size === 0;
    _BridgeClient.resetJoin(entry);
    for (const w of entry.waiters) w.reject(new BridgeError("left", `left room '${room}' before it was joined`));
    this.checkReady();
    const t = this.transport;
    if (!t || this.stateValue !== "open") return Promise.resolve();
    if (!t.twoWay) {
      t.roomsChanged();
      return Promise.resolve();
    }
    if (unsent) return Promise.resolve();
    this.sendTickJoins();
    const id = this.newId();
    return new Promise((resolve) => {
      this.leaves.set(id, { room, resolve });
      if (!this.sendUnpaced(t, { type: "room.leave", room, id })) {
        this.leaves.delete(id);
        resolve();
      }
    });
  }
  /**
   * Publishes `payload` (any JSON value, or a Uint8Array for binary) to `room` as `type`. Resolves with the `ack`
   * once the message is stored. Offline, the send waits in a bounded queue; it is (re)sent in order after each
   * reconnect with the same id, so the server stores it once (protocol §9). The payload is encoded now: changing the
   * object afterwards changes nothing sent. A frame over `maxFrameBytes`, or over the current connection's worker's
   * smaller `maxFrameBytes` from `welcome`, rejects with `frame_too_big` and is never sent (the worker would close the
   * connection with 1009). The size checked is that of the encoding the transport sends (the publish frame in
   * `format` on a WebSocket, the JSON HTTP body on SSE and long-poll): at once when the transport and limit are
   * known, else (queued while disconnected or before the welcome) when it is due, the sends behind it going out as
   * usual.
   */
  send(type, room, payload, options = {}) {
    const refused = typeRefusal(type);
    if (refused) return Promise.reject(refused);
    if (!isValidRoom(room)) return Promise.reject(new BridgeError("invalid_room", `bad room name '${room}'`));
    if (this.userClosed) return Promise.reject(new BridgeError("closed", "the client was closed"));
    const id = options.id ?? this.newId();
    const existing = this.outbox.get(id);
    if (existing) {
      return Promise.reject(new BridgeError("duplicate_id", `a send with id '${id}' is already pending`));
    }
    if (this.outbox.size >= this.maxQueue) {
      return Promise.reject(new BridgeError("queue_full", `${this.maxQueue} sends are already waiting for their ack`));
    }
    const wire = encodeFrame({ type, room, id, payload }, this.format);
    const body = JSON.stringify(toJsonFrame({ type, id, payload }));
    const sizes = { wireBytes: encodedSize(wire), bodyBytes: encodedSize(body) };
    const tooBig = this.tooBig(sizes, id);
    if (tooBig) return Promise.reject(tooBig);
    return new Promise((resolve, reject) => {
      const p = {
        frame: { type, room, id },
        wire,
        body,
        ...sizes,
        resolve,
        reject,
        sentEpoch: -1,
        failures: 0,
        rateLimitedRefusals: 0,
        rateLimited: false,
        retryTimer: void 0,
        ackTimer: void 0
      };
      this.outbox.set(id, p);
      if (this.ready) this.flush();
    });
  }
  /** `room.sync` (WebSocket only): the room's last `limit` messages and position, as the `room.state` frame. */
  sync(room, limit = 1) {
    if (!isValidRoom(room)) return Promise.reject(new BridgeError("invalid_room", `bad room name '${room}'`));
    const t = this.transport;
    if (!t || !t.twoWay || this.stateValue !== "open") {
      return Promise.reject(new BridgeError("not_connected", "room.sync needs an open WebSocket"));
    }
    this.sendTickJoins();
    const id = this.newId();
    return new Promise((resolve, reject) => {
      this.syncs.set(id, { room, resolve, reject });
      this.sendUnpaced(t, { type: "room.sync", room, id, payload: { limit } });
    });
  }
  /**
   * Sends a raw frame on an open WebSocket (for frames without an ack, such as `presence.query`). Answers come to
   * `on(type)` handlers; refusals to `on('error')` with `ref` = the frame's id. False when not possible now.
   */
  sendFrame(frame) {
    const t = this.transport;
    if (!t || !t.twoWay || this.stateValue !== "open") return false;
    this.sendTickJoins();
    return this.sendUnpaced(t, frame);
  }
  // ---- connection life cycle -------------------------------------------------------------------------------
  async connectOnce() {
    const epoch = ++this.epoch;
    let last = {};
    for (const kind of this.transports) {
      if (this.userClosed || epoch !== this.epoch) return;
      const transport = this.createTransport(kind, epoch);
      if (!transport) continue;
      try {
        await transport.open();
      } catch (e) {
        transport.close();
        last = e instanceof OpenError ? e.info : { reason: String(e) };
        if (last.httpStatus === 401 || last.httpStatus === 403) {
          if (epoch === this.epoch) await this.onAuthRefused(last);
          return;
        }
        continue;
      }
      if (this.userClosed || epoch !== this.epoch) {
        transport.close();
        return;
      }
      this.transport = transport;
      this.onOpen(transport, epoch);
      return;
    }
    if (epoch === this.epoch) this.scheduleReconnect(last);
  }
  createTransport(kind, epoch) {
    const host = {
      frame: (env) => {
        if (epoch === this.epoch) this.onFrame(env);
      },
      skipped: (info) => {
        if (epoch !== this.epoch) return;
        const skipped = { transport: info.transport, bytes: info.bytes, reason: info.reason };
        if (info.index !== void 0) skipped.index = info.index;
        this.notify(this.skippedHandlers, skipped);
      },
      lost: (info) => {
        if (epoch === this.epoch) this.onLost(info);
      },
      rooms: () => [...this.rooms.values()].map((r) => ({
        room: r.name,
        position: r.position,
        latest: r.maxRate !== void 0 || r.latest && r.position === void 0,
        maxRate: r.maxRate
      })),
      advance: (room, seq) => {
        const entry = this.rooms.get(room);
        if (epoch === this.epoch && entry) _BridgeClient.advance(entry, seq);
      },
      token: () => this.currentToken,
      fetch: this.fetchFn,
      baseUrl: this.baseUrl,
      openTimeoutMs: this.openTimeoutMs
    };
    switch (kind) {
      case "websocket":
        return this.WebSocketCtor ? new WebSocketTransport(host, this.WebSocketCtor, this.format, this.batch) : void 0;
      case "sse":
        return new SseTransport(host);
      case "poll":
        return new PollTransport(host, this.pollRequestTimeoutMs);
    }
  }
  onOpen(transport, epoch) {
    this.ready = false;
    for (const r of this.rooms.values()) {
      r.joined = false;
      r.joinAttempts = 0;
      _BridgeClient.resetJoin(r);
    }
    this.setState("open", { transport: transport.kind });
    this.firstOpen?.resolve();
    this.scheduleRefresh();
    if (transport.twoWay && this.rooms.size > 0) this.sendBatchJoins([...this.rooms.values()]);
    this.readyTimer = setTimeout(() => {
      if (epoch === this.epoch) this.markReady();
    }, this.openTimeoutMs);
    this.checkReady();
  }
  checkReady() {
    if (this.ready || this.stateValue !== "open") return;
    for (const r of this.rooms.values()) {
      if (!r.joined && r.position === void 0) return;
    }
    this.markReady();
  }
  markReady() {
    if (this.ready) return;
    clearTimeout(this.readyTimer);
    this.ready = true;
    this.attempt = 0;
    this.flush();
  }
  onLost(info) {
    this.dropTransport(info.code === CloseCodes.AckTimeout ? CloseCodes.AckTimeout : CloseCodes.Normal);
    if (this.userClosed) return;
    const code = info.code;
    if (code === CloseCodes.TokenExpired || code === CloseCodes.Forbidden || info.httpStatus === 401 || info.httpStatus === 403) {
      void this.onAuthRefused(info);
      return;
    }
    if (code === CloseCodes.ServiceRestart) {
      this.attempt = 0;
      this.scheduleReconnect(info, reconnectAfterMs(info.reason) ?? backoffDelay(0, this.minDelayMs, this.maxDelayMs, this.random));
      return;
    }
    this.scheduleReconnect(info);
  }
  /** Forgets the current transport; unacknowledged sends will be sent again on the next one. */
  dropTransport(code = CloseCodes.Normal) {
    this.epoch++;
    this.transport?.close(code);
    this.transport = void 0;
    this.ready = false;
    this.connectionWelcome = void 0;
    this.pacer = void 0;
    this.waitingForAnswers = false;
    clearTimeout(this.paceTimer);
    this.paceTimer = void 0;
    this.tickJoins.clear();
    clearTimeout(this.readyTimer);
    clearTimeout(this.refreshTimer);
    for (const r of this.rooms.values()) {
      r.joined = false;
      _BridgeClient.resetJoin(r);
    }
    for (const b of this.batches.values()) clearTimeout(b.againTimer);
    this.batches.clear();
    for (const l of this.leaves.values()) l.resolve();
    this.leaves.clear();
    for (const s of this.syncs.values()) s.reject(new BridgeError("disconnected", "the connection ended before room.state"));
    this.syncs.clear();
    for (const p of this.outbox.values()) {
      p.sentEpoch = -1;
      clearTimeout(p.ackTimer);
      p.ackTimer = void 0;
    }
  }
  scheduleReconnect(info, delayMs) {
    if (this.userClosed) return;
    const delay = delayMs ?? backoffDelay(this.attempt, this.minDelayMs, this.maxDelayMs, this.random);
    this.setState("reconnecting", { attempt: this.attempt, delayMs: delay, closeCode: info.code ?? info.httpStatus, reason: info.reason });
    this.attempt++;
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = void 0;
      void this.connectOnce();
    }, delay);
  }
  /** 4001/4003 or HTTP 401/403: only a new token from getToken justifies another attempt. */
  async onAuthRefused(info) {
    this.dropTransport();
    const epoch = this.epoch;
    let token;
    try {
      token = this.getToken ? await this.getToken() : void 0;
    } catch {
      token = void 0;
    }
    if (this.userClosed || epoch !== this.epoch) return;
    if (token && token !== this.currentToken) {
      this.currentToken = token;
      this.attempt = 0;
      this.scheduleReconnect(info, 0);
      return;
    }
    this.shutdown(info, new BridgeError("unauthorized", `the server refused the token (${info.code ?? info.httpStatus}) and no new one was given`));
  }
  shutdown(info, error) {
    this.running = false;
    clearTimeout(this.reconnectTimer);
    this.dropTransport();
    for (const p of this.outbox.values()) {
      clearTimeout(p.retryTimer);
      p.reject(error);
    }
    this.outbox.clear();
    for (const r of this.rooms.values()) {
      for (const w of r.waiters) w.reject(error);
      r.waiters = [];
    }
    if (this.userClosed) this.rooms.clear();
    this.firstOpen?.reject(error);
    this.firstOpen = void 0;
    this.setState("closed", { closeCode: info.code ?? info.httpStatus, reason: info.reason });
  }
  scheduleRefresh() {
    clearTimeout(this.refreshTimer);
    const exp = jwtExpiryMs(this.currentToken);
    if (exp === void 0 || !this.getToken) return;
    const epoch = this.epoch;
    const due = exp - this.refreshBeforeExpiryMs;
    const delay = Math.min(Math.max(0, due - Date.now()), 2147483647);
    this.refreshTimer = setTimeout(() => {
      if (epoch !== this.epoch) return;
      if (Date.now() < due) {
        this.scheduleRefresh();
        return;
      }
      void this.refreshToken(epoch);
    }, delay);
  }
  async refreshToken(epoch) {
    let token;
    try {
      token = await this.getToken();
    } catch {
      return;
    }
    if (epoch !== this.epoch || !token || token === this.currentToken) return;
    this.currentToken = token;
    this.sendFrame({ type: "auth.refresh", payload: { token } });
    this.scheduleRefresh();
  }
  // ---- frames ------------------------------------------------------------------------------------------
  onFrame(env) {
    switch (env.type) {
      case "welcome":
        this.welcomePayload = env.payload ?? {};
        this.connectionWelcome = this.welcomePayload;
        this.pacer = SendPacer.fromWelcome(this.welcomePayload);
        this.emit(env.type, env);
        return;
      case "room.joined":
        this.onJoined(env);
        return;
      case "room.left": {
        let asked = false;
        for (const [id, l] of this.leaves) {
          if (l.room === env.room) {
            this.leaves.delete(id);
            l.resolve();
            asked = true;
          }
        }
        const reason = env.payload?.reason;
        if (!asked && env.room !== void 0 && typeof reason === "string") this.removedByServer(env.room, reason);
        this.emit(env.type, env);
        return;
      }
      case "room.state":
        this.onRoomState(env);
        return;
      case "ack":
        this.onAck(env);
        return;
      case "error":
        this.onError(env);
        return;
    }
    if (env.room !== void 0 && typeof env.seq === "number") {
      const entry = this.entryOf(env.room);
      if (!entry) return;
      const positionless = entry.maxRate !== void 0 || !entry.joined && entry.latest && entry.position === void 0;
      if (!positionless && !_BridgeClient.advance(entry, env.seq)) return;
      if (entry.maxRate !== void 0 && entry.joined && !entry.pattern && isExactSeq(env.seq) && env.seq > (entry.conflatedSince ?? -1)) {
        entry.conflatedSince = env.seq;
      }
      this.emit(env.type, env);
      this.emit("*", env);
      return;
    }
    this.emit(env.type, env);
  }
  /** The join a message of `room` belongs to: the room itself, or the (one) pattern held that matches it. */
  entryOf(room) {
    const exact = this.rooms.get(room);
    if (exact) return exact;
    for (const entry of this.rooms.values()) {
      if (entry.pattern && overlaps(entry.name, room)) return entry;
    }
    return void 0;
  }
  onJoined(env) {
    const entry = env.room ? this.rooms.get(env.room) : void 0;
    if (!entry || typeof env.seq !== "number") return;
    const p = env.payload ?? {};
    if (p.truncated === true && isExactSeq(env.seq)) {
      entry.position = env.seq;
    } else {
      _BridgeClient.advance(entry, env.seq);
    }
    entry.joined = true;
    entry.held = true;
    _BridgeClient.resetJoin(entry);
    if (entry.maxRate !== void 0) {
      entry.position = void 0;
      if (isExactSeq(env.seq)) entry.conflatedSince = Math.max(entry.conflatedSince ?? 0, env.seq);
    }
    const result = { room: entry.name, seq: env.seq, replayed: p.replayed ?? 0, truncated: p.truncated === true };
    if (typeof p.latest === "number") result.latest = p.latest;
    for (const w of entry.waiters) w.resolve(result);
    entry.waiters = [];
    this.emit("room.joined", env);
    if (result.truncated && this.transport?.twoWay && !entry.pattern && entry.maxRate === void 0) {
      this.sync(entry.name, this.syncLimit).catch(() => void 0);
    }
    this.checkReady();
  }
  /** Moves a room's position forward to `seq` when it is exact and newer; false when it is not newer. */
  static advance(entry, seq) {
    if (!isExactSeq(seq)) return true;
    if (entry.position !== void 0 && seq <= entry.position) return false;
    entry.position = seq;
    return true;
  }
  onRoomState(env) {
    for (const [id, s] of this.syncs) {
      if (s.room === env.room) {
        this.syncs.delete(id);
        s.resolve(env);
        break;
      }
    }
    this.emit("room.state", env);
  }
  onAck(env) {
    const p = env.id ? this.outbox.get(env.id) : void 0;
    if (!p || typeof env.seq !== "number") return;
    this.outbox.delete(p.frame.id);
    clearTimeout(p.ackTimer);
    clearTimeout(p.retryTimer);
    const duplicate = (env.payload ?? {}).duplicate === true;
    p.resolve({ room: p.frame.room, id: p.frame.id, seq: env.seq, duplicate });
    if (this.waitingForAnswers) this.flush();
    this.emit("ack", env);
  }
  onError(env) {
    const e = env.payload ?? {};
    const code = e.code ?? "error";
    const message = e.message ?? "";
    const ref = e.ref ?? null;
    const room = typeof env.room === "string" ? env.room : void 0;
    if (ref !== null) {
      const p = this.outbox.get(ref);
      const batch = this.batches.get(ref);
      if (p) {
        this.onSendRefused(p, code, message);
      } else if (batch) {
        this.onBatchJoinError(batch, room, code, message);
      } else if (this.leaves.has(ref)) {
        this.leaves.get(ref).resolve();
        this.leaves.delete(ref);
      } else if (this.syncs.has(ref)) {
        this.syncs.get(ref).reject(new BridgeError(code, message, ref));
        this.syncs.delete(ref);
      } else {
        const named = room !== void 0 ? this.rooms.get(room) : void 0;
        const entry = named?.joinId === ref ? named : [...this.rooms.values()].find((r) => r.joinId === ref);
        if (entry) this.onJoinRefused(entry, ref, code, message);
      }
    }
    this.emit("error", env);
  }
  onSendRefused(p, code, message) {
    clearTimeout(p.ackTimer);
    p.ackTimer = void 0;
    if (code === "rate_limited" && ++p.rateLimitedRefusals < MAX_RATE_LIMITED_REFUSALS) {
      p.sentEpoch = -1;
      p.rateLimited = true;
      if (this.pacer) {
        this.pacer.drain();
      } else {
        clearTimeout(p.retryTimer);
        p.retryTimer = setTimeout(() => {
          p.retryTimer = void 0;
          this.flush();
        }, backoffDelay(p.rateLimitedRefusals, this.minDelayMs, this.maxDelayMs, this.random));
      }
      this.flush();
      return;
    }
    if (code === "publish_failed" && ++p.failures < this.maxPublishAttempts) {
      p.sentEpoch = -1;
      clearTimeout(p.retryTimer);
      p.retryTimer = setTimeout(() => {
        p.retryTimer = void 0;
        this.flush();
      }, backoffDelay(p.failures, this.minDelayMs, this.maxDelayMs, this.random));
      if (this.waitingForAnswers) this.flush();
      return;
    }
    this.outbox.delete(p.frame.id);
    clearTimeout(p.retryTimer);
    p.reject(new BridgeError(code, message, p.frame.id));
    if (this.waitingForAnswers) this.flush();
  }
  /**
   * An error whose `ref` is a batch join of this connection (protocol §4, §12). One that names a room of the batch is
   * that room's join error: the room ends, or for `unavailable` and `rate_limited` is tried again after a backoff (as
   * a single join's: {@link mayRetryJoin}) in one batch frame with the batch's other rooms refused so (not one frame each: a
   * NATS outage refuses them all); the batch's other rooms wait for their own answers. One that names no room (a
   * whole-frame error, or any error from a worker that names none) is answered once per batch: `rate_limited` tries
   * the batch's rooms not joined yet again the same way; `too_many_rooms` sends them in two halves (down to single
   * joins); anything else joins them one by one, paced within the worker's frame rate limit, so each later error
   * names its room through its own `ref`. Later room-less errors on the batch change nothing (an older worker's entry
   * that was still joining when its single join came, and then failed, is joined again on the next connection).
   */
  onBatchJoinError(batch, room, code, message) {
    if (room !== void 0) {
      const entry = this.rooms.get(room);
      if (entry?.batchId === batch.id && !batch.again.includes(entry)) {
        entry.unanswered.delete(batch.id);
        this.onBatchEntryRefused(batch, entry, code, message);
      }
      return;
    }
    if (batch.handled) return;
    batch.handled = true;
    const waiting = batch.entries.filter((r) => r.batchId === batch.id && this.rooms.get(r.name) === r);
    if (code === "rate_limited") {
      for (const entry of waiting) this.onBatchEntryRefused(batch, entry, code, message);
    } else if (code === "too_many_rooms") {
      const half = Math.ceil(waiting.length / 2);
      this.sendBatch(waiting.slice(0, half));
      this.sendBatch(waiting.slice(half));
    } else {
      this.paceJoins(waiting);
    }
  }
  /** A batch entry's refusal: `unavailable` and `rate_limited` join it again with the batch's others after a backoff. */
  onBatchEntryRefused(batch, entry, code, message) {
    if (!this.mayRetryJoin(entry, code)) {
      this.failJoin(entry, code, message);
      return;
    }
    batch.again.push(entry);
    if (batch.againTimer !== void 0) return;
    const epoch = this.epoch;
    batch.againTimer = setTimeout(() => {
      batch.againTimer = void 0;
      const again = batch.again.splice(0);
      if (epoch !== this.epoch) return;
      this.sendBatchJoins(again.filter((r) => r.batchId === batch.id && this.rooms.get(r.name) === r && !r.joined));
    }, backoffDelay(entry.joinAttempts, this.minDelayMs, this.maxDelayMs, this.random));
  }
  /**
   * Single joins of `entries`: {@link FALLBACK_JOINS_PER_INTERVAL} now and as many more every
   * {@link FALLBACK_INTERVAL_MS}, each sent if its room is still wanted and not joined on this connection.
   */
  paceJoins(entries) {
    entries.forEach((entry, i) => {
      const wait = Math.floor(i / FALLBACK_JOINS_PER_INTERVAL) * FALLBACK_INTERVAL_MS;
      if (wait === 0) this.sendJoin(entry);
      else this.joinLater(entry, wait);
    });
  }
  onJoinRefused(entry, ref, code, message) {
    entry.joinId = void 0;
    entry.unanswered.delete(ref);
    if (this.mayRetryJoin(entry, code)) {
      this.joinLater(entry, backoffDelay(entry.joinAttempts, this.minDelayMs, this.maxDelayMs, this.random));
      return;
    }
    this.failJoin(entry, code, message);
  }
  /**
   * Counts a refusal of `entry`'s join and says whether it is tried again: `unavailable` and `rate_limited` (the
   * frame was not acted on) always for a held room, on every connection; for a first join up to
   * {@link MAX_JOIN_ATTEMPTS} tries. The count is the exponent of the retry's backoff (capped at `maxDelayMs`).
   */
  mayRetryJoin(entry, code) {
    if (!RETRYABLE_JOIN_ERRORS.includes(code)) return false;
    return ++entry.joinAttempts < MAX_JOIN_ATTEMPTS || entry.held;
  }
  /**
   * Ends a room whose join was refused: it is no longer wanted, and its `join` promises reject with the error. When
   * another join of it on this connection is still unanswered (the worker may hold it), it is left.
   */
  failJoin(entry, code, message) {
    this.rooms.delete(entry.name);
    const mayBeHeld = entry.unanswered.size > 0;
    _BridgeClient.resetJoin(entry);
    for (const w of entry.waiters) w.reject(new BridgeError(code, message));
    entry.waiters = [];
    this.checkReady();
    if (mayBeHeld && this.transport?.twoWay && this.stateValue === "open") {
      this.sendUnpaced(this.transport, { type: "room.leave", room: entry.name, id: this.newId() });
    }
  }
  /** Sends `entry`'s single join after `delayMs`, if it is still wanted and not joined on this connection. */
  joinLater(entry, delayMs) {
    const epoch = this.epoch;
    clearTimeout(entry.retryTimer);
    entry.retryTimer = setTimeout(() => {
      entry.retryTimer = void 0;
      if (epoch === this.epoch && this.rooms.get(entry.name) === entry && !entry.joined) this.sendJoin(entry);
    }, delayMs);
  }
  /** Forgets the room's join in flight on the current connection and any retry waiting. */
  /**
   * A `room.left` nobody asked for: the worker removed the room (protocol §1.1: a refreshed token no longer grants it,
   * reason `forbidden`). It is no longer held: not joined again on a reconnect (the worker would refuse it), and a
   * join still waiting for its `room.joined` rejects with the reason.
   */
  removedByServer(room, reason) {
    const entry = this.rooms.get(room);
    if (!entry) return;
    const code = reason !== "" ? reason : "left";
    this.rooms.delete(room);
    this.tickJoins.delete(entry);
    _BridgeClient.resetJoin(entry);
    for (const w of entry.waiters) w.reject(new BridgeError(code, `the server removed room '${room}' (${code})`));
    entry.waiters = [];
    this.checkReady();
  }
  static resetJoin(entry) {
    entry.joinId = void 0;
    entry.unanswered.clear();
    entry.batchId = void 0;
    clearTimeout(entry.retryTimer);
    entry.retryTimer = void 0;
  }
  sendJoin(entry) {
    const id = this.newId();
    entry.joinId = id;
    entry.unanswered.add(id);
    clearTimeout(entry.retryTimer);
    entry.retryTimer = void 0;
    if (this.transport) this.sendUnpaced(this.transport, { type: "room.join", room: entry.name, id, payload: _BridgeClient.joinArgs(entry) });
  }
  /**
   * A join's arguments: a resume from the position; a join without one with `latest` if asked; a conflated join with
   * its rate, resuming from its last `room.joined` (or value, for a room) with `since` (protocol §4: each room's newest
   * message after it, so the values the application has do not come again), and before its first `room.joined` with
   * `latest` (its screen wants each room's current value, not a replay). Never both: `latest` would send every room's
   * value.
   */
  static joinArgs(entry) {
    if (entry.maxRate !== void 0) {
      return entry.conflatedSince !== void 0 ? { since: entry.conflatedSince, maxRate: entry.maxRate } : { latest: true, maxRate: entry.maxRate };
    }
    if (entry.position !== void 0) return { since: entry.position };
    return entry.latest ? { latest: true } : void 0;
  }
  /**
   * A limit the current connection's `welcome` says (a positive integer), or infinity when it says none (older workers
   * do not) or there is none (disconnected, long-poll).
   */
  welcomeLimit(name) {
    const v = this.connectionWelcome?.[name];
    return typeof v === "number" && Number.isSafeInteger(v) && v > 0 ? v : Number.POSITIVE_INFINITY;
  }
  /**
   * The largest frame the client sends: `maxFrameBytes`, or the worker's `maxFrameBytes` from the current connection's
   * `welcome` when smaller (a larger frame: the worker closes with 1009).
   */
  frameLimit() {
    return Math.min(this.maxFrameBytes, this.welcomeLimit("maxFrameBytes"));
  }
  /**
   * The `frame_too_big` error of a publish with `id` and these sizes, or undefined when it is within
   * {@link frameLimit}. The size is that of what the current transport sends (a WebSocket the frame, SSE and
   * long-poll the HTTP body); with no transport, the smaller: it is checked again when due.
   */
  tooBig(sizes, id) {
    const t = this.transport;
    const bytes = t ? t.twoWay ? sizes.wireBytes : sizes.bodyBytes : Math.min(sizes.wireBytes, sizes.bodyBytes);
    const limit = this.frameLimit();
    if (bytes <= limit) return void 0;
    const whose = limit < this.maxFrameBytes ? "the worker's maxFrameBytes" : "maxFrameBytes";
    return new BridgeError("frame_too_big", `frame of ${bytes} bytes is over ${whose} (${limit})`, id);
  }
  /**
   * The bounds of one batch frame on this connection: entries at most {@link MAX_BATCH_ENTRIES} and the worker's
   * `maxRoomsPerConnection` (from `welcome`), bytes at most {@link frameLimit}.
   */
  batchLimits() {
    return {
      entries: Math.min(MAX_BATCH_ENTRIES, this.welcomeLimit("maxRoomsPerConnection")),
      bytes: this.frameLimit()
    };
  }
  /**
   * Joins `entry` on the open connection. With a worker whose `welcome` says `maxFrameBytes` (one that names the room
   * on every batch join error, protocol §12): at the end of the tick (a microtask), in batch frames with the other
   * rooms whose `join()` came in the same tick (an application opening hundreds of rooms at once), as the rejoin of a
   * new connection: one frame per room would run into the worker's frame rate limit. A room alone goes in a single
   * join. With an older worker, a single join at once: its errors on a batch name no room, so a batch's joins could
   * not each be answered (a room retried singly and refused again would never settle its `join()`).
   */
  joinThisTick(entry) {
    if (this.welcomeLimit("maxFrameBytes") === Number.POSITIVE_INFINITY) {
      this.sendJoin(entry);
      return;
    }
    if (this.tickJoins.size === 0) queueMicrotask(() => this.sendTickJoins());
    this.tickJoins.add(entry);
  }
  /**
   * Sends the joins waiting for the end of their tick, now: at the end of the tick, and before any other frame, so
   * that frames go out in the order of the calls that made them (a `join()` then a `send()` to that room: the join
   * goes first). A room left, joined or joining meanwhile needs no join.
   */
  sendTickJoins() {
    if (this.tickJoins.size === 0) return;
    const entries = [...this.tickJoins].filter((r) => this.rooms.get(r.name) === r && !r.joined && !r.joinId);
    this.tickJoins.clear();
    this.sendBatchJoins(entries);
  }
  /** A batch entry: the room and the arguments its single join would send. */
  static batchEntry(entry) {
    return { room: entry.name, ..._BridgeClient.joinArgs(entry) };
  }
  /**
   * Joins `entries` in batch `room.join` frames (protocol §4, batch form: `payload.rooms: [{room, since | latest,
   * maxRate}]`): as many entries per frame as fit in {@link batchLimits}; a frame of one room is a single join.
   */
  sendBatchJoins(entries) {
    const limits = this.batchLimits();
    const budget = limits.bytes - BATCH_FRAME_OVERHEAD;
    let chunk = [];
    let size = 0;
    for (const entry of entries) {
      const bytes = encodedSize(JSON.stringify(_BridgeClient.batchEntry(entry))) + 1;
      if (chunk.length > 0 && (chunk.length >= limits.entries || size + bytes > budget)) {
        this.sendBatch(chunk);
        chunk = [];
        size = 0;
      }
      chunk.push(entry);
      size += bytes;
    }
    if (chunk.length > 0) this.sendBatch(chunk);
  }
  /**
   * One batch frame for `entries`, split in halves while its encoding (MessagePack numbers can take more bytes than
   * their JSON digits) is larger than the frame limit; recorded, so its errors find its rooms.
   */
  sendBatch(entries) {
    const t = this.transport;
    if (!t || entries.length === 0) return;
    if (entries.length === 1) {
      entries[0].batchId = void 0;
      this.sendJoin(entries[0]);
      return;
    }
    const id = this.newId();
    const frame = { type: "room.join", id, payload: { rooms: entries.map((r) => _BridgeClient.batchEntry(r)) } };
    if (encodedSize(encodeFrame(frame, this.format)) > this.batchLimits().bytes) {
      const half = Math.floor(entries.length / 2);
      this.sendBatch(entries.slice(0, half));
      this.sendBatch(entries.slice(half));
      return;
    }
    for (const entry of entries) {
      clearTimeout(entry.retryTimer);
      entry.retryTimer = void 0;
      entry.joinId = id;
      entry.batchId = id;
      entry.unanswered.add(id);
    }
    this.batches.set(id, { id, entries, handled: false, again: [], againTimer: void 0 });
    this.sendUnpaced(t, frame);
  }
  // ---- publishing --------------------------------------------------------------------------------------
  /**
   * Sends the unsent publishes, oldest first, over the open transport; first rejects those over {@link frameLimit}
   * (queued while disconnected or before this connection's `welcome` said the worker's limit) with `frame_too_big`.
   * Strictly in call order: the first send that cannot go now holds back every send after it, whether it waits for
   * its retry's backoff, for a token of the {@link pacer} (a timer flushes again then) or, refused `rate_limited`, for
   * the answers to the sends that went after it (the worker's empty bucket usually refuses those too: they go again
   * after it, in order; each answer flushes again).
   */
  flush() {
    this.waitingForAnswers = false;
    const t = this.transport;
    if (!t || !this.ready) return;
    for (const p of this.outbox.values()) {
      const tooBig = this.tooBig(p, p.frame.id);
      if (!tooBig) continue;
      this.outbox.delete(p.frame.id);
      clearTimeout(p.retryTimer);
      clearTimeout(p.ackTimer);
      p.reject(tooBig);
    }
    if (!t.twoWay) {
      void this.pumpHttp(t, this.epoch);
      return;
    }
    this.sendTickJoins();
    const epoch = this.epoch;
    const sends = [...this.outbox.values()];
    for (let i = 0; i < sends.length; i++) {
      const p = sends[i];
      if (p.sentEpoch === epoch) continue;
      if (p.retryTimer !== void 0) return;
      if (p.rateLimited && sends.some((q, j) => j > i && q.sentEpoch === epoch)) {
        this.waitingForAnswers = true;
        return;
      }
      if (this.pacer && !this.pacer.tryTake()) {
        this.paceLater(epoch);
        return;
      }
      if (!t.send(p.wire)) return;
      p.sentEpoch = epoch;
      p.rateLimited = false;
      p.ackTimer = setTimeout(() => {
        if (epoch !== this.epoch || !this.outbox.has(p.frame.id)) return;
        this.onLost({ code: CloseCodes.AckTimeout, reason: "ack timeout" });
      }, this.ackTimeoutMs);
    }
  }
  /**
   * Sends a frame that is not a paced send (joins, leaves, requests, raw frames): it goes now, and takes a token of the
   * {@link pacer} if there is one, so the paced sends after it leave it room. False when the transport refused it.
   */
  sendUnpaced(t, frame) {
    this.pacer?.debit();
    return t.send(frame);
  }
  /** Flushes again once the pacer has a token (one timer at a time). */
  paceLater(epoch) {
    if (this.paceTimer !== void 0 || !this.pacer) return;
    this.paceTimer = setTimeout(() => {
      this.paceTimer = void 0;
      if (epoch === this.epoch) this.flush();
    }, Math.max(1, this.pacer.msUntilNext()));
  }
  /**
   * One-way transports: `POST /api/rooms/{room}/messages`, one at a time so they are stored in order; one waiting for
   * its retry holds back the sends after it (its timer flushes, which starts the pump again).
   */
  async pumpHttp(t, epoch) {
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (epoch === this.epoch && this.ready) {
        const p = this.outbox.values().next().value;
        if (!p || p.retryTimer !== void 0) return;
        let res;
        const abort = new AbortController();
        const timer = setTimeout(() => abort.abort(), this.ackTimeoutMs);
        try {
          res = await this.fetchFn(`${this.baseUrl}/api/rooms/${encodeURIComponent(p.frame.room)}/messages`, {
            method: "POST",
            headers: { "Content-Type": "application/json", ...authHeaders(this.currentToken) },
            body: p.body,
            signal: abort.signal
          });
        } catch (e) {
          clearTimeout(timer);
          if (epoch === this.epoch && this.transport === t) this.onLost({ reason: `publish failed: ${e.message}` });
          return;
        }
        clearTimeout(timer);
        let body = {};
        try {
          body = await res.json();
        } catch {
        }
        if (!this.outbox.has(p.frame.id)) continue;
        if (res.ok && typeof body.seq === "number") {
          this.outbox.delete(p.frame.id);
          p.resolve({ room: p.frame.room, id: p.frame.id, seq: body.seq, duplicate: body.duplicate === true });
        } else if (res.status === 401 || res.status === 403) {
          if (epoch === this.epoch) this.onLost({ httpStatus: res.status, reason: body.message });
          return;
        } else if (res.status === 503 || res.status >= 500) {
          this.onSendRefused(p, "publish_failed", body.message ?? `HTTP ${res.status}`);
        } else {
          this.onSendRefused(p, body.code ?? `http_${res.status}`, body.message ?? `HTTP ${res.status}`);
        }
      }
    } finally {
      this.pumping = false;
    }
  }
  // ---- events ------------------------------------------------------------------------------------------
  emit(type, env) {
    this.emitTo(type, env);
    for (let dot = type.indexOf("."); dot > 0 && type !== "*"; dot = type.indexOf(".", dot + 1)) {
      this.emitTo(`${type.slice(0, dot)}.*`, env);
    }
  }
  emitTo(type, env) {
    const set = this.handlers.get(type);
    if (!set) return;
    for (const h of [...set]) {
      try {
        h(env);
      } catch (e) {
        setTimeout(() => {
          throw e;
        });
      }
    }
  }
  setState(state, extra) {
    const previous = this.stateValue;
    this.stateValue = state;
    this.notify(this.stateHandlers, { state, previous, ...extra });
  }
  /** Calls each handler with `value`; one that throws does not stop the others (its error is reported on its own). */
  notify(handlers, value) {
    for (const h of [...handlers]) {
      try {
        h(value);
      } catch (e) {
        setTimeout(() => {
          throw e;
        });
      }
    }
  }
};
export {
  BatchSubprotocols,
  BridgeClient,
  BridgeError,
  CloseCodes,
  Subprotocols,
  backoffDelay,
  isExactSeq,
  isPublishableType,
  isValidPattern,
  isValidRoom,
  overlaps,
  reconnectAfterMs
};

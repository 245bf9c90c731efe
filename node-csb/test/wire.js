// The two wire formats the CodeSandbox agent ("pitcher") speaks, as small as the fake API needs:
// a WebSocket server side (RFC 6455: handshake, unmasking, binary/text/close/ping frames) and
// MessagePack (the subset the SDK's pitcher messages use: maps, arrays, strings, numbers, bools,
// nil, binary). The SDK bundles `ws` and `@msgpack/msgpack` without exporting them, so the fake
// carries its own; a mistake here shows up as the real SDK failing to join.
import { createHash } from "node:crypto";

const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/** Accept an HTTP upgrade on ``socket``; returns {send(buffer), close(), onMessage(fn), onClose(fn)}. */
export function acceptWebSocket(req, socket) {
  const accept = createHash("sha1").update(req.headers["sec-websocket-key"] + GUID).digest("base64");
  // no Sec-WebSocket-Extensions in the answer: permessage-deflate is declined, frames stay plain
  socket.write("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
    `Sec-WebSocket-Accept: ${accept}\r\n\r\n`);
  socket.setNoDelay(true);
  const handlers = { message: () => {}, close: () => {} };
  let pending = Buffer.alloc(0);
  let closed = false;
  const frame = (opcode, payload) => {
    const len = payload.length;
    const head = len < 126 ? Buffer.from([0x80 | opcode, len])
      : len < 65536 ? Buffer.from([0x80 | opcode, 126, len >> 8, len & 255])
        : Buffer.concat([Buffer.from([0x80 | opcode, 127]), bigEndian64(len)]);
    if (!closed && !socket.destroyed) socket.write(Buffer.concat([head, payload]));
  };
  const finish = () => {
    if (closed) return;
    closed = true;
    handlers.close();
  };
  socket.on("data", (chunk) => {
    pending = Buffer.concat([pending, chunk]);
    for (;;) {
      const parsed = readFrame(pending);
      if (!parsed) break;
      pending = pending.subarray(parsed.size);
      if (parsed.opcode === 0x8) {
        frame(0x8, Buffer.alloc(0));
        socket.end();
        finish();
        return;
      }
      if (parsed.opcode === 0x9) frame(0xa, parsed.payload);
      else if (parsed.opcode === 0x1 || parsed.opcode === 0x2) handlers.message(parsed.payload, parsed.opcode === 0x1);
    }
  });
  socket.on("close", finish);
  socket.on("error", finish);
  return {
    send: (payload) => frame(0x2, Buffer.from(payload)),
    close: () => {
      frame(0x8, Buffer.from([0x03, 0xe8]));
      socket.destroy();
      finish();
    },
    onMessage: (fn) => { handlers.message = fn; },
    onClose: (fn) => { handlers.close = fn; },
  };
}

function bigEndian64(n) {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(n));
  return b;
}

function readFrame(buf) {
  if (buf.length < 2) return null;
  const opcode = buf[0] & 0x0f;
  const masked = Boolean(buf[1] & 0x80);
  let len = buf[1] & 0x7f;
  let offset = 2;
  if (len === 126) {
    if (buf.length < 4) return null;
    len = buf.readUInt16BE(2);
    offset = 4;
  } else if (len === 127) {
    if (buf.length < 10) return null;
    len = Number(buf.readBigUInt64BE(2));
    offset = 10;
  }
  const maskAt = offset;
  if (masked) offset += 4;
  if (buf.length < offset + len) return null;
  const payload = Buffer.from(buf.subarray(offset, offset + len));
  if (masked) for (let i = 0; i < len; i++) payload[i] ^= buf[maskAt + (i % 4)];
  return { opcode, payload, size: offset + len };
}

// --- MessagePack ---------------------------------------------------------------------------------
export function encode(value) {
  const parts = [];
  const put = (v) => {
    if (v === null || v === undefined) parts.push(Buffer.from([0xc0]));
    else if (v === false || v === true) parts.push(Buffer.from([v ? 0xc3 : 0xc2]));
    else if (typeof v === "number" && Number.isInteger(v) && v >= 0 && v < 2 ** 32) {
      if (v < 128) parts.push(Buffer.from([v]));
      else { const b = Buffer.alloc(5); b[0] = 0xce; b.writeUInt32BE(v, 1); parts.push(b); }
    } else if (typeof v === "number" && Number.isInteger(v) && v < 0 && v >= -(2 ** 31)) {
      const b = Buffer.alloc(5); b[0] = 0xd2; b.writeInt32BE(v, 1); parts.push(b);
    } else if (typeof v === "number") {
      const b = Buffer.alloc(9); b[0] = 0xcb; b.writeDoubleBE(v, 1); parts.push(b);
    } else if (typeof v === "string") {
      const s = Buffer.from(v, "utf8");
      const head = Buffer.alloc(5); head[0] = 0xdb; head.writeUInt32BE(s.length, 1);
      parts.push(head, s);
    } else if (Buffer.isBuffer(v) || v instanceof Uint8Array) {
      const head = Buffer.alloc(5); head[0] = 0xc6; head.writeUInt32BE(v.length, 1);
      parts.push(head, Buffer.from(v));
    } else if (Array.isArray(v)) {
      const head = Buffer.alloc(5); head[0] = 0xdd; head.writeUInt32BE(v.length, 1);
      parts.push(head);
      v.forEach(put);
    } else if (typeof v === "object") {
      const entries = Object.entries(v).filter(([, x]) => x !== undefined);
      const head = Buffer.alloc(5); head[0] = 0xdf; head.writeUInt32BE(entries.length, 1);
      parts.push(head);
      for (const [k, x] of entries) { put(k); put(x); }
    } else {
      throw new TypeError(`cannot encode ${typeof v}`);
    }
  };
  put(value);
  return Buffer.concat(parts);
}

export function decode(buf) {
  let at = 0;
  const str = (n) => { const s = buf.toString("utf8", at, at + n); at += n; return s; };
  const bin = (n) => { const b = buf.subarray(at, at + n); at += n; return b; };
  const arr = (n) => Array.from({ length: n }, () => read());
  const map = (n) => { const o = {}; for (let i = 0; i < n; i++) { const k = read(); o[k] = read(); } return o; };
  const read = () => {
    const t = buf[at++];
    if (t <= 0x7f) return t;
    if (t >= 0xe0) return t - 256;
    if ((t & 0xf0) === 0x80) return map(t & 0x0f);
    if ((t & 0xf0) === 0x90) return arr(t & 0x0f);
    if ((t & 0xe0) === 0xa0) return str(t & 0x1f);
    const u = (n) => { const v = buf.readUIntBE(at, n); at += n; return v; };
    const i = (n) => { const v = buf.readIntBE(at, n); at += n; return v; };
    switch (t) {
      case 0xc0: return null;
      case 0xc2: return false;
      case 0xc3: return true;
      case 0xc4: return bin(u(1));
      case 0xc5: return bin(u(2));
      case 0xc6: return bin(u(4));
      case 0xca: { const v = buf.readFloatBE(at); at += 4; return v; }
      case 0xcb: { const v = buf.readDoubleBE(at); at += 8; return v; }
      case 0xcc: return u(1);
      case 0xcd: return u(2);
      case 0xce: return u(4);
      case 0xcf: { const v = Number(buf.readBigUInt64BE(at)); at += 8; return v; }
      case 0xd0: return i(1);
      case 0xd1: return i(2);
      case 0xd2: return i(4);
      case 0xd3: { const v = Number(buf.readBigInt64BE(at)); at += 8; return v; }
      case 0xd9: return str(u(1));
      case 0xda: return str(u(2));
      case 0xdb: return str(u(4));
      case 0xdc: return arr(u(2));
      case 0xdd: return arr(u(4));
      case 0xde: return map(u(2));
      case 0xdf: return map(u(4));
      default: throw new Error(`msgpack type 0x${t.toString(16)} is not supported by the fake`);
    }
  };
  return read();
}

// A message many sockets get, framed for WebSocket once. A server's frames are never masked,
// so the bytes on the wire are the same for every client: written as they are, they skip the
// per-socket framing (a header buffer, a two-part corked write) that would repeat per client.

export interface SharedFrame {
  /** The message (what a client counts and acknowledges). */
  readonly payload: Buffer;
  /** The whole WebSocket frame: FIN, binary, unmasked length, payload. */
  readonly wire: Buffer;
}

export function sharedFrame(payload: Buffer): SharedFrame {
  const n = payload.length;
  const head = n < 126 ? 2 : n < 0x10000 ? 4 : 10;
  const wire = Buffer.allocUnsafe(head + n);
  wire[0] = 0x82;
  if (n < 126) {
    wire[1] = n;
  } else if (n < 0x10000) {
    wire[1] = 126;
    wire.writeUInt16BE(n, 2);
  } else {
    wire[1] = 127;
    wire.writeUInt32BE(Math.floor(n / 2 ** 32), 2);
    wire.writeUInt32BE(n >>> 0, 6);
  }
  payload.copy(wire, head);
  return { payload, wire };
}

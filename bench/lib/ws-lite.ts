// A WebSocket client cut down to what a load generator's reader needs: binary messages in, small
// binary messages out, over a plain TCP socket. Reads land in one buffer shared by every socket of
// the process (net's `onread`), so a message costs a read and a callback, not an allocation and
// an event: the generator must stay well below the server it measures. A message handed to
// `onMessage` is a view into that buffer, valid only during the call.
import { connect, type Socket } from 'node:net';

export interface WsLiteHandlers {
  onOpen(): void;
  /** One whole binary message; the bytes are only valid until this returns. */
  onMessage(data: Buffer): void;
  /** The connection is gone (closed by either side, refused, reset); called once, with the close code the server sent (0: none). */
  onClose(code: number): void;
}

// One read buffer for the whole process: callbacks run one at a time and consume it at once.
const READ_BUFFER = Buffer.allocUnsafe(256 << 10);

// A fixed handshake key (16 bytes, base64, as RFC 6455 requires): the server only echoes its
// hash back, and a generator on loopback has no use for checking it.
const KEY = Buffer.from('bench lean reads').toString('base64');

export class WsLite {
  private readonly socket: Socket;
  private opened = false;
  private closed = false;
  private code = 0;
  /** Bytes of an incomplete message (or handshake) carried over to the next read. */
  private carry: Buffer[] = [];
  private carried = 0;
  /** Bytes needed before parsing is worth trying again. */
  private need = 0;
  /** A fragmented message being put together (servers rarely fragment; tolerated). */
  private fragments: Buffer[] | undefined;

  constructor(url: string, private readonly h: WsLiteHandlers) {
    const u = new URL(url);
    if (u.protocol !== 'ws:') throw new Error(`ws-lite speaks ws:// only, not ${url}`);
    this.socket = connect({
      host: u.hostname, port: Number(u.port || 80), noDelay: true,
      onread: { buffer: READ_BUFFER, callback: (n: number, buf: Uint8Array) => { this.onRead(buf as Buffer, n); return true; } },
    });
    this.socket.on('connect', () => {
      this.socket.write(`GET ${u.pathname || '/'} HTTP/1.1\r\nHost: ${u.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
    });
    this.socket.on('error', () => {});
    this.socket.on('close', () => this.gone());
  }

  get isOpen(): boolean { return this.opened && !this.closed; }

  /** Sends one binary message, masked with a zero key (clients must mask; any key will do). */
  send(payload: Buffer): void {
    if (!this.isOpen) return;
    const n = payload.length;
    const head = Buffer.allocUnsafe(n < 126 ? 6 : n < 0x10000 ? 8 : 14);
    head[0] = 0x82;
    let o = 2;
    if (n < 126) head[1] = 0x80 | n;
    else if (n < 0x10000) { head[1] = 0x80 | 126; head.writeUInt16BE(n, 2); o = 4; }
    else { head[1] = 0x80 | 127; head.writeUInt32BE(Math.floor(n / 2 ** 32), 2); head.writeUInt32BE(n >>> 0, 6); o = 10; }
    head.writeUInt32BE(0, o);
    this.socket.write(Buffer.concat([head, payload]));
  }

  /** Drops the connection at once (no closing handshake), as a crashed agent would. */
  destroy(): void {
    this.socket.destroy();
    this.gone();
  }

  private gone(): void {
    if (this.closed) return;
    this.closed = true;
    this.h.onClose(this.code);
  }

  private onRead(buf: Buffer, n: number): void {
    if (this.closed) return;
    let data = buf.subarray(0, n);
    if (this.carried > 0) {
      this.carry.push(Buffer.from(data));
      this.carried += n;
      if (this.carried < this.need) return;
      data = Buffer.concat(this.carry, this.carried);
      this.carry = [];
      this.carried = 0;
    }
    let off = 0;
    if (!this.opened) {
      const end = data.indexOf('\r\n\r\n');
      if (end < 0) return this.keep(data, 0, data.length + 1);
      if (!data.subarray(0, 16).toString('latin1').startsWith('HTTP/1.1 101')) {
        this.socket.destroy();
        return;
      }
      this.opened = true;
      off = end + 4;
      this.h.onOpen();
    }
    while (off < data.length && !this.closed) {
      const avail = data.length - off;
      if (avail < 2) return this.keep(data, off, 2);
      const b0 = data[off]!;
      const b1 = data[off + 1]!;
      let len = b1 & 0x7f;
      let head = 2;
      if (len === 126) {
        if (avail < 4) return this.keep(data, off, 4);
        len = data.readUInt16BE(off + 2);
        head = 4;
      } else if (len === 127) {
        if (avail < 10) return this.keep(data, off, 10);
        len = data.readUInt32BE(off + 2) * 2 ** 32 + data.readUInt32BE(off + 6);
        head = 10;
      }
      if (b1 & 0x80) head += 4; // a server must not mask; skipped rather than refused
      if (avail < head + len) return this.keep(data, off, head + len);
      this.frame(b0, data.subarray(off + head, off + head + len));
      off += head + len;
    }
  }

  /** Keeps data[off..] for the next read; `need` bytes of it make the next parse worthwhile. */
  private keep(data: Buffer, off: number, need: number): void {
    // A copy: `data` may be the shared read buffer, overwritten by the next read of any socket.
    this.carry = [Buffer.from(data.subarray(off))];
    this.carried = data.length - off;
    this.need = need;
  }

  private frame(b0: number, payload: Buffer): void {
    const fin = (b0 & 0x80) !== 0;
    const opcode = b0 & 0x0f;
    switch (opcode) {
      case 0x2:
        if (fin) return this.h.onMessage(payload);
        this.fragments = [Buffer.from(payload)];
        return;
      case 0x0:
        if (!this.fragments) return;
        this.fragments.push(Buffer.from(payload));
        if (fin) {
          const whole = Buffer.concat(this.fragments);
          this.fragments = undefined;
          this.h.onMessage(whole);
        }
        return;
      case 0x8:
        // The server's close: answered with an empty close, then the socket goes.
        if (payload.length >= 2) this.code = payload.readUInt16BE(0);
        if (this.isOpen) this.socket.end(Buffer.from([0x88, 0x80, 0, 0, 0, 0]));
        this.gone();
        return;
      case 0x9: {
        const pong = Buffer.concat([Buffer.from([0x8a, 0x80 | payload.length, 0, 0, 0, 0]), payload]);
        if (this.isOpen) this.socket.write(pong);
        return;
      }
      default:
        return; // pong, text: nothing a reader of this protocol needs
    }
  }
}

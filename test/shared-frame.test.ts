// A frame framed once for many sockets is byte for byte what ws would put on the wire for it.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Sender } from 'ws';
import { sharedFrame } from '../server/shared-frame.js';

test('sharedFrame: the WebSocket frame ws builds for a binary message, at every length encoding', () => {
  for (const n of [0, 1, 125, 126, 127, 65_535, 65_536, 70_000, 1 << 20]) {
    const payload = Buffer.alloc(n, n % 251);
    const ws = Buffer.concat(Sender.frame(payload, { fin: true, opcode: 2, mask: false, readOnly: true, rsv1: false }) as Buffer[]);
    const f = sharedFrame(payload);
    assert.ok(f.wire.equals(ws), `length ${n}`);
    assert.equal(f.payload, payload);
  }
});

// A frame framed once for many sockets is byte for byte what ws would put on the wire for it.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as ws from 'ws';
import { sharedFrame } from '../server/shared-frame.js';

// ws's own framing (exported at run time, not in its type declarations).
const { Sender } = ws as unknown as { Sender: { frame(data: Buffer, o: object): Buffer[] } };

test('sharedFrame: the WebSocket frame ws builds for a binary message, at every length encoding', () => {
  for (const n of [0, 1, 125, 126, 127, 65_535, 65_536, 70_000, 1 << 20]) {
    const payload = Buffer.alloc(n, n % 251);
    const framed = Buffer.concat(Sender.frame(payload, { fin: true, opcode: 2, mask: false, readOnly: true, rsv1: false }));
    const f = sharedFrame(payload);
    assert.ok(f.wire.equals(framed), `length ${n}`);
    assert.equal(f.payload, payload);
  }
});

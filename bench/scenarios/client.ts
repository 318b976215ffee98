// client: the client library's own cost per update, in process, without sockets: delta frames as
// the server builds them (WorkloadEndpoint values, `perFrame` items each) fed to a SyncClient, set
// against the same updates as a raw msgpack array decoded the way the raw baseline's clients do.
// On one machine a client core saturates long before the server does, so this is what bounds
// every steady figure; `full` decodes each value as an agent would, `light` reads the stamp from
// the value bytes (as the harness's light clients do).
import { pack, unpack } from 'msgpackr';
import { SyncClient } from '../../client/index.js';
import { encodeValue } from '../../src/protocol/canonical.js';
import { encodeItem, itemsFrame } from '../../src/protocol/frames.js';
import { keyOf, stampOf, stampsIn, valueOf, type OnStamp } from '../lib/payload.js';

export interface ClientCostResult { perFrame: number; updates: number; nsPerUpdate: Record<'fanoutFull' | 'fanoutLight' | 'rawFull' | 'rawLight', number> }

/** Median of `repeat` timed passes over the same frames, in ns per update, per way of reading them. */
export function runClientCost(o: { perFrame: number; frames: number; keys: number; repeat: number }): ClientCostResult {
  const fanoutFrames: Buffer[] = [];
  const rawFrames: Buffer[] = [];
  for (let f = 0, seq = 1; f < o.frames; f++) {
    const items: Buffer[] = [];
    const raw: unknown[] = [];
    for (let j = 0; j < o.perFrame; j++, seq++) {
      const i = seq % o.keys;
      const v = valueOf(i, seq, seq);
      items.push(encodeItem(keyOf(i), encodeValue(v), String(seq)));
      raw.push({ k: keyOf(i), v });
    }
    fanoutFrames.push(itemsFrame({ t: 'delta', from: f * o.perFrame, to: (f + 1) * o.perFrame }, items));
    rawFrames.push(pack(raw));
  }
  let read = 0;
  const on: OnStamp = () => { read++; };
  // A fresh client per pass: replayed frames would otherwise change nothing in its cache.
  const fanout = (full: boolean) => () => {
    const c = new SyncClient({
      url: 'ws://127.0.0.1:1', syncerType: 'felix', keepValues: full,
      onUpdates: (us) => { for (const u of us) if (u.bytes) { if (full) stampOf(u.value, on); else stampsIn(u.bytes, on); } },
    });
    // The frame handler is private: this measures it without a socket, from a known position.
    const client = c as unknown as { pos: number; onFrame(b: Buffer): void };
    client.pos = 0;
    for (const f of fanoutFrames) client.onFrame(f);
  };
  const ways = {
    fanoutFull: fanout(true),
    fanoutLight: fanout(false),
    rawFull: () => { for (const f of rawFrames) for (const u of unpack(f) as { v: unknown }[]) stampOf(u.v, on); },
    rawLight: () => { for (const f of rawFrames) stampsIn(f, on); },
  };
  const updates = o.frames * o.perFrame;
  const nsPerUpdate = Object.fromEntries(Object.entries(ways).map(([name, run]) => {
    run(); // warm-up
    const ns: number[] = [];
    for (let r = 0; r < o.repeat; r++) {
      read = 0;
      const t = process.hrtime.bigint();
      run();
      ns.push(Number(process.hrtime.bigint() - t) / updates);
      // A way that skipped updates would look cheap.
      if (read !== updates) throw new Error(`${name} read ${read} of ${updates} updates`);
    }
    ns.sort((a, b) => a - b);
    return [name, Math.round(ns[Math.floor((ns.length - 1) / 2)]!)];
  })) as ClientCostResult['nsPerUpdate'];
  return { perFrame: o.perFrame, updates, nsPerUpdate };
}

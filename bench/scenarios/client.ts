// client: the client library's own cost per update, in process, without sockets: delta frames as
// the server builds them (WorkloadEndpoint values, `perFrame` items each) fed to a SyncClient, set
// against the same updates as the raw baseline's frames (a msgpack array of {k, v}) read by a
// minimal client that does the same work the library must: decode each frame, find each item's
// key and value, keep the latest per key in a Map, and hand every value to the agent.
// On one machine a client core saturates long before the server does, so this is what bounds
// every steady figure. `full` decodes each value as an agent would (the raw client keeps the
// decoded values, as the library does with keepValues); `light` reads the stamp from the value
// bytes (as the harness's light clients do; the raw client keeps each value's bytes, the library
// its hash). The raw baseline's previous form, which found stamps in the whole frame without
// finding items or keeping anything, is reported too (`rawFrameOnly*`) for comparison with older
// figures.
import { pack, unpack } from 'msgpackr';
import { SyncClient } from '../../client/index.js';
import { encodeValue } from '../../src/protocol/canonical.js';
import { encodeItem, itemsFrame } from '../../src/protocol/frames.js';
import { MsgReader } from '../../src/protocol/msgpack-raw.js';
import { keyOf, stampOf, stampsIn, valueOf, type OnStamp } from '../lib/payload.js';

type Way = 'fanoutFull' | 'fanoutLight' | 'rawFull' | 'rawLight' | 'rawFrameOnlyFull' | 'rawFrameOnlyLight';
export interface ClientCostResult {
  perFrame: number;
  updates: number;
  /** CPU time (user + system, all threads) per update, median of the passes. */
  nsPerUpdate: Record<Way, number>;
  /** fanout ÷ raw, per mode, from the medians above. */
  ratio: { full: number; light: number };
}

/**
 * Median of `repeat` passes over the same frames, in ns of CPU per update, per way of reading
 * them. Passes are interleaved (one of each way, then again) and timed in CPU time, so that a
 * machine shared with other work slows every way alike instead of whichever ran at the time.
 */
export function runClientCost(o: { perFrame: number; frames: number; keys: number; repeat: number; only?: Way[] }): ClientCostResult {
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
  // A fresh client (and map) per pass: replayed frames would otherwise change nothing in a cache.
  const fanout = (full: boolean) => () => {
    const c = new SyncClient({
      url: 'ws://127.0.0.1:1', syncerType: 'felix', keepValues: full,
      onUpdates: (us) => { for (const u of us) { if (full) stampOf(u.value, on); else stampsIn(u.bytes!, on); } },
    });
    // The frame handler is private: this measures it without a socket, from a known position.
    const client = c as unknown as { pos: number; onFrame(b: Buffer): void };
    client.pos = 0;
    for (const f of fanoutFrames) client.onFrame(f);
  };
  const ways: Record<Way, () => void> = {
    fanoutFull: fanout(true),
    fanoutLight: fanout(false),
    rawFull: () => {
      const cache = new Map<string, unknown>();
      for (const f of rawFrames) {
        for (const u of unpack(f) as { k: string; v: unknown }[]) {
          cache.set(u.k, u.v);
          stampOf(u.v, on);
        }
      }
    },
    rawLight: () => {
      const cache = new Map<string, Buffer>();
      for (const f of rawFrames) {
        const r = new MsgReader(f);
        for (let n = r.arrayLength(); n > 0; n--) {
          let key = '';
          let start = -1;
          let end = -1;
          for (let fields = r.mapLength(); fields > 0; fields--) {
            const name = r.str();
            if (name === 'k') key = r.str();
            else if (name === 'v') { start = r.pos; r.skip(); end = r.pos; } else r.skip();
          }
          const bytes = f.subarray(start, end);
          cache.set(key, bytes);
          stampsIn(bytes, on);
        }
      }
    },
    rawFrameOnlyFull: () => { for (const f of rawFrames) for (const u of unpack(f) as { v: unknown }[]) stampOf(u.v, on); },
    rawFrameOnlyLight: () => { for (const f of rawFrames) stampsIn(f, on); },
  };
  const chosen = (Object.keys(ways) as Way[]).filter((w) => !o.only || o.only.includes(w));
  const updates = o.frames * o.perFrame;
  const samples = new Map<Way, number[]>(chosen.map((w) => [w, []]));
  for (const w of chosen) ways[w](); // warm-up
  for (let r = 0; r < o.repeat; r++) {
    for (const w of chosen) {
      read = 0;
      const t = process.cpuUsage();
      ways[w]();
      const d = process.cpuUsage(t);
      samples.get(w)!.push(((d.user + d.system) * 1000) / updates);
      // A way that skipped updates would look cheap.
      if (read !== updates) throw new Error(`${w} read ${read} of ${updates} updates`);
    }
  }
  const nsPerUpdate = Object.fromEntries(chosen.map((w) => {
    const ns = samples.get(w)!.sort((a, b) => a - b);
    return [w, Math.round(ns[Math.floor((ns.length - 1) / 2)]!)];
  })) as ClientCostResult['nsPerUpdate'];
  const ratio = (a: number | undefined, b: number | undefined) => (a && b ? Math.round((100 * a) / b) / 100 : NaN);
  return {
    perFrame: o.perFrame, updates, nsPerUpdate,
    ratio: { full: ratio(nsPerUpdate.fanoutFull, nsPerUpdate.rawFull), light: ratio(nsPerUpdate.fanoutLight, nsPerUpdate.rawLight) },
  };
}

// client: the client library's own cost per update, in process, without sockets: delta frames as
// the server builds them (WorkloadEndpoint values, `perFrame` items each) fed to a SyncClient, set
// against the same updates as the raw baseline's frames (a msgpack array of {k, v}) read by a
// minimal client that does the same work the library must: decode each frame, find each item's
// key and value, keep the latest per key in a Map, and hand every value to the agent.
// On one machine a client core saturates long before the server does, so this is what bounds
// every steady figure. `full` decodes each value as an agent would (the raw client keeps the
// decoded values, as the library does with keepValues); `light` reads the stamp from the value
// bytes (as the harness's light clients do; the raw client keeps each value's bytes, the library
// its hash); `bare` is light with an agent that does nothing, so what is left is the library's own
// work. The raw baseline's previous form, which found stamps in the whole frame without finding
// items or keeping anything, is reported too (`rawFrameOnly*`) for comparison with older figures.
import { pack, unpack } from 'msgpackr';
import { SyncClient } from '../../client/index.js';
import { encodeValue } from '../../src/protocol/canonical.js';
import { encodeItem, itemsFrame } from '../../src/protocol/frames.js';
import { MsgReader } from '../../src/protocol/msgpack-raw.js';
import { keyOf, stampOf, stampsIn, valueOf, type OnStamp } from '../lib/payload.js';

export type Way = 'fanoutFull' | 'fanoutLight' | 'fanoutBare' | 'rawFull' | 'rawLight' | 'rawBare' | 'rawFrameOnlyFull' | 'rawFrameOnlyLight'
  | 'beforeFull' | 'beforeLight' | 'beforeBare';

/** The parts of a client library (this one, or another commit's) that the passes use. */
export interface ClientLibrary {
  SyncClient: new (o: { url: string; syncerType: 'felix'; keepValues: boolean; onUpdates: (us: { value: unknown; bytes: Buffer | null }[]) => void }) => unknown;
  encodeItem(key: string, value: Buffer | null, revision: string): Buffer;
  itemsFrame(head: { t: 'delta'; from: number; to: number }, items: readonly Buffer[]): Buffer;
}
export interface ClientCostResult {
  perFrame: number;
  updates: number;
  /** CPU time (user + system, all threads) per update, median of the passes. */
  nsPerUpdate: Partial<Record<Way, number>>;
  /** fanout ÷ raw, per mode, from the medians above. */
  ratio: { full: number; light: number; bare: number };
}

/**
 * Median of `repeat` passes over the same frames, in ns of CPU per update, per way of reading
 * them. Passes are interleaved (one of each way, then again) and timed in CPU time, so that a
 * machine shared with other work slows every way alike instead of whichever ran at the time.
 */
export function runClientCost(o: { perFrame: number; frames: number; keys: number; repeat: number; only?: Way[]; before?: ClientLibrary }): ClientCostResult {
  // Frames are made when a way first runs (its untimed warm-up), once per library: a profile of
  // one way then holds little else.
  const built = new Map<ClientLibrary | 'raw', Buffer[]>();
  const framesOf = (lib: ClientLibrary) => built.get(lib) ?? built.set(lib, Array.from({ length: o.frames }, (_, f) => lib.itemsFrame(
    { t: 'delta', from: f * o.perFrame, to: (f + 1) * o.perFrame },
    Array.from({ length: o.perFrame }, (_, j) => {
      const seq = f * o.perFrame + j + 1;
      const i = seq % o.keys;
      return lib.encodeItem(keyOf(i), encodeValue(valueOf(i, seq, seq)), String(seq));
    }),
  ))).get(lib)!;
  const rawFrames = () => built.get('raw') ?? built.set('raw', Array.from({ length: o.frames }, (_, f) => pack(Array.from({ length: o.perFrame }, (_, j) => {
    const seq = f * o.perFrame + j + 1;
    const i = seq % o.keys;
    return { k: keyOf(i), v: valueOf(i, seq, seq) };
  })))).get('raw')!;
  let read = 0;
  const on: OnStamp = () => { read++; };
  // A fresh client (and map) per pass: replayed frames would otherwise change nothing in a cache.
  const fanout = (lib: ClientLibrary, mode: 'full' | 'light' | 'bare') => {
    const onUpdates = {
      full: (us: { value: unknown }[]) => { for (const u of us) stampOf(u.value, on); },
      light: (us: { bytes: Buffer | null }[]) => { for (const u of us) stampsIn(u.bytes!, on); },
      bare: (us: unknown[]) => { read += us.length; },
    }[mode];
    return () => {
      const frames = framesOf(lib);
      const c = new lib.SyncClient({ url: 'ws://127.0.0.1:1', syncerType: 'felix', keepValues: mode === 'full', onUpdates });
      // The frame handler is private: this measures it without a socket, from a known position.
      const client = c as { pos: number; onFrame(b: Buffer): void };
      client.pos = 0;
      for (const f of frames) client.onFrame(f);
    };
  };
  const self: ClientLibrary = { SyncClient: SyncClient as unknown as ClientLibrary['SyncClient'], encodeItem, itemsFrame };
  const ways: Partial<Record<Way, () => void>> = {
    fanoutFull: fanout(self, 'full'),
    fanoutLight: fanout(self, 'light'),
    fanoutBare: fanout(self, 'bare'),
    rawFull: () => {
      const cache = new Map<string, unknown>();
      for (const f of rawFrames()) {
        for (const u of unpack(f) as { k: string; v: unknown }[]) {
          cache.set(u.k, u.v);
          stampOf(u.v, on);
        }
      }
    },
    rawLight: () => rawLight((bytes) => stampsIn(bytes, on)),
    rawBare: () => rawLight(() => { read++; }),
    rawFrameOnlyFull: () => { for (const f of rawFrames()) for (const u of unpack(f) as { v: unknown }[]) stampOf(u.v, on); },
    rawFrameOnlyLight: () => { for (const f of rawFrames()) stampsIn(f, on); },
  };
  /** The raw client in light mode: each item's key and value found in the frame, no value decoded. */
  function rawLight(agent: (bytes: Buffer) => void): void {
    const cache = new Map<string, Buffer>();
    for (const f of rawFrames()) {
      const r = new MsgReader(f);
      for (let n = r.arrayLength(); n > 0; n--) {
        let key = '';
        let start = -1;
        let end = -1;
        // Raw values are plain msgpack, not wrapped: finding where one ends means walking it.
        for (let fields = r.mapLength(); fields > 0; fields--) {
          const name = r.str();
          if (name === 'k') key = r.str();
          else if (name === 'v') { start = r.pos; r.skip(); end = r.pos; } else r.skip();
        }
        const bytes = f.subarray(start, end);
        cache.set(key, bytes);
        agent(bytes);
      }
    }
  }
  if (o.before) {
    ways.beforeFull = fanout(o.before, 'full');
    ways.beforeLight = fanout(o.before, 'light');
    ways.beforeBare = fanout(o.before, 'bare');
  }
  const chosen = (Object.keys(ways) as Way[]).filter((w) => !o.only || o.only.includes(w));
  const updates = o.frames * o.perFrame;
  const samples = new Map<Way, number[]>(chosen.map((w) => [w, []]));
  for (const w of chosen) ways[w]!(); // warm-up
  for (let r = 0; r < o.repeat; r++) {
    for (const w of chosen) {
      read = 0;
      const t = process.cpuUsage();
      ways[w]!();
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
    ratio: {
      full: ratio(nsPerUpdate.fanoutFull, nsPerUpdate.rawFull), light: ratio(nsPerUpdate.fanoutLight, nsPerUpdate.rawLight),
      bare: ratio(nsPerUpdate.fanoutBare, nsPerUpdate.rawBare),
    },
  };
}

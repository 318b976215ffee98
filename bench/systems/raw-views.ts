// The raw baseline's side of the protocol, for clients that say hello (lean readers, client
// libraries): as little as lets them follow their view. A welcome, the view as one snapshot,
// in-sync; then per tick one delta frame per view (and per node for a node's own items), the same
// Buffer to every client it fits; pings. A view's snapshot is built (and compressed, for clients
// that offer it) once per state and shared, or a thousand agents connecting would each cost a
// copy of it. No history, resume, dedupe, flow control, backpressure or checksums: what is left is
// the transport and the filtering, the ceiling calico-fanout is compared with.
import { randomBytes } from 'node:crypto';
import type { WebSocket } from 'ws';
import { DEFAULT_ALLOW_PROFILE, DEFAULT_ALLOW_PROFILE_KEY } from '../../src/datastore/default-allow.js';
import { parseKey } from '../../src/model/kinds.js';
import { servedPolicy } from '../../src/model/policy-name.js';
import { isCarried, isSyncerType, nodeOf, SYNCER_TYPES, VIEWS, viewsOfKind, type SyncerType } from '../../src/model/views.js';
import { packr, unpackr } from '../../src/protocol/codec.js';
import { compressLarge, negotiate, type Compression } from '../../src/protocol/compression.js';
import { chunkFrames, encodeItem, itemsFrame } from '../../src/protocol/frames.js';

export interface Hello { syncer: SyncerType; node: string; compression: readonly string[] }

interface Client { ws: WebSocket; node: string }

interface View {
  /** Items every client of the view gets, by key. */
  shared: Map<string, Buffer>;
  /** A node's own items (node-scoped kinds), by node, then key. */
  own: Map<string, Map<string, Buffer>>;
  clients: Set<Client>;
  /** Clients by node, for frames that carry a node's own items. */
  byNode: Map<string, Set<Client>>;
}

const CHUNK_BYTES = 256 << 10;
const PING_MS = 10_000;

export class RawViews {
  private readonly views = new Map<SyncerType, View>(SYNCER_TYPES.map((v) => [v, { shared: new Map(), own: new Map(), clients: new Set(), byNode: new Map() }]));
  /** The node each node-scoped key belongs to, so that its deletion finds it. */
  private readonly nodeOfKey = new Map<string, string>();
  private readonly epoch = randomBytes(8).toString('hex');
  private seq = 0;
  /** Shared views' snapshot frames, per view and compression, as of `seq` (a publish drops them). */
  private snapshots = new Map<string, Buffer[]>();
  private readonly pinger: NodeJS.Timeout;

  constructor() {
    // Served by every Calico datastore without being stored, so the views match calico-fanout's.
    this.publish([{ key: DEFAULT_ALLOW_PROFILE_KEY, value: DEFAULT_ALLOW_PROFILE }]);
    this.pinger = setInterval(() => {
      const ping = packr.pack({ t: 'ping', ts: Date.now() });
      for (const v of this.views.values()) for (const c of v.clients) c.ws.send(ping);
    }, PING_MS);
    this.pinger.unref();
  }

  get clients(): number { let n = 0; for (const v of this.views.values()) n += v.clients.size; return n; }

  /** A client's hello: welcome, its view's snapshot, in-sync. */
  join(ws: WebSocket, hello: Hello): void {
    const view = this.views.get(hello.syncer);
    if (!view) { ws.close(4005, 'unknown syncer'); return; }
    const scoped = VIEWS[hello.syncer].nodeScoped.size > 0;
    const c: Client = { ws, node: scoped ? hello.node : '' };
    const alg = negotiate(hello.compression);
    ws.send(packr.pack({ t: 'welcome', v: 1, serverId: 'raw', serverVersion: 'raw', epoch: this.epoch, syncer: hello.syncer, node: c.node, mode: 'snapshot', compression: alg }));
    for (const f of this.snapshot(view, hello.syncer, c.node, alg)) ws.send(f);
    ws.send(packr.pack({ t: 'status', status: 'in-sync' }));
    view.clients.add(c);
    if (c.node) { let s = view.byNode.get(c.node); if (!s) view.byNode.set(c.node, s = new Set()); s.add(c); }
    ws.on('close', () => { view.clients.delete(c); view.byNode.get(c.node)?.delete(c); });
  }

  private snapshot(view: View, name: SyncerType, node: string, alg: Compression | 'none'): Buffer[] {
    const id = `${name}/${alg}`;
    const own = view.own.get(node);
    // A node's own items make its snapshot its own (small: node-scoped views hold a few keys).
    if (!own?.size) { const hit = this.snapshots.get(id); if (hit) return hit; }
    const items = [...view.shared.values(), ...(own?.values() ?? [])];
    const seq = this.seq;
    const frames = [...chunkFrames(items, CHUNK_BYTES, (i, last) => ({ t: 'snapshot', seq, i, last }))].map((f) => compressLarge(f, alg));
    if (!own?.size) this.snapshots.set(id, frames);
    return frames;
  }

  /** Takes in a batch of datastore writes (in order; the last write of a key wins) and sends each view its delta. */
  publish(writes: readonly { key: string; value: unknown }[]): void {
    if (writes.length === 0) return;
    this.snapshots.clear();
    const from = this.seq;
    const shared = new Map<SyncerType, Map<string, Buffer>>();
    const own = new Map<SyncerType, Map<string, Map<string, Buffer>>>();
    for (const w of writes) {
      const seq = ++this.seq;
      const parsed = parseKey(w.key);
      if (!parsed) continue;
      const views = viewsOfKind(parsed.kind).filter(isSyncerType); // the agents' views (not the mirror)
      if (views.length === 0) continue;
      const carried = w.value !== null && isCarried(parsed.kind, w.value);
      // A policy by the name Calico serves it (the same values as calico-fanout's clients get).
      const served = carried ? servedPolicy(parsed.kind, w.value) : undefined;
      const item = encodeItem(w.key, served?.ok ? packr.pack(served.value) : null, String(seq));
      for (const name of views) {
        const view = this.views.get(name)!;
        if (!VIEWS[name].nodeScoped.has(parsed.kind)) {
          if (carried) view.shared.set(w.key, item); else view.shared.delete(w.key);
          let m = shared.get(name);
          if (!m) shared.set(name, m = new Map());
          m.set(w.key, item);
          continue;
        }
        const node = (carried ? nodeOf(parsed, w.value) : undefined) ?? this.nodeOfKey.get(w.key);
        if (node === undefined) continue;
        if (carried) this.nodeOfKey.set(w.key, node); else this.nodeOfKey.delete(w.key);
        let mine = view.own.get(node);
        if (!mine) view.own.set(node, mine = new Map());
        if (carried) mine.set(w.key, item); else mine.delete(w.key);
        let byNode = own.get(name);
        if (!byNode) own.set(name, byNode = new Map());
        let m = byNode.get(node);
        if (!m) byNode.set(node, m = new Map());
        m.set(w.key, item);
      }
    }
    const to = this.seq;
    for (const [name, view] of this.views) {
      if (view.clients.size === 0) continue;
      const common = [...(shared.get(name)?.values() ?? [])];
      const nodes = own.get(name);
      const commonFrame = common.length ? itemsFrame({ t: 'delta', from, to }, common) : undefined;
      if (commonFrame) {
        for (const c of view.clients) if (!nodes?.has(c.node)) c.ws.send(commonFrame);
      }
      if (!nodes) continue;
      for (const [node, items] of nodes) {
        const clients = view.byNode.get(node);
        if (!clients?.size) continue;
        const frame = itemsFrame({ t: 'delta', from, to }, [...common, ...items.values()]);
        for (const c of clients) c.ws.send(frame);
      }
    }
  }

  /** Every key a view serves and its value as served, decoded: what the probes must hold. */
  content(): [string, unknown][] {
    const out = new Map<string, unknown>();
    const add = (items: Map<string, Buffer>) => {
      for (const [key, item] of items) if (!out.has(key)) out.set(key, (unpackr.unpack(item) as [string, Uint8Array, string])[1]);
    };
    for (const v of this.views.values()) {
      add(v.shared);
      for (const m of v.own.values()) add(m);
    }
    return [...out].map(([k, bin]) => [k, unpackr.unpack(bin as Buffer)]);
  }

  stop(): void { clearInterval(this.pinger); }
}

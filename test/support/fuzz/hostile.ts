// A hostile server for the client library: a bare WebSocket server that answers each hello with
// a scripted session of frames (valid, odd or broken), then closes. Plus the generators of those
// sessions, each frame classified by what the client must do with it.
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { constants, createBrotliCompress, createDeflateRaw } from 'node:zlib';
import fc from 'fast-check';
import { WebSocketServer, type WebSocket } from 'ws';
import { checksumHex, entryHash } from '../../../src/protocol/checksum.js';
import { encode, packr } from '../../../src/protocol/codec.js';
import { compressFrame, decompressFrame } from '../../../src/protocol/compression.js';
import { encodeItem, itemsFrame, decodeServerFrame } from '../../../src/protocol/frames.js';
import { arrayHead, bigIntExt, binBytes, float64, itemArb, mutate, OPEN_BUGS, mutationsArb, packedAnything, randomBytes, rawMap, rawMessage, rawMsgpack, strBytes, valueBytesArb, type ItemSpec } from './gen.js';

/** One frame the hostile server sends, and what the client must make of it. */
export interface Outbound {
  data: Buffer;
  text?: boolean;
  /**
   * 'decode': the frame cannot be decoded at all (the client's own decoding pipeline throws);
   * 'semantic': it decodes but breaks the protocol where the client must notice. Either way the
   * client must drop the connection (a protocol error) and apply nothing of the frame.
   */
  fatal?: 'decode' | 'semantic';
  /** Keys only this frame carries: none of them may be in the cache after a fatal frame. */
  poison?: string[];
  what: string;
}

export interface Session {
  /** Frames after the hello; `designated` is the index of the frame under test (after a coherent prefix), if any. */
  frames: Outbound[];
  designated?: number;
  /** The server's close code after the last frame. */
  closeCode: number;
}

export interface SessionResult {
  session: Session;
  hello: Buffer;
  /** Close code the server saw: 1006 means the client dropped the connection itself. */
  code: number;
  /** Poison keys of the designated frame found in the client's cache when the session ended. */
  poisoned: string[];
}

export class HostileServer {
  private readonly wss: WebSocketServer;
  private queue: Session[] = [];
  private active = 0;
  private idleWaiters: (() => void)[] = [];
  readonly results: SessionResult[] = [];
  /** Connections that found no session (refused at once). */
  refused = 0;
  /** Looks poison keys up in the client under test, when a session ends. */
  probe: (key: string) => boolean = () => false;

  private constructor(wss: WebSocketServer) {
    this.wss = wss;
    wss.on('connection', (ws) => this.onConnection(ws));
  }

  static async start(): Promise<HostileServer> {
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false, maxPayload: 1 << 20 });
    await once(wss, 'listening');
    return new HostileServer(wss);
  }

  get url(): string { return `ws://127.0.0.1:${(this.wss.address() as AddressInfo).port}`; }
  get pending(): number { return this.queue.length; }
  /** Sessions being played now. */
  get playing(): number { return this.active; }

  load(sessions: Session[]): void {
    this.queue.push(...sessions);
  }

  /** Resolves when no session is being played (so the test can look at the client in between). */
  idle(): Promise<void> {
    if (this.active === 0) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  private onConnection(ws: WebSocket): void {
    ws.on('error', () => {});
    const session = this.queue.shift();
    if (!session) { this.refused++; ws.terminate(); return; }
    this.active++;
    let hello: Buffer | undefined;
    ws.once('message', (data: Buffer) => {
      hello = Buffer.from(data);
      // All of it in one write: the client reads the frames back to back, as from a busy server.
      const socket = (ws as unknown as { _socket: import('node:net').Socket })._socket;
      socket.cork();
      for (const f of session.frames) ws.send(f.data, { binary: !f.text });
      ws.close(session.closeCode);
      process.nextTick(() => socket.uncork());
      // A client that does not answer the close is not waited for.
      setTimeout(() => ws.terminate(), 3000).unref();
    });
    ws.once('close', (code) => {
      const d = session.designated === undefined ? undefined : session.frames[session.designated];
      const poisoned = d?.fatal && d.poison ? d.poison.filter((k) => this.probe(k)) : [];
      this.results.push({ session, hello: hello ?? Buffer.alloc(0), code, poisoned });
      this.active--;
      if (this.active === 0) for (const w of this.idleWaiters.splice(0)) w();
    });
  }

  async close(): Promise<void> {
    for (const ws of this.wss.clients) ws.terminate();
    await new Promise<void>((r) => this.wss.close(() => r()));
  }
}

/**
 * Item revisions: odd ones too ("1e21" once wedged the client: fuzz-regressions). Decimals stay
 * small: one newer than the good server's datastore costs a 2 s hold there (by design, bounded);
 * FUZZ_OPEN_BUGS=1 lets them through as well.
 */
const ODD_REVISIONS = ['1e21', 'Infinity', '1'.repeat(25), '0x2', '1e0', '-5', ' 3', '']; // ("0x2", "1e0", " 3" count as 2, 1, 3: small, no hold)
const hostileItem: fc.Arbitrary<ItemSpec> = fc.tuple(itemArb, fc.option(fc.constantFrom(...ODD_REVISIONS), { freq: 4 })).map(([i, odd]) => {
  if (odd !== null) return { ...i, revision: odd };
  return OPEN_BUGS || !/^[0-9]+$/.test(i.revision) ? i : { ...i, revision: String(i.revision.length % 4) };
});

// ---- classification ---------------------------------------------------------------------------

type Alg = 'brotli' | 'deflate' | 'none';
const CAP = 256 << 20;

/** What the client's decoding (sync-client.ts `onFrame`/`handle`, up to the message type) makes of a frame. */
export function decodeVerdict(data: Buffer, alg: Alg): 'decode' | 'semantic' | undefined {
  let f;
  try { f = decodeServerFrame(data); } catch { return 'decode'; }
  if (f.msg.t !== 'compressed') return undefined;
  if (alg === 'none' || !(f.msg.data instanceof Uint8Array)) return 'semantic';
  let inner;
  try { inner = decodeServerFrame(decompressFrame(f.msg.data, alg, CAP)); } catch { return 'decode'; }
  return inner.msg.t === 'compressed' ? 'semantic' : undefined;
}

// ---- decompression bombs ----------------------------------------------------------------------

const bombs = new Map<string, Buffer>();

/** `compressed {data}` holding `mb` MiB of zeros, compressed as a stream (no big buffer here). */
export async function bomb(alg: 'brotli' | 'deflate', mb = 300): Promise<Buffer> {
  const id = `${alg}:${mb}`;
  const have = bombs.get(id);
  if (have) return have;
  const z = alg === 'brotli' ? createBrotliCompress({ params: { [constants.BROTLI_PARAM_QUALITY]: 5 } }) : createDeflateRaw({ level: 9 });
  const out: Buffer[] = [];
  z.on('data', (b: Buffer) => out.push(b));
  const zeros = Buffer.alloc(1 << 20);
  for (let i = 0; i < mb; i++) if (!z.write(zeros)) await once(z, 'drain');
  z.end();
  await once(z, 'end');
  const frame = rawMap([['t', strBytes('compressed')], ['data', binBytes(Buffer.concat(out))]]);
  bombs.set(id, frame);
  return frame;
}

// ---- sessions -----------------------------------------------------------------------------------

export interface SessionCtx { epoch: string; seq: number; alg: Alg; tag: string }

let poisonCounter = 0;
const POISON_TAG = '/poison-';
const poisonItems = (ctx: SessionCtx, n: number): ItemSpec[] =>
  Array.from({ length: n }, () => ({ key: `/calico/resources/v3/projectcalico.org/networkpolicies${POISON_TAG}${ctx.tag}/${poisonCounter++}`, value: packr.pack({ kind: 'Poison' }), revision: '1' }));
const frameOf = (head: object, items: ItemSpec[]) => itemsFrame(head as never, items.map((i) => encodeItem(i.key, i.value, i.revision)));

const oddValue = fc.oneof(rawMsgpack.filter((b) => { try { packr.unpack(b); return true; } catch { return false; } }), fc.constantFrom(
  strBytes(''), strBytes('x'.repeat(300)), float64(NaN), float64(Infinity), float64(-1), float64(1.5), bigIntExt(7n), Buffer.from([0xc0]), Buffer.from([0xc3]),
  rawMap([['toString', Buffer.from([0x01])]]), rawMap([['valueOf', Buffer.from([0x01])]]), rawMap([['__proto__', rawMap([['epoch', strBytes('x')]])]]),
));

/** A frame that is `base` with each field either kept or replaced by an odd value. */
const oddFields = (base: Record<string, Buffer>): fc.Arbitrary<Buffer> => fc.tuple(
  ...Object.keys(base).map((k) => fc.oneof({ weight: 2, arbitrary: fc.constant(base[k]!) }, oddValue, fc.constant(undefined))),
).map((vals) => rawMap(Object.keys(base).flatMap((k, i) => (k === 't' ? [[k, base[k]!] as const] : vals[i] === undefined ? [] : [[k, vals[i]!] as const]))));

const num = (n: number) => (Number.isSafeInteger(n) && n >= 0 ? Buffer.from(packr.pack(n)) : float64(n));

/** Welcome frames: valid, or with odd fields. */
export const welcomeArb = (ctx: SessionCtx): fc.Arbitrary<Outbound> => fc.oneof(
  { weight: 3, arbitrary: fc.constant({ data: encode({ t: 'welcome', v: 1, serverId: 'hostile', serverVersion: '0', epoch: ctx.epoch, syncer: 'felix', node: '', mode: 'snapshot', compression: ctx.alg, window: 1 << 20 }), what: 'welcome' }) },
  oddFields({
    t: strBytes('welcome'), v: num(1), epoch: strBytes(ctx.epoch), mode: strBytes('snapshot'), compression: strBytes(ctx.alg), window: num(1 << 20),
    serverId: strBytes('hostile'), syncer: strBytes('felix'), node: strBytes(''),
  }).map((data) => ({ data, what: 'odd welcome' })),
  fc.constantFrom('resume', 'digest', 'x').map((mode) => ({ data: encode({ t: 'welcome', v: 1, serverId: 'h', serverVersion: '0', epoch: ctx.epoch, syncer: 'felix', node: '', mode: mode as 'resume', compression: ctx.alg }), what: `welcome mode ${mode}` })),
  fc.constant({ data: encode({ t: 'welcome', v: 1, serverId: 'h', serverVersion: '0', epoch: 'e'.repeat(300_000), syncer: 'felix', node: '', mode: 'snapshot', compression: ctx.alg }), what: 'welcome with a 300 KB epoch' }),
);

/** Everything a hostile server can send once a client is in sync at ctx.seq. */
export const hostileFrame = (ctx: SessionCtx, bombs: { brotli: Buffer; deflate: Buffer } | undefined): fc.Arbitrary<Outbound> => {
  const S = ctx.seq;
  const classify = (what: string) => (data: Buffer): Outbound => ({ data, what, fatal: decodeVerdict(data, ctx.alg) });
  const validItems = fc.array(hostileItem, { maxLength: 5 });
  const alg = ctx.alg === 'none' ? 'brotli' : ctx.alg;
  const arbs: fc.Arbitrary<Outbound>[] = [
    randomBytes.map(classify('random bytes')),
    rawMsgpack.map(classify('raw msgpack')),
    rawMessage.map(classify('raw message')),
    packedAnything.map(classify('msgpackr value')),
    // Valid frames of every kind, then mutated.
    fc.tuple(fc.oneof(
      fc.tuple(fc.constantFrom('snapshot', 'repair', 'delta'), validItems).map(([t, items]) => frameOf(t === 'delta' ? { t, from: S, to: S + 1 } : { t, seq: S + 1, i: 0, last: true, ...(t === 'repair' ? { buckets: 4, differ: Buffer.from([0, 0, 0, 1]) } : {}) }, items)),
      fc.constant(encode({ t: 'checksum', seq: S, value: '0123456789abcdef', count: 3 })),
      fc.constant(encode({ t: 'goaway', reason: 'x', retryAfterMs: 1, resume: { epoch: ctx.epoch, seq: S } })),
      fc.constant(encode({ t: 'status', status: 'in-sync' })),
      validItems.map((items) => compressFrame(frameOf({ t: 'snapshot', seq: S + 1, i: 0, last: true }, items), alg)),
    ), mutationsArb).map(([f, ms]) => classify('mutated frame')(mutate(f, ms))),
    // Items frames: broken items, items that claim huge counts.
    fc.tuple(fc.constantFrom('snapshot', 'delta'), validItems, fc.constantFrom(0xffffffff, 0x10000, 1 << 24)).map(([t, items, count]) => {
      const f = frameOf(t === 'delta' ? { t, from: S, to: S + 1 } : { t, seq: S + 1, i: 0, last: true }, []);
      return classify(`${t} claiming ${count} items`)(Buffer.concat([f.subarray(0, -1), arrayHead(count, 3), ...items.map((i) => encodeItem(i.key, i.value, i.revision))]));
    }),
    fc.tuple(validItems, rawMsgpack).map(([items, bad]) => classify('delta with a broken item')(Buffer.concat([frameOf({ t: 'delta', from: S, to: S + 1 }, []).subarray(0, -1), arrayHead(items.length + 1), ...items.map((i) => encodeItem(i.key, i.value, i.revision)), bad]))),
    // Protocol violations a decoder cannot see: the client must.
    fc.nat({ max: 3 }).map((k) => ({ data: frameOf({ t: 'delta', from: Math.max(0, S - 1 - k), to: S + 1 }, poisonItems(ctx, 2)), what: 'delta going backwards', fatal: 'semantic' as const })),
    fc.constantFrom('snapshot', 'repair').map((t) => ({ data: frameOf({ t, seq: S + 1, i: 2, last: true }, poisonItems(ctx, 2)), what: `${t} chunk 2 without chunk 0`, fatal: 'semantic' as const })),
    fc.constantFrom(strBytes('x'), float64(-4), float64(0.5), Buffer.from([0xc0])).map((b) => ({
      data: Buffer.concat([rawMap([['t', strBytes('repair')], ['seq', num(S + 1)], ['i', num(0)], ['last', Buffer.from([0xc3])], ['buckets', b], ['differ', binBytes(Buffer.alloc(4))], ['u', arrayHead(2)]]).subarray(0, -1), arrayHead(2), ...poisonItems(ctx, 2).map((i) => encodeItem(i.key, i.value, i.revision))]),
      what: 'repair with odd buckets', fatal: 'semantic' as const,
    })),
    fc.constantFrom(1, 2, 3, 5).map((n) => ({ data: frameOf({ t: 'repair', seq: S + 1, i: 0, last: true, buckets: 4, differ: Buffer.alloc(n) }, poisonItems(ctx, 1)), what: `repair with a ${n}-byte differ`, fatal: 'semantic' as const })),
    fc.constantFrom(strBytes('7'), float64(1.5), float64(-1), Buffer.from([0xc0])).map((b) => ({
      data: Buffer.concat([rawMap([['t', strBytes('snapshot')], ['seq', b], ['i', num(0)], ['last', Buffer.from([0xc3])], ['u', Buffer.from([0x90])]]).subarray(0, -1), arrayHead(1), encodeItem(poisonItems(ctx, 1)[0]!.key, packr.pack({}), '1')]),
      what: 'snapshot with an odd seq', fatal: 'semantic' as const,
    })),
    fc.constant({ data: encode({ t: 'checksum', seq: Math.max(0, S - 1), value: '0000000000000000', count: 0 }), what: 'checksum behind the position', fatal: S > 0 ? 'semantic' as const : undefined }),
    // Compressed frames: none negotiated, nested, garbage, not a bin, bombs.
    validItems.map((items) => {
      const inner = compressFrame(frameOf({ t: 'snapshot', seq: S + 1, i: 0, last: true }, [...poisonItems(ctx, 1), ...items]), alg);
      return { data: compressFrame(inner, alg), what: 'compressed inside compressed', fatal: 'semantic' as const };
    }),
    fc.uint8Array({ maxLength: 200 }).map((b) => classify('compressed garbage')(rawMap([['t', strBytes('compressed')], ['data', binBytes(Buffer.from(b))]]))),
    fc.constant(classify('compressed with a string')(rawMap([['t', strBytes('compressed')], ['data', strBytes('abc')]]))),
    // Control frames with odd fields: to be survived, not necessarily rejected.
    oddFields({ t: strBytes('status'), status: strBytes('in-sync') }).map((data) => ({ data, what: 'odd status' })),
    oddFields({ t: strBytes('ping'), ts: num(Date.now()) }).map((data) => ({ data, what: 'odd ping' })),
    oddFields({ t: strBytes('checksum'), seq: num(S), value: strBytes('0123456789abcdef'), count: num(1) }).map((data) => ({ data, what: 'odd checksum', fatal: decodeVerdict(data, ctx.alg) })),
    oddFields({ t: strBytes('error'), code: num(4001), message: strBytes('x') }).map((data) => ({ data, what: 'odd error' })),
    fc.string({ unit: 'binary', maxLength: 20 }).map((t) => ({ data: rawMap([['t', strBytes(t)]]), what: 'unknown type', fatal: decodeVerdict(rawMap([['t', strBytes(t)]]), ctx.alg) })),
    // A goaway: odd fields, a resume token from another epoch.
    fc.tuple(fc.constantFrom(0, 1, 5, -1), fc.oneof(oddValue, fc.constant(packr.pack({ epoch: `${ctx.epoch}-other`, seq: 'x' }))), fc.option(fc.array(fc.oneof(fc.constantFrom('ws://127.0.0.1:1', 'nonsense', 'ws://'), fc.string()), { maxLength: 3 })))
      .map(([retry, resume, peers]) => ({ data: rawMap([['t', strBytes('goaway')], ['reason', strBytes('x')], ['retryAfterMs', num(retry)], ['resume', resume], ...(peers ? [['peers', packr.pack(peers)] as [string, Buffer]] : [])]), what: 'odd goaway' })),
    fc.constant({ data: encode({ t: 'goaway', reason: 'x', retryAfterMs: 1, resume: { epoch: ctx.epoch, seq: S + 5 } }), what: 'goaway ahead' }),
    // Text frames (valid UTF-8, or not: the WebSocket layer closes with 1007).
    fc.oneof(fc.constant(encode({ t: 'status', status: 'in-sync' })), fc.string().map((s) => Buffer.from(s)), fc.uint8Array({ maxLength: 30 }).map((b) => Buffer.from(b)))
      .map((data) => ({ data, text: true, what: 'text frame' })),
    // Valid frames too, so that sessions get somewhere.
    validItems.map((items) => ({ data: frameOf({ t: 'delta', from: S, to: S + 1 }, items), what: 'delta' })),
    validItems.map((items) => ({ data: frameOf({ t: 'snapshot', seq: S + 1, i: 0, last: false }, items), what: 'snapshot chunk 0' })),
  ];
  if (bombs) {
    arbs.push(fc.constantFrom(
      { data: bombs.brotli, what: 'brotli bomb (300 MB of zeros)', fatal: 'decode' as const },
      { data: bombs.deflate, what: 'deflate bomb (300 MB of zeros)', fatal: 'decode' as const },
    ));
  }
  arbs.push(
      // Found by this fuzzer once (fuzz-regressions): applied, then refused.
      fc.constantFrom(strBytes('x'), float64(-1), float64(1.5), Buffer.from([0xc0])).map((to) => ({
        data: Buffer.concat([rawMap([['t', strBytes('delta')], ['from', num(S)], ['to', to], ['u', Buffer.from([0x90])]]).subarray(0, -1), arrayHead(2), ...poisonItems(ctx, 2).map((i) => encodeItem(i.key, i.value, i.revision))]),
        what: 'delta with an odd to', fatal: 'semantic' as const,
      })),
      // Found once: the items before an undecodable value were applied, then the frame refused.
      fc.constant(null).map(() => {
        const p = poisonItems(ctx, 2);
        return { data: frameOf({ t: 'delta', from: S, to: S + 1 }, [...p, { key: `${p[0]!.key}-bad`, value: Buffer.from([0x81]), revision: '1' }]), what: 'delta with an undecodable value', fatal: 'semantic' as const, poison: p.map((i) => i.key) };
      }),
      // Found once: the goaway's resume token was taken without a look, and wedged the client.
      fc.constantFrom(strBytes(String(S + 1)), float64(S + 0.5), float64(2 ** 60)).map((seq) => ({ data: rawMap([['t', strBytes('goaway')], ['reason', strBytes('x')], ['retryAfterMs', num(1)], ['resume', rawMap([['epoch', strBytes(ctx.epoch)], ['seq', seq]])]]), what: 'goaway with an odd resume seq' })),
      fc.constant({ data: encode({ t: 'goaway', reason: 'x', retryAfterMs: 2 ** 31 - 2, resume: { epoch: ctx.epoch, seq: S } }), what: 'goaway: come back in 24 days' }),
  );
  // Poison keys: the keys made for this frame alone (random keys may also be in the prefix).
  return fc.oneof(...arbs).map((o) => (o.fatal && !o.poison ? { ...o, poison: poisonKeysIn(o.data, ctx.alg).filter((k) => k.includes(POISON_TAG)) } : o));
};

function plainDecodeFails(data: Buffer): boolean {
  try { decodeServerFrame(data); return false; } catch { return true; }
}

/** Keys an items frame carries (none when it does not decode). */
function poisonKeysIn(data: Buffer, alg: Alg): string[] {
  try {
    const f = decodeServerFrame(data);
    if (f.msg.t === 'compressed' && alg !== 'none' && f.msg.data instanceof Uint8Array) return poisonKeysIn(decompressFrame(f.msg.data, alg, 1 << 20), alg);
    return (f.items ?? []).map((i) => i.key);
  } catch {
    return [];
  }
}

/**
 * A session: a coherent prefix (welcome, a snapshot at `seq`, in-sync, a matching checksum) and
 * then the frame under test and a random tail; or random frames from the start.
 */
export const sessionArb = (bombs: { brotli: Buffer; deflate: Buffer } | undefined): fc.Arbitrary<Session> => fc.record({
  epoch: fc.constantFrom('epoch-a', 'epoch-b'),
  seq: fc.integer({ min: 1, max: 50 }),
  alg: fc.constantFrom<Alg>('brotli', 'deflate', 'none'),
  tag: fc.string({ unit: fc.constantFrom(...'0123456789abcdef'), minLength: 6, maxLength: 6 }),
  coherent: fc.boolean(),
  closeCode: fc.constantFrom(1000, 1001, 1011, 1013, 4001, 4005, 4999),
}).chain((c) => {
  const ctx: SessionCtx = { epoch: c.epoch, seq: c.seq, alg: c.alg, tag: c.tag };
  const tail = fc.array(hostileFrame(ctx, bombs), { maxLength: 3 });
  if (!c.coherent) {
    // Without a welcome the client's compression is the previous connection's: only a frame that
    // does not decode at all is certainly fatal.
    return fc.tuple(fc.option(welcomeArb(ctx), { freq: 3 }), hostileFrame(ctx, bombs), tail).map(([w, first, rest]): Session => (
      w ? { frames: [w, first, ...rest], closeCode: c.closeCode }
        : { frames: [{ ...first, fatal: !first.text && plainDecodeFails(first.data) ? 'decode' : undefined }, ...rest], designated: 0, closeCode: c.closeCode }));
  }
  return fc.tuple(fc.uniqueArray(hostileItem.filter((i) => i.value !== null), { selector: (i) => i.key, maxLength: 12 }), fc.integer({ min: 1, max: 3 }), fc.boolean(), hostileFrame(ctx, bombs), tail)
    .map(([items, chunks, compress, designated, rest]): Session => {
      const prefix: Outbound[] = [{ data: encode({ t: 'welcome', v: 1, serverId: 'hostile', serverVersion: '0', epoch: ctx.epoch, syncer: 'felix', node: '', mode: 'snapshot', compression: ctx.alg, window: 1 << 16 }), what: 'welcome' }];
      const per = Math.ceil(items.length / chunks) || 1;
      for (let i = 0; i * per < items.length || i === 0; i++) {
        const last = (i + 1) * per >= items.length;
        let f = frameOf({ t: 'snapshot', seq: ctx.seq, i, last }, items.slice(i * per, (i + 1) * per));
        if (compress && ctx.alg !== 'none') f = compressFrame(f, ctx.alg);
        prefix.push({ data: f, what: `snapshot chunk ${i}` });
      }
      let xor = 0n;
      for (const it of items) xor ^= entryHash(it.key, it.value!);
      prefix.push({ data: encode({ t: 'status', status: 'in-sync' }), what: 'status' });
      prefix.push({ data: encode({ t: 'checksum', seq: ctx.seq, value: checksumHex(xor), count: items.length }), what: 'checksum' });
      return { frames: [...prefix, designated, ...rest], designated: prefix.length, closeCode: c.closeCode };
    });
});

export { OPEN_BUGS, valueBytesArb };

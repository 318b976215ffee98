// PROTOCOL.md is complete enough to write a client from: every message a real server sends,
// decoded with a plain msgpack library (@msgpack/msgpack: no records, no extensions), carries
// exactly the fields PROTOCOL.md's tables give for its type, with the required ones present; and
// the server accepts a hello encoded the same plain way.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { brotliDecompressSync } from 'node:zlib';
import { test } from 'node:test';
import { decode, encode } from '@msgpack/msgpack';
import xxhash from 'xxhash-wasm';
import WebSocket from 'ws';
import { cleanupAfterFile, startTestServer, waitFor, wep } from './support/harness.js';

const { clients, track } = cleanupAfterFile();

interface Documented { required: Set<string>; optional: Set<string> }

/** Message types and their fields from the tables of PROTOCOL.md (a field with `?` is optional). */
function documentedMessages(): Map<string, Documented> {
  const doc = readFileSync(new URL('../PROTOCOL.md', import.meta.url), 'utf8');
  const out = new Map<string, Documented>();
  // The message tables are in these sections only.
  const sections = ['## Items and frames carrying updates', '## Client → server', '## Server → client'];
  let inTables = false;
  for (const line of doc.split('\n')) {
    if (line.startsWith('## ')) inTables = sections.includes(line.trim());
    if (!inTables) continue;
    const row = /^\| ((?:`[a-z]+`(?:, )?)+) \| (.*?) \| .* \|$/.exec(line);
    if (!row) continue;
    const types = [...row[1]!.matchAll(/`([a-z]+)`/g)].map((m) => m[1]!);
    // Fields before a ';' are always there; those after it only sometimes ("on i = 0 also").
    const [always, sometimes = ''] = row[2]!.split(';');
    const fields = (text: string) => [...text.matchAll(/`([A-Za-z]+)(\?)?(?::[^`]*)?`/g)].map((m) => ({ name: m[1]!, optional: m[2] === '?' }));
    if (row[2]!.startsWith('see above')) continue;
    for (const t of types) {
      const d: Documented = { required: new Set(), optional: new Set() };
      for (const f of fields(always)) (f.optional ? d.optional : d.required).add(f.name);
      for (const f of fields(sometimes)) d.optional.add(f.name);
      out.set(t, d);
    }
  }
  return out;
}

/** A bare socket whose frames are decoded by the plain library (compressed ones unwrapped). */
function plainClient(url: string) {
  const ws = new WebSocket(url, { perMessageDeflate: false });
  const msgs: Record<string, unknown>[] = [];
  ws.on('message', (d: Buffer) => {
    const m = decode(d) as Record<string, unknown>;
    msgs.push(m);
    if (m.t === 'compressed') msgs.push(decode(brotliDecompressSync(m.data as Uint8Array)) as Record<string, unknown>);
  });
  ws.on('error', () => {});
  const opened = new Promise<void>((resolve) => ws.once('open', () => resolve()));
  const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
  return { ws, msgs, opened, closed, send: (m: unknown) => ws.send(encode(m)) };
}

test('every server message type, decoded by a plain msgpack library, has exactly the fields PROTOCOL.md gives it', { timeout: 30_000 }, async () => {
  const doc = documentedMessages();
  for (const t of ['hello', 'pong', 'ack', 'welcome', 'snapshot', 'repair', 'delta', 'compressed', 'status', 'progress', 'checksum', 'ping', 'goaway', 'error']) assert.ok(doc.has(t), `PROTOCOL.md documents ${t}`);
  // Enough keys for a snapshot chunk of 16 KiB or more (compressed) and several digest buckets.
  const seed = Array.from({ length: 300 }, (_, i) => wep(`n${i % 5}`, `pod-${i}`, 'default', { filler: 'x'.repeat(40) }));
  const ts = track(await startTestServer({ serverPingIntervalSecs: 0.05, checksumIntervalSecs: 0.05, maxConnectionsUpperLimit: 3, allowUnauthenticatedMirror: true }, seed));
  const seen = new Map<string, Record<string, unknown>[]>();
  const record = (msgs: Record<string, unknown>[]) => { for (const m of msgs) seen.set(String(m.t), [...(seen.get(String(m.t)) ?? []), m]); };

  // A snapshot with compression, then a delta, checksums and pings.
  const a = plainClient(ts.url);
  await a.opened;
  a.send({ t: 'hello', v: 1, syncer: 'felix', node: '', clientName: 'plain', clientVersion: '1', compression: ['brotli'] });
  await waitFor(() => a.msgs.some((m) => m.t === 'checksum') && a.msgs.some((m) => m.t === 'ping'), 'snapshot, checksum and ping');
  ts.ds.put(seed[0]!.key, wep('n0', 'pod-0', 'default', { changed: 'yes' }).value);
  await waitFor(() => a.msgs.some((m) => m.t === 'delta'), 'a delta');
  ts.ds.delete(seed[1]!.key);
  await waitFor(() => a.msgs.some((m) => m.t === 'delta' && (m.u as unknown[][]).some((it) => it[1] === null)), 'a delta with a deletion');

  // An error (a second hello).
  const c = plainClient(ts.url);
  await c.opened;
  c.send({ t: 'hello', v: 1, syncer: 'bgp', node: '', clientName: 'plain', clientVersion: '1' });
  await waitFor(() => c.msgs.some((m) => m.t === 'welcome'), 'a welcome');
  c.send({ t: 'hello', v: 1, syncer: 'bgp', node: '', clientName: 'plain', clientVersion: '1' });
  assert.equal(await c.closed, 4002);

  // A digest resync: a synced cache's digest with one bucket wrong, so a repair of that bucket.
  const synced = clients.make({ url: ts.url, syncerType: 'felix' });
  await synced.inSync();
  const digest = (synced as unknown as { cache: { digest(): { scheme: number; buckets: number; hashes: Uint8Array } } }).cache.digest();
  await synced.stop();
  digest.hashes[0]! ^= 1;
  const b = plainClient(ts.url);
  await b.opened;
  b.send({ t: 'hello', v: 1, syncer: 'felix', node: '', clientName: 'plain', clientVersion: '1', digest, compression: [] });
  await waitFor(() => b.msgs.some((m) => m.t === 'repair' && m.last === true), 'a repair');

  // The mirror view, as a server of a tier below asks for it: a welcome with the chain, then progress.
  const e = plainClient(ts.url);
  await e.opened;
  e.send({ t: 'hello', v: 1, syncer: 'mirror', node: '', clientName: 'plain', clientVersion: '1', serverId: 'a-server-below' });
  await waitFor(() => e.msgs.some((m) => m.t === 'progress'), 'a progress');

  // A goaway: a fourth connection is over the limit of 3.
  await waitFor(() => ts.app.server.connections.size === 3, 'three connections');
  const d = plainClient(ts.url);
  await waitFor(() => d.msgs.some((m) => m.t === 'goaway'), 'a goaway');
  for (const x of [a, b, c, d, e]) { record(x.msgs); x.ws.terminate(); }
  assert.ok(seen.get('welcome')!.some((m) => Array.isArray(m.chain)), 'a welcome with its chain');

  for (const t of ['welcome', 'snapshot', 'repair', 'delta', 'compressed', 'status', 'progress', 'checksum', 'ping', 'goaway', 'error']) {
    const msgs = seen.get(t) ?? [];
    assert.ok(msgs.length > 0, `the session produced a ${t}`);
    const { required, optional } = doc.get(t)!;
    for (const m of msgs) {
      for (const f of Object.keys(m)) assert.ok(f === 't' || required.has(f) || optional.has(f), `${t}.${f} is in PROTOCOL.md`);
      for (const f of required) assert.ok(f in m, `${t} has ${f}, which PROTOCOL.md requires`);
      if (Array.isArray(m.u)) {
        for (const item of m.u as unknown[]) {
          assert.ok(Array.isArray(item) && item.length === 3, `${t} item is [key, value, revision]`);
          assert.equal(typeof item[0], 'string');
          assert.ok(item[1] === null || item[1] instanceof Uint8Array, 'value is bin or nil');
          assert.match(item[2] as string, /^[0-9]+$/, 'revision is a decimal string');
        }
      }
    }
  }
  // Item hashes as "Item hashes" gives them, recomputed from the items with the xxhash package's
  // own API: 8 bytes per item, big-endian xxh64 of str(key) ‖ bin(value), zeros for a deletion.
  const { h64Raw } = await xxhash();
  let hashed = 0;
  for (const m of ['snapshot', 'repair', 'delta'].flatMap((t) => seen.get(t)!)) {
    if (m.h === undefined) continue;
    const items = m.u as [string, Uint8Array | null, string][];
    assert.ok(m.h instanceof Uint8Array && m.h.byteLength === 8 * items.length, `${m.t}.h holds 8 bytes per item`);
    items.forEach(([key, value], i) => {
      const want = value === null ? 0n : h64Raw(Buffer.concat([encode(key), encode(value)]));
      assert.equal(Buffer.from(m.h as Uint8Array).readBigUInt64BE(8 * i), want, `${m.t} item ${i} (${key}): its hash`);
    });
    hashed++;
  }
  assert.ok(seen.get('delta')!.every((m) => m.h !== undefined), 'every delta carries h');
  assert.ok(hashed > 0);
  // Status and goaway values as the tables give them.
  for (const m of seen.get('status')!) assert.ok(['wait-for-datastore', 'resync-in-progress', 'in-sync'].includes(m.status as string));
  assert.equal(seen.get('goaway')![0]!.reason, 'overload');
});

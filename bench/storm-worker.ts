// A client process of the storm scenario, driven by the harness over IPC: many agents that all
// connect at once and report when each one holds the whole state, and how many bytes it took.
//
//   sync / arm / resync   SyncClient instances (the real client library): connect and wait for
//                         in-sync; later, after the server restarts, wait until every one has
//                         reconnected on its own and is in sync again
//   read                  etcd readers, each on its own connection, listing the prefix in pages
import { Etcd3 } from 'etcd3';
import { SyncClient } from '../client/index.js';
import { nowUs, PREFIX } from './lib/payload.js';

export type StormCommand =
  | { cmd: 'ping' }
  | { cmd: 'sync'; urls: string[]; first: number; count: number; mode: 'full' | 'light'; compression: string[]; timeoutMs: number }
  | { cmd: 'arm' }
  | { cmd: 'resync'; timeoutMs: number }
  | { cmd: 'read'; urls: string[]; count: number; pageSize: number }
  | { cmd: 'stop' };

/**
 * One agent or reader: when it finished (nowUs), how many keys it holds, bytes it received; agents:
 * how they synced, and in a resync when it lost the old server (nowUs).
 */
export interface ClientFigures { doneAt: number; keys: number; bytes: number; snapshots?: number; resumes?: number; digests?: number; leftAt?: number }
export interface StormReply { ev: 'figures'; clients: ClientFigures[] }

const send = (m: object) => process.send!(m);

let clients: SyncClient[] = [];
/** Stats at `arm`, so the resync phase counts only what came after the restart. */
let armed: Counts[] = [];

type Counts = Pick<SyncClient['stats'], 'connects' | 'bytesReceived' | 'snapshots' | 'resumes' | 'digests'>;
const counts = ({ stats: s }: SyncClient): Counts => ({ connects: s.connects, bytesReceived: s.bytesReceived, snapshots: s.snapshots, resumes: s.resumes, digests: s.digests });

function figures(c: SyncClient, doneAt: number, base: Counts = { connects: 0, bytesReceived: 0, snapshots: 0, resumes: 0, digests: 0 }): ClientFigures {
  const s = c.stats;
  // The preloaded keys: an agent of calico-fanout also holds the built-in default-allow profile.
  let keys = 0;
  for (const [k] of c.entries()) if (k.startsWith(PREFIX)) keys++;
  return { doneAt, keys, bytes: s.bytesReceived - base.bytesReceived, snapshots: s.snapshots - base.snapshots, resumes: s.resumes - base.resumes, digests: s.digests - base.digests };
}

/** Polls `done` for every client until all are done (each timed when first seen), or fails at the deadline. */
async function everyOne(done: (i: number) => boolean, timeoutMs: number, what: string): Promise<number[]> {
  const at = new Array<number>(clients.length).fill(0);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let left = 0;
    for (let i = 0; i < clients.length; i++) if (!at[i]) { if (done(i)) at[i] = nowUs(); else left++; }
    if (!left) return at;
    if (Date.now() > deadline) throw new Error(`${left} of ${clients.length} clients not ${what} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

async function sync(m: Extract<StormCommand, { cmd: 'sync' }>): Promise<StormReply> {
  clients = Array.from({ length: m.count }, (_, i) => new SyncClient({
    urls: m.urls, syncerType: 'felix', node: `node-${(m.first + i) % 500}`, clientName: 'bench-storm',
    // The same backoff as the steady scenario's agents, so a restart costs what it costs them.
    keepValues: m.mode === 'full', compression: m.compression, initialBackoffMs: 200, maxBackoffMs: 5000,
  }));
  for (const c of clients) c.start();
  const at = await everyOne((i) => clients[i]!.isInSync, m.timeoutMs, 'in sync');
  return { ev: 'figures', clients: clients.map((c, i) => figures(c, at[i]!)) };
}

async function resync(timeoutMs: number): Promise<StormReply> {
  // A connect after `arm` comes after the old connection closed (which clears in-sync), so
  // in-sync with more connects than at `arm` means in sync with the other server. A client has
  // left the old one when first seen out of sync or reconnected: the draining server sends
  // clients away one by one, so each one's own resync time is counted from there.
  const left = new Array<number>(clients.length).fill(0);
  const at = await everyOne((i) => {
    const c = clients[i]!;
    const moved = c.stats.connects > armed[i]!.connects;
    if (!left[i] && (moved || !c.isInSync)) left[i] = nowUs();
    return moved && c.isInSync;
  }, timeoutMs, 'in sync again');
  return { ev: 'figures', clients: clients.map((c, i) => ({ ...figures(c, at[i]!, armed[i]), leftAt: left[i]! })) };
}

/** Every key under the prefix, in pages pinned at the first page's revision, as Calico lists it. */
async function readAll(client: Etcd3, pageSize: number): Promise<ClientFigures> {
  const end = Buffer.from(PREFIX.slice(0, -1) + String.fromCharCode(PREFIX.charCodeAt(PREFIX.length - 1) + 1));
  let key = Buffer.from(PREFIX);
  let revision: string | undefined;
  let keys = 0;
  let bytes = 0;
  for (;;) {
    const r = await client.kv.range({ key, range_end: end, limit: pageSize, revision });
    revision ??= r.header.revision;
    for (const kv of r.kvs) { keys++; bytes += kv.key.length + kv.value.length; }
    if (!r.more || r.kvs.length === 0) break;
    key = Buffer.concat([r.kvs[r.kvs.length - 1]!.key, Buffer.from([0])]); // the next key after the last
  }
  return { doneAt: nowUs(), keys, bytes };
}

async function read(m: Extract<StormCommand, { cmd: 'read' }>): Promise<StormReply> {
  const readers = Array.from({ length: m.count }, () => new Etcd3({
    hosts: m.urls,
    // Without a local subchannel pool grpc-js shares one connection among all clients here.
    grpcOptions: { 'grpc.use_local_subchannel_pool': 1, 'grpc.max_receive_message_length': 256 << 20 },
  }));
  try {
    return { ev: 'figures', clients: await Promise.all(readers.map((c) => readAll(c, m.pageSize))) };
  } finally {
    for (const c of readers) c.close();
  }
}

process.on('message', async (m: StormCommand) => {
  try {
    switch (m.cmd) {
      case 'ping': return send({ ev: 'pong' });
      case 'sync': return send(await sync(m));
      case 'arm':
        armed = clients.map(counts);
        return send({ ev: 'armed' });
      case 'resync': return send(await resync(m.timeoutMs));
      case 'read': return send(await read(m));
      case 'stop':
        await Promise.all(clients.map((c) => c.stop()));
        process.exit(0);
    }
  } catch (err) {
    send({ ev: 'error', message: (err as Error).stack ?? String(err) });
  }
});
process.on('disconnect', () => process.exit(0));

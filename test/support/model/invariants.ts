// The invariants of a model run.
//
// During the run, on every update an agent hears (UpdateChecker):
// - the key is in the client's view: a kind the view carries, and for a node-scoped kind a value
//   that belongs to the client's node (a deletion carries no value: its kind is checked);
// - a key's revision never goes backwards. Revisions are the datastore's (etcd mod revisions, or
//   the contract server's resourceVersions, an etcd-like counter): numeric strings, comparable.
//
//   Per server store (per epoch) this always fails the run; across replicas too (unless
//   MODEL_STRICT_REVISIONS=0, which only records them in `crossReplica`, for investigating). Two
//   replicas watch the datastore independently, and a client that moves to one whose watch lags
//   the other's would be repaired to that replica's older state; the server holds such a client
//   until it has caught up, having asked the datastore where it stands (server/connection.ts
//   `behind`), so a regression here is a bug.
//
// After quiescence (checkFinal): every client's cache equals its view of the datastore, its
// checksum is the server's, every replica holds the datastore's content, no protocol error
// happened, and every checksum mismatch is one the run caused by corrupting that client's cache.
import type { SyncClient, Update } from '../../../client/index.js';
import { ViewFilter } from '../../../src/model/view-filter.js';
import { parseKey } from '../../../src/model/kinds.js';
import type { SyncerType } from '../../../src/model/views.js';
import { encodeValue } from '../../../src/protocol/canonical.js';
import { checksumHex, entryHash } from '../../../src/protocol/checksum.js';
import { expectedView, inView } from '../expected.js';
import type { World } from './world.js';

export class UpdateChecker {
  readonly violations: string[] = [];
  /** Revisions that went back when the client moved to another replica (findings, see above). */
  readonly crossReplica: string[] = [];
  updates = 0;
  /** Per epoch, per key: the last revision heard from that server store. */
  private readonly byEpoch = new Map<string, Map<string, number>>();
  /** Per key: the last revision heard, from whichever replica. */
  private readonly last = new Map<string, { rev: number; epoch: string; server: number }>();

  constructor(readonly label: string, readonly syncer: SyncerType, readonly node: string) {}

  /** `server`: the replica's index (-1: closed since), `status`: its store's sync status now. */
  check(updates: readonly Update[], epoch: string, server: number, status = '?'): string[] {
    const found = this.crossReplica.length;
    let mine = this.byEpoch.get(epoch);
    if (!mine) this.byEpoch.set(epoch, (mine = new Map()));
    for (const u of updates) {
      this.updates++;
      const p = parseKey(u.key);
      const value = u.value;
      if (!p) this.violations.push(`${this.label} heard ${u.key}, which is no Calico key`);
      else if (!inView(this.syncer, this.node, u.key, value)) {
        this.violations.push(`${this.label} heard ${u.key} (${p.kind}${value ? ` of node ${(value as any)?.spec?.node ?? '-'}` : ', deleted'}), outside its view`);
      }
      const rev = Number(u.revision);
      if (!Number.isSafeInteger(rev)) { this.violations.push(`${this.label}: ${u.key} has revision ${JSON.stringify(u.revision)}, not a number`); continue; }
      const before = mine.get(u.key);
      const g = this.last.get(u.key);
      if (before !== undefined && rev < before && g && g.epoch !== epoch && rev >= g.rev) {
        // Not this store going back: the client last heard the key from another replica, older
        // (a cross-replica step, recorded there), and this store now deletes it by a sweep, which
        // reports the revision the cache holds.
        this.crossReplica.push(`${this.label}: ${u.key} ${value === null ? 'deleted' : 'set'} at ${rev} by epoch ${epoch.slice(0, 6)} (s${server}), which had sent ${before}: the revision the cache got from epoch ${g.epoch.slice(0, 6)}`);
      } else if (before !== undefined && rev < before) {
        this.violations.push(`${this.label}: ${u.key} went back from ${before} to ${rev} on one server store (epoch ${epoch.slice(0, 6)}, s${server})`);
      }
      mine.set(u.key, Math.max(rev, before ?? 0));
      if (g && rev < g.rev && g.epoch !== epoch) {
        this.crossReplica.push(`${this.label}: ${u.key} went back from ${g.rev} (epoch ${g.epoch.slice(0, 6)}, s${g.server}) to ${rev} (epoch ${epoch.slice(0, 6)}, s${server}, ${status})${value === null ? ', a deletion' : ''}`);
      }
      this.last.set(u.key, { rev, epoch, server });
    }
    return this.crossReplica.slice(found);
  }
}

/** The view checksum of a datastore content, in the wire form (PROTOCOL.md "Canonical value bytes and checksums"). */
export function expectedChecksum(content: Map<string, unknown>, syncer: SyncerType, node: string): { value: string; count: number } {
  let x = 0n;
  let count = 0;
  for (const [k, v] of expectedView(content, syncer, node)) { x ^= entryHash(k, encodeValue(v)); count++; }
  return { value: checksumHex(x), count };
}

export const sameChecksum = (a: { value: string; count: number }, b: { value: string; count: number }) => a.value === b.value && a.count === b.count;

/** Pass/fail report of one client's cache against its view of the datastore: the first few differences. */
export function cacheDiff(client: SyncClient, want: Map<string, unknown>): string[] {
  const out: string[] = [];
  const strip = (v: any) => { if (!v?.metadata) return v; const { resourceVersion: _rv, ...metadata } = v.metadata; return { ...v, metadata }; };
  for (const k of want.keys()) if (!client.get(k)) out.push(`missing ${k}`);
  for (const [k] of client.entries()) if (!want.has(k)) out.push(`extra ${k} (revision ${client.get(k)!.revision})`);
  for (const [k, v] of want) {
    const got = client.get(k);
    if (got && JSON.stringify(canonicalJson(strip(got.value))) !== JSON.stringify(canonicalJson(strip(v)))) out.push(`different ${k} (revision ${got.revision})`);
  }
  return out;
}

/** JSON with sorted keys, for comparing values whatever their key order. */
function canonicalJson(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(canonicalJson);
  if (v && typeof v === 'object') return Object.fromEntries(Object.keys(v).sort().map((k) => [k, canonicalJson((v as Record<string, unknown>)[k])]));
  return v;
}

/** The views the run's clients have, plus the node-less ones: what every replica must hold. */
function viewsToCheck(world: World): [SyncerType, string][] {
  const seen = new Map<string, [SyncerType, string]>();
  for (const c of world.clients) seen.set(`${c.spec.syncer}/${c.spec.node}`, [c.spec.syncer, c.spec.node]);
  for (const v of ['felix', 'bgp'] as const) seen.set(`${v}/`, [v, '']);
  return [...seen.values()];
}

/** Whether every client and every replica has converged on the datastore's content. */
export function converged(world: World, content: Map<string, unknown>, want: Map<string, { value: string; count: number }>): boolean {
  for (const c of world.clients) {
    if (!c.client.isInSync || !sameChecksum(c.client.checksum(), want.get(`${c.spec.syncer}/${c.spec.node}`)!)) return false;
  }
  for (const h of world.servers) {
    if (!h || h.app.store.status !== 'in-sync') return false;
    for (const [syncer, node] of viewsToCheck(world)) {
      const s = h.app.store.checksum(new ViewFilter(syncer, node));
      if (!sameChecksum({ value: checksumHex(s.value), count: s.count }, want.get(`${syncer}/${node}`) ?? expectedChecksum(content, syncer, node))) return false;
    }
  }
  return true;
}

export function wantedChecksums(world: World, content: Map<string, unknown>): Map<string, { value: string; count: number }> {
  return new Map(viewsToCheck(world).map(([syncer, node]) => [`${syncer}/${node}`, expectedChecksum(content, syncer, node)]));
}

/** Why the world has not converged: per client and per replica, what differs. */
export function divergence(world: World, content: Map<string, unknown>): string[] {
  const out: string[] = [];
  for (const c of world.clients) {
    const want = expectedChecksum(content, c.spec.syncer, c.spec.node);
    const mine = c.client.checksum();
    const s = world.serverIndexOf(c.client);
    const diff = cacheDiff(c.client, expectedView(content, c.spec.syncer, c.spec.node));
    if (c.client.isInSync && sameChecksum(mine, want) && diff.length === 0) continue;
    out.push(`${c.label}: inSync=${c.client.isInSync} on s${s} connects=${c.client.stats.connects} checksum ${mine.value}/${mine.count}, want ${want.value}/${want.count}; ${diff.slice(0, 5).join('; ') || 'same content'}${diff.length > 5 ? ` (+${diff.length - 5})` : ''}`);
    out.push(`    recent: ${c.events.slice(-6).join(' | ')}`);
    out.push(`    client state: ${clientState(c.client)}; server side: ${connectionState(world, c.client)}`);
    out.push(`    frames: ${c.frames.join(' | ')}`);
  }
  world.servers.forEach((h, s) => {
    if (!h) { out.push(`s${s}: down`); return; }
    const st = h.app.store;
    const bad = viewsToCheck(world).filter(([syncer, node]) => {
      const x = st.checksum(new ViewFilter(syncer, node));
      return !sameChecksum({ value: checksumHex(x.value), count: x.count }, expectedChecksum(content, syncer, node));
    });
    out.push(`s${s}: status ${st.status}, head ${st.head}, complete ${st.complete}, datastore error ${h.app.datastore.lastError ?? 'none'}; views differing from the datastore: ${bad.map(([a, b]) => `${a}/${b}`).join(', ') || 'none'}`);
  });
  return out;
}

/** The checks after convergence; returns the failures (empty: the run passed). */
export function checkFinal(world: World, content: Map<string, unknown>, strictRevisions: boolean): string[] {
  const failures: string[] = [];
  for (const c of world.clients) {
    const before = failures.length;
    const diff = cacheDiff(c.client, expectedView(content, c.spec.syncer, c.spec.node));
    if (diff.length) failures.push(`${c.label}: cache differs from the datastore: ${diff.slice(0, 8).join('; ')}`);
    failures.push(...c.checker.violations.slice(0, 10));
    if (c.checker.violations.length > 10) failures.push(`${c.label}: … ${c.checker.violations.length - 10} more violations`);
    if (strictRevisions) failures.push(...c.checker.crossReplica.slice(0, 10));
    const { checksumMismatches, protocolErrors } = c.client.stats;
    if (protocolErrors > 0) {
      // Frames read after the client chose to close over a mismatch were a client bug (test/model-regressions.test.ts).
      const after = c.afterMismatchErrors ? `, ${c.afterMismatchErrors} of them frames read after closing over a checksum mismatch` : '';
      failures.push(`${c.label}: ${protocolErrors} protocol error(s) from the server${after}: ${c.otherProtocolErrors.slice(0, 3).join('; ')}`);
    }
    // A node-status client that missed a status leaving its node paid a mismatch (test/model-regressions.test.ts).
    if (checksumMismatches > c.corruptions) failures.push(`${c.label}: ${checksumMismatches} checksum mismatch(es) for ${c.corruptions} corruption(s) of its cache: the server sent it something wrong`);
    if (failures.length > before) failures.push(`    ${c.label} recent: ${c.events.join(' | ')}`);
  }
  return failures;
}

/** The client library's private state, for a failure report. */
function clientState(client: SyncClient): string {
  const i = client as unknown as { pos?: number; known?: number; status?: string; synced?: boolean; cache: { marking: boolean }; bytesIn?: number; bytesAcked?: number; ws?: { readyState: number; isPaused: boolean } };
  return JSON.stringify({ pos: i.pos, known: i.known, status: i.status, synced: i.synced, marking: i.cache.marking, bytesIn: i.bytesIn, bytesAcked: i.bytesAcked, ws: i.ws && { readyState: i.ws.readyState, paused: i.ws.isPaused } });
}

/** The server's connection of a client (matched by its socket's local port), for a failure report. */
function connectionState(world: World, client: SyncClient): string {
  const port = (client as unknown as { ws?: { _socket?: { localPort?: number } } }).ws?._socket?.localPort;
  if (port === undefined) return 'no socket';
  for (const [s, h] of world.servers.entries()) {
    for (const conn of h?.app.server.connections ?? []) {
      if (!conn.remote.endsWith(`:${port}`)) continue;
      const x = conn as unknown as Record<string, unknown>;
      const pick = ['state', 'mode', 'pos', 'syncDue', 'framesEnd', 'sentStatus', 'checksumDue', 'waitingDrain', 'waitingAck', 'bytesOut', 'bytesAcked'];
      return `s${s} conn ${conn.id} ${JSON.stringify(Object.fromEntries(pick.map((k) => [k, k === 'syncDue' && x[k] ? Object.keys(x[k] as object) : x[k]])), (_k, v) => (typeof v === 'bigint' ? String(v) : v))} frames ${x.frames ? 'in flight' : 'none'}, buffered ${conn.bufferedAmount}, store head ${h!.app.store.head}`;
    }
  }
  return `no server connection for local port ${port}`;
}

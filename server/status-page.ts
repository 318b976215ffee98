// A status page for people: GET / on the health port shows the datastore's sync state, each view's
// size and checksum, every connected client and why clients went away. Server-rendered HTML with
// inline CSS, no JavaScript, refreshing itself every few seconds; GET /status.json serves the same
// data for tools and tests. Client names and identities come from the clients (hello, TLS
// certificate), so everything shown is escaped.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Store } from '../snapshot/store.js';
import type { Datastore, UpstreamStatus } from '../src/datastore/datastore.js';
import type { Metrics } from '../src/metrics.js';
import { ViewFilter } from '../src/model/view-filter.js';
import { needsNode, SYNCER_TYPES, type SyncerType } from '../src/model/views.js';
import { checksumHex } from '../src/protocol/checksum.js';
import type { Handler } from './http-endpoints.js';
import type { FanoutServer } from './server.js';

/** What the page reads, and nothing more. */
export interface StatusSource {
  readonly store: Pick<Store, 'status' | 'complete' | 'head' | 'floor' | 'epoch' | 'size' | 'historyBytes' | 'checksum'>;
  readonly server: Pick<FanoutServer, 'serverId' | 'serverVersion' | 'isDraining' | 'connections' | 'publishedAt'>;
  readonly datastore: Pick<Datastore, 'name' | 'lastError' | 'upstream'>;
  readonly metrics: Pick<Metrics, 'cacheSize' | 'connectionsClosed'>;
}

export interface ViewStatus {
  name: SyncerType;
  /** Whether some of the view's kinds reach a client only for its own node. */
  nodeScoped: boolean;
  /** Keys in the view's shared part (`new ViewFilter(name, '')`): for views without node-scoped kinds, all of it. */
  keys: number;
  /** Live keys in the view across all nodes (typha_cache_size). */
  keysAllNodes: number;
  /** Checksum of the shared part, 16 hex digits as on the wire. */
  checksum: string;
  ready: boolean;
  /** Streaming clients of this view. */
  clients: number;
}

export interface ClientStatus {
  id: number;
  remote: string;
  state: string;
  identity: string | null;
  node: string | null;
  view: string | null;
  clientName: string | null;
  clientVersion: string | null;
  mode: string | null;
  pos: number;
  /** store.head − pos: changes published and not yet written to this client. */
  lagSeqs: number;
  /** Age of the oldest change not yet written to it (0 when caught up; null when not known). */
  lagMs: number | null;
  bytesSent: number;
  bufferedBytes: number;
  connectedAt: string;
  connectedForMs: number;
}

export interface StatusData {
  generatedAt: string;
  server: { id: string; version: string; draining: boolean; ready: boolean; connections: number };
  datastore: {
    type: string; status: string; complete: boolean; head: number; floor: number; epoch: string;
    keys: number; historyBytes: number; lastError: string | null;
  };
  /** A server of a tier below: the upstream it follows and how far behind the root it is. */
  upstream: UpstreamStatus | null;
  views: ViewStatus[];
  clients: ClientStatus[];
  disconnects: { reason: string; count: number }[];
}

/** Everything the page shows, as data. */
export async function buildStatus(app: StatusSource, now = Date.now()): Promise<StatusData> {
  const { store, server, datastore, metrics } = app;
  const ready = store.status === 'in-sync' && !server.isDraining;

  const cacheSize = new Map<string, number>();
  for (const v of (await metrics.cacheSize.get()).values) cacheSize.set(String(v.labels.syncer), v.value);

  const conns = [...server.connections].sort((a, b) => a.id - b.id);
  const views: ViewStatus[] = SYNCER_TYPES.map((name) => {
    const sum = store.checksum(new ViewFilter(name, ''));
    return {
      name, nodeScoped: needsNode(name), keys: sum.count, keysAllNodes: cacheSize.get(name) ?? sum.count,
      checksum: checksumHex(sum.value), ready,
      clients: conns.filter((c) => c.streaming && c.hello?.syncer === name).length,
    };
  });

  const clients: ClientStatus[] = conns.map((c) => {
    const lagSeqs = Math.max(0, store.head - c.pos);
    let lagMs: number | null = 0;
    if (lagSeqs > 0) {
      const at = server.publishedAt(c.pos + 1);
      lagMs = at === undefined ? null : Math.max(0, now - at);
    }
    return {
      id: c.id, remote: c.remote, state: c.state, identity: c.identity ?? null,
      node: c.hello ? c.hello.node : null, view: c.hello?.syncer ?? null,
      clientName: c.hello?.clientName ?? null, clientVersion: c.hello?.clientVersion ?? null,
      mode: c.mode ?? null, pos: c.pos, lagSeqs, lagMs, bytesSent: c.bytesSent, bufferedBytes: c.bufferedAmount,
      connectedAt: new Date(c.connectedAt).toISOString(), connectedForMs: Math.max(0, now - c.connectedAt),
    };
  });

  const disconnects = (await metrics.connectionsClosed.get()).values
    .filter((v) => v.value > 0)
    .map((v) => ({ reason: String(v.labels.reason ?? ''), count: v.value }))
    .sort((a, b) => b.count - a.count || a.reason.localeCompare(b.reason));

  return {
    generatedAt: new Date(now).toISOString(),
    server: { id: server.serverId, version: server.serverVersion, draining: server.isDraining, ready, connections: conns.length },
    datastore: {
      type: datastore.name, status: store.status, complete: store.complete, head: store.head, floor: store.floor,
      epoch: store.epoch, keys: store.size, historyBytes: store.historyBytes, lastError: datastore.lastError ?? null,
    },
    upstream: datastore.upstream?.status() ?? null,
    views, clients, disconnects,
  };
}

// ---- rendering ---------------------------------------------------------------------------

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Text safe to put in HTML content and in quoted attribute values. */
export function escapeHtml(s: unknown): string {
  return String(s).replace(/[&<>"']/g, (ch) => ESCAPES[ch]!);
}

const num = (n: number) => n.toLocaleString('en-US');

function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = -1;
  do { v /= 1024; i++; } while (v >= 1024 && i < units.length - 1);
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

function duration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  let s = Math.floor(ms / 1000);
  const d = Math.floor(s / 86400); s -= d * 86400;
  const h = Math.floor(s / 3600); s -= h * 3600;
  const m = Math.floor(s / 60); s -= m * 60;
  if (d) return `${d}d ${h}h`;
  if (h) return `${h}h ${m}m`;
  if (m) return `${m}m ${s}s`;
  return `${s}s`;
}

const NONE = '<span class="none">—</span>';
/** A table cell of escaped text (or a dash for nothing); `cls` names the column for tools and tests. */
const td = (cls: string, v: string | number | null | undefined, title?: string) =>
  `<td class="${cls}"${title ? ` title="${escapeHtml(title)}"` : ''}>${v === null || v === undefined || v === '' ? NONE : escapeHtml(v)}</td>`;
const badge = (ok: boolean, text: string) => `<span class="badge ${ok ? 'ok' : 'bad'}">${escapeHtml(text)}</span>`;

const CSS = `
:root{color-scheme:light;--fg:#1d2330;--muted:#667085;--line:#e4e7ec;--bg:#fff;--head:#f5f7fa;--ok:#067647;--okbg:#ecfdf3;--bad:#b42318;--badbg:#fef3f2}
*{box-sizing:border-box}
body{margin:0;padding:1.25rem 1.5rem 2rem;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);background:var(--bg)}
h1{font-size:1.35rem;margin:0 0 .25rem}
h2{font-size:1.05rem;margin:1.6rem 0 .5rem}
.sub{color:var(--muted);margin:0 0 1rem}
table{border-collapse:collapse;width:100%;margin:.25rem 0}
th,td{text-align:left;padding:.35rem .6rem;border-bottom:1px solid var(--line);vertical-align:top}
th{background:var(--head);font-weight:600;white-space:nowrap}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.92em}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.3rem 1.2rem;margin:0}
dt{color:var(--muted)}dd{margin:0}
.badge{display:inline-block;padding:0 .5rem;border-radius:999px;font-size:.85em;font-weight:600}
.ok{color:var(--ok);background:var(--okbg)}.bad{color:var(--bad);background:var(--badbg)}
.none{color:var(--muted)}
.err{color:var(--bad);white-space:pre-wrap;word-break:break-word}
.empty{color:var(--muted);font-style:italic}
`;

/** The HTML page for `data`: complete, self-refreshing, no scripts. */
export function renderStatusPage(data: StatusData): string {
  const ds = data.datastore;
  const sv = data.server;

  const views = data.views.map((v) => `<tr data-view="${escapeHtml(v.name)}">${[
    `<td class="name"><code>${escapeHtml(v.name)}</code>${v.nodeScoped ? ' <span class="none">(shared part)</span>' : ''}</td>`,
    `<td class="keys num">${escapeHtml(num(v.keys))}</td>`,
    `<td class="keys-all-nodes num">${escapeHtml(num(v.keysAllNodes))}</td>`,
    `<td class="checksum mono">${escapeHtml(v.checksum)}</td>`,
    `<td class="clients num">${escapeHtml(num(v.clients))}</td>`,
    `<td class="ready">${badge(v.ready, v.ready ? 'ready' : 'not ready')}</td>`,
  ].join('')}</tr>`).join('\n');

  const clients = data.clients.length === 0
    ? '<p class="empty" id="no-clients">No clients connected.</p>'
    : `<table id="clients"><thead><tr><th class="num">id</th><th>remote</th><th>identity</th><th>node</th><th>view</th><th>client</th><th>version</th><th>mode</th><th>state</th><th class="num">lag (seqs)</th><th class="num">lag (time)</th><th class="num">bytes sent</th><th class="num">buffered</th><th class="num">connected for</th></tr></thead><tbody>
${data.clients.map((c) => `<tr data-client-id="${c.id}">${[
    td('id num', c.id),
    td('remote mono', c.remote),
    td('identity', c.identity),
    td('node', c.node),
    td('view', c.view),
    td('client-name', c.clientName),
    td('client-version', c.clientVersion),
    td('mode', c.mode),
    td('state', c.state),
    td('lag-seqs num', num(c.lagSeqs), `position ${c.pos}`),
    td('lag-ms num', c.lagMs === null ? null : duration(c.lagMs)),
    td('bytes-sent num', bytes(c.bytesSent), `${c.bytesSent} bytes`),
    td('buffered num', bytes(c.bufferedBytes), `${c.bufferedBytes} bytes`),
    td('connected-for num', duration(c.connectedForMs), `since ${c.connectedAt}`),
  ].join('')}</tr>`).join('\n')}
</tbody></table>`;

  const disconnects = data.disconnects.length === 0
    ? '<p class="empty" id="no-disconnects">No disconnects since start.</p>'
    : `<table id="disconnects"><thead><tr><th>reason</th><th class="num">count</th></tr></thead><tbody>
${data.disconnects.map((d) => `<tr data-reason="${escapeHtml(d.reason)}">${td('reason', d.reason)}${td('count num', num(d.count))}</tr>`).join('\n')}
</tbody></table>`;

  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="refresh" content="5">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>calico-fanout ${escapeHtml(sv.id)}</title>
<style>${CSS}</style>
</head>
<body>
<h1>calico-fanout <span class="mono">${escapeHtml(sv.id)}</span></h1>
<p class="sub">version ${escapeHtml(sv.version)} · ${badge(sv.ready, sv.ready ? 'ready' : 'not ready')}${sv.draining ? ` ${badge(false, 'draining')}` : ''} · ${escapeHtml(num(sv.connections))} connection${sv.connections === 1 ? '' : 's'} · as of <time datetime="${escapeHtml(data.generatedAt)}">${escapeHtml(data.generatedAt)}</time> · refreshes every 5 s · <a href="status.json">status.json</a></p>

<h2>Datastore</h2>
<dl id="datastore">
<dt>type</dt><dd id="ds-type">${escapeHtml(ds.type)}</dd>
<dt>sync status</dt><dd id="ds-status">${badge(ds.status === 'in-sync', ds.status)}${ds.complete && ds.status !== 'in-sync' ? ' <span class="none">(serving the last complete state)</span>' : ''}</dd>
<dt>head seq</dt><dd id="ds-head" class="mono">${escapeHtml(ds.head)}</dd>
<dt>resumable from seq</dt><dd id="ds-floor" class="mono">${escapeHtml(ds.floor)}</dd>
<dt>epoch</dt><dd id="ds-epoch" class="mono">${escapeHtml(ds.epoch)}</dd>
<dt>keys held</dt><dd id="ds-keys">${escapeHtml(num(ds.keys))} <span class="none">(tombstones included; history ${escapeHtml(bytes(ds.historyBytes))})</span></dd>
<dt>last error</dt><dd id="ds-error">${ds.lastError ? `<span class="err">${escapeHtml(ds.lastError)}</span>` : NONE}</dd>
</dl>

${data.upstream ? upstreamSection(data.upstream) : ''}
<h2>Views</h2>
<table id="views"><thead><tr><th>view</th><th class="num">keys</th><th class="num">keys (all nodes)</th><th>checksum</th><th class="num">clients</th><th>readiness</th></tr></thead><tbody>
${views}
</tbody></table>

<h2>Connected clients</h2>
${clients}

<h2>Disconnects by reason</h2>
${disconnects}
</body>
</html>
`;
}

/** Tiers: whom this server follows, along which chain, and how far behind the root it is. */
function upstreamSection(u: UpstreamStatus): string {
  const state = u.connected ? (u.inSync ? badge(true, 'in sync') : badge(false, 'syncing')) : badge(false, 'not connected: serving the last state');
  return `<h2>Upstream</h2>
<dl id="upstream">
<dt>following</dt><dd id="up-url" class="mono">${u.url ? escapeHtml(u.url) : NONE} ${state}</dd>
<dt>upstream server</dt><dd id="up-server" class="mono">${u.serverId ? escapeHtml(u.serverId) : NONE}</dd>
<dt>chain to the root</dt><dd id="up-chain" class="mono">${u.chain.length ? u.chain.map(escapeHtml).join(' → ') : NONE}</dd>
<dt>root revision reached</dt><dd id="up-revision" class="mono">${escapeHtml(u.revision)}</dd>
<dt>behind the root</dt><dd id="up-lag">${u.lagMs === null ? NONE : escapeHtml(duration(u.lagMs))}${u.lastProgressAt ? ` <span class="none">(as of ${escapeHtml(u.lastProgressAt)})</span>` : ''}</dd>
</dl>
`;
}

// ---- HTTP --------------------------------------------------------------------------------

function send(req: IncomingMessage, res: ServerResponse, type: string, body: string): void {
  res.writeHead(200, { 'content-type': type, 'cache-control': 'no-store', 'content-length': Buffer.byteLength(body) });
  res.end(req.method === 'HEAD' ? undefined : body);
}

/** Serves `/` (the HTML page) and `/status.json`; every other path is left to the next handler. */
export function statusPageHandler(app: StatusSource): Handler {
  return async (req, res) => {
    const path = req.url?.split('?')[0];
    if (path !== '/' && path !== '/status.json') return false;
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { 'content-type': 'text/plain', allow: 'GET, HEAD' }).end('method not allowed\n');
      return true;
    }
    const data = await buildStatus(app);
    if (path === '/status.json') send(req, res, 'application/json', JSON.stringify(data, null, 2) + '\n');
    else send(req, res, 'text/html; charset=utf-8', renderStatusPage(data));
    return true;
  };
}

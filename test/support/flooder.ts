// A connection flood, run as its own process (so that its sockets, and the CPU it takes to open
// them, are not the server's): `count` WebSocket connections opened at once against `url`.
// Even-numbered ones are mute (never send a hello: the server must close them, 4004 after its
// handshake timeout, or 1013 at once when it is over its connection limit); odd-numbered ones
// send a hello and close straight away. Prints `started` when the burst begins, then one JSON
// line (FloodReport) once every connection has ended or `deadlineMs` has passed.
//
//   node --import tsx test/support/flooder.ts '{"url":"ws://127.0.0.1:5473","count":2000,"deadlineMs":20000}'
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { encode } from '../../src/protocol/codec.js';
import { decodeServerFrame } from '../../src/protocol/frames.js';

export interface FloodOptions { url: string; count: number; deadlineMs: number }

export interface FloodGroup {
  /** Connections attempted. */
  attempts: number;
  /** Upgraded (the client saw `open`). */
  opened: number;
  /** Never opened: the error each gave (ECONNRESET, timeout, …), counted. */
  failed: Record<string, number>;
  /** Close codes seen, counted ("none" for a connection still open at the deadline). */
  closeCodes: Record<string, number>;
  /** Server frames seen: `goaway:<reason>`, `error:<code>`, `welcome`, …, counted once per connection. */
  frames: Record<string, number>;
  /** From open to close, ms, of connections closed with 4004 (the handshake timeout at work). */
  timeoutAfterMs: { min: number; max: number } | null;
  /**
   * From the start of the burst to each 4004 close, ms: never less than the handshake timeout,
   * since no server-side timer can start before the burst (unlike open → close, this does not
   * depend on how late this process got to handle `open`).
   */
  timeoutSinceStartMs: { min: number; max: number } | null;
  /** From the start of the burst to open, ms. */
  openMs: { p50: number; max: number } | null;
}

export interface FloodReport { count: number; burstMs: number; totalMs: number; unfinished: number; mute: FloodGroup; hello: FloodGroup }

const bump = (o: Record<string, number>, k: string) => { o[k] = (o[k] ?? 0) + 1; };

function group(): FloodGroup & { opens: number[]; timeouts: number[]; timeoutsAt: number[] } {
  return { attempts: 0, opened: 0, failed: {}, closeCodes: {}, frames: {}, timeoutAfterMs: null, timeoutSinceStartMs: null, openMs: null, opens: [], timeouts: [], timeoutsAt: [] };
}

export async function flood(o: FloodOptions): Promise<FloodReport> {
  const groups = { mute: group(), hello: group() };
  const t0 = performance.now();
  const pending = new Map<WebSocket, ReturnType<typeof group>>();
  let resolveAll!: () => void;
  const allDone = new Promise<void>((r) => { resolveAll = r; });
  for (let i = 0; i < o.count; i++) {
    const mute = i % 2 === 0;
    const g = mute ? groups.mute : groups.hello;
    g.attempts++;
    const ws = new WebSocket(o.url, { perMessageDeflate: false, handshakeTimeout: o.deadlineMs });
    pending.set(ws, g);
    let openedAt = 0;
    const seen = new Set<string>();
    let err = '';
    ws.on('error', (e: Error & { code?: string }) => { err = e.code ?? e.message; });
    ws.on('open', () => {
      openedAt = performance.now();
      g.opened++;
      g.opens.push(openedAt - t0);
      if (!mute) {
        ws.send(encode({ t: 'hello', v: 1, syncer: 'felix', node: `flood-${i}`, clientName: 'flood', clientVersion: '0', compression: ['brotli', 'deflate'] }));
        ws.close(1000);
      }
    });
    ws.on('message', (d: Buffer) => {
      try {
        const { msg } = decodeServerFrame(d);
        seen.add(msg.t === 'goaway' ? `goaway:${String(msg.reason)}` : msg.t === 'error' ? `error:${String(msg.code)}` : String(msg.t));
      } catch { seen.add('undecodable'); }
    });
    ws.on('close', (code) => {
      if (!pending.delete(ws)) return; // given up on at the deadline: already counted
      if (!openedAt) bump(g.failed, err || `closed-${code}`);
      else {
        bump(g.closeCodes, String(code));
        for (const s of seen) bump(g.frames, s);
        if (code === 4004) { g.timeouts.push(performance.now() - openedAt); g.timeoutsAt.push(performance.now() - t0); }
      }
      if (pending.size === 0) resolveAll();
    });
  }
  const burstMs = performance.now() - t0;
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([allDone, new Promise<void>((r) => { timer = setTimeout(r, o.deadlineMs); })]);
  clearTimeout(timer);
  const unfinished = pending.size;
  for (const [ws, g] of [...pending]) {
    pending.delete(ws);
    bump(g.closeCodes, 'none');
    ws.terminate();
  }
  const out = (g: ReturnType<typeof group>): FloodGroup => {
    const { opens, timeouts, timeoutsAt, ...rest } = g;
    const range = (xs: number[]) => (xs.length ? { min: Math.round(Math.min(...xs)), max: Math.round(Math.max(...xs)) } : null);
    opens.sort((a, b) => a - b);
    return {
      ...rest,
      openMs: opens.length ? { p50: Math.round(opens[Math.floor(opens.length / 2)]!), max: Math.round(opens.at(-1)!) } : null,
      timeoutAfterMs: range(timeouts),
      timeoutSinceStartMs: range(timeoutsAt),
    };
  };
  return { count: o.count, burstMs: Math.round(burstMs), totalMs: Math.round(performance.now() - t0), unfinished, mute: out(groups.mute), hello: out(groups.hello) };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === resolve(process.argv[1])) {
  const o = JSON.parse(process.argv[2] ?? '{}') as FloodOptions;
  process.stdout.write('started\n');
  const report = await flood(o);
  process.stdout.write(`${JSON.stringify(report)}\n`);
  process.exit(0);
}

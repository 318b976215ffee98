// What a leak looks like from inside the process: open file descriptors, active handles and
// timers by type, and listener counts on the process and on the server's own objects. Used by
// the soak (bench/soak.ts) and by test/flood.test.ts. Linux (/proc) only.
//
// Note on what getActiveResourcesInfo() sees: only *ref'd* handles and timers (an unref'd timer,
// such as the server's 2 s close-handshake timer per closed connection, is invisible to it), so
// the file descriptor count is the check that nothing socket-shaped is held.
import { readdirSync, readFileSync } from 'node:fs';
import type { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import type { FanoutServer } from '../../server/server.js';

export function fdCount(): number {
  return readdirSync('/proc/self/fd').length;
}

/** The soft limit on open files (ulimit -n), or Infinity when it cannot be read. */
export function fdLimit(): number {
  try {
    const m = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    return !m || m[1] === 'unlimited' ? Infinity : Number(m[1]);
  } catch {
    return Infinity;
  }
}

/** process.getActiveResourcesInfo() counted by type (TCPSocketWrap, Timeout, …). */
export function resourceCounts(): Record<string, number> {
  const out: Record<string, number> = {};
  for (const t of process.getActiveResourcesInfo()) out[t] = (out[t] ?? 0) + 1;
  return out;
}

export const total = (counts: Record<string, number>): number => Object.values(counts).reduce((a, b) => a + b, 0);

/** Listener counts by event name. */
export function listenerCounts(e: EventEmitter): Record<string, number> {
  const out: Record<string, number> = {};
  for (const name of e.eventNames()) out[String(name)] = e.listenerCount(name);
  return out;
}

const PROCESS_EVENTS = ['warning', 'exit', 'beforeExit', 'SIGINT', 'SIGTERM', 'uncaughtException', 'unhandledRejection'] as const;

export function processListenerCounts(): Record<string, number> {
  return Object.fromEntries(PROCESS_EVENTS.map((e) => [e, process.listenerCount(e)]));
}

export interface ServerListeners {
  /** The HTTP(S) server that takes the upgrades. */
  http: Record<string, number>;
  /** The WebSocketServer (noServer mode). */
  wss: Record<string, number>;
  /** Store subscribers (the server's own onBatch/onStatus). */
  storeListeners: number;
  /** Upgraded sockets the server still holds, and the most listeners any of them has per event. */
  sockets: number;
  perSocketMax: Record<string, number>;
  /** Sum of listeners over those sockets, divided by their number. */
  perSocketMean: number;
}

/** Listener counts of a FanoutServer's objects (its private fields, read for the purpose). */
export function serverListeners(server: FanoutServer): ServerListeners {
  const s = server as unknown as { http: EventEmitter; wss: EventEmitter; store: { listeners: unknown[] }; sockets: Set<Socket> };
  const perSocketMax: Record<string, number> = {};
  let sum = 0;
  for (const sock of s.sockets) {
    for (const [name, n] of Object.entries(listenerCounts(sock))) {
      perSocketMax[name] = Math.max(perSocketMax[name] ?? 0, n);
      sum += n;
    }
  }
  return {
    http: listenerCounts(s.http), wss: listenerCounts(s.wss), storeListeners: s.store.listeners.length,
    sockets: s.sockets.size, perSocketMax, perSocketMean: s.sockets.size ? Math.round((sum / s.sockets.size) * 100) / 100 : 0,
  };
}

/** Keys whose count grew by more than `slack` from `before` to `after` (a key absent counts 0). */
export function grown(before: Record<string, number>, after: Record<string, number>, slack: number): Record<string, [number, number]> {
  const out: Record<string, [number, number]> = {};
  for (const k of new Set([...Object.keys(before), ...Object.keys(after)])) {
    const b = before[k] ?? 0;
    const a = after[k] ?? 0;
    if (a > b + slack) out[k] = [b, a];
  }
  return out;
}

/** Least-squares slope of y over x (0 with fewer than two points). */
export function slope(x: readonly number[], y: readonly number[]): number {
  const n = Math.min(x.length, y.length);
  if (n < 2) return 0;
  let sx = 0; let sy = 0;
  for (let i = 0; i < n; i++) { sx += x[i]!; sy += y[i]!; }
  const mx = sx / n; const my = sy / n;
  let num = 0; let den = 0;
  for (let i = 0; i < n; i++) { num += (x[i]! - mx) * (y[i]! - my); den += (x[i]! - mx) ** 2; }
  return den === 0 ? 0 : num / den;
}

/** The p-th percentile (0–100) of unsorted values, nearest rank; NaN when empty. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}

export const median = (values: readonly number[]): number => percentile(values, 50);
export const round = (x: number, digits = 1): number => Math.round(x * 10 ** digits) / 10 ** digits;

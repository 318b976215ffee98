// Spreading clients over the replicas. Every poll interval (jittered) each replica looks up its
// peers, asks each for its load (`/readyz` carries the connection count), and takes the fair
// share as its connection limit: total clients over ready replicas, plus 10% headroom, within the
// configured lower and upper limits. Above the share it sheds clients gradually, caught-up ones
// first (each resyncs elsewhere by a digest repair), with goaway, a jittered retry-after and the
// other replicas' addresses. Typha's version counts nodes rather than clients, ignores readiness,
// and drops one random client per second however far over it is.
import type { Logger } from '../src/logging.js';
import type { FanoutServer } from './server.js';

export interface RebalanceOptions {
  lowerLimit: number;
  upperLimit: number;
  pollMs: number;
  shedPerSec: number;
  /** Every replica's health base URL (http://host:port), this one's included. */
  peers: () => Promise<string[]>;
}

interface PeerLoad { url: string; ready: boolean; connections: number; serverId?: string; clientUrl?: string }

/** The connection limit for `total` clients over `replicas` ready replicas. */
export function fairShare(total: number, replicas: number, lower: number, upper: number): number {
  if (replicas <= 1) return upper;
  // In integers: ×1.1 in floating point makes 300 clients over 3 replicas 111.
  return Math.min(upper, Math.max(lower, Math.ceil((total * 11) / (replicas * 10))));
}

export class Rebalancer {
  private pollTimer: NodeJS.Timeout | undefined;
  private shedTimer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(private readonly server: FanoutServer, private readonly opts: RebalanceOptions, private readonly logger: Logger) {}

  start(): void {
    const poll = () => {
      if (this.stopped) return;
      void this.poll().finally(() => {
        if (!this.stopped) this.pollTimer = setTimeout(poll, this.opts.pollMs * (1 + Math.random() * 0.1));
      });
    };
    poll();
    this.shedTimer = setInterval(() => this.shedOne(), 1000 / this.opts.shedPerSec);
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.pollTimer);
    clearInterval(this.shedTimer);
  }

  private async poll(): Promise<void> {
    let loads: PeerLoad[];
    try {
      loads = await Promise.all((await this.opts.peers()).map((u) => load(u)));
    } catch (err) {
      // Without knowing the others, serve up to the upper limit (as Typha does on lookup errors).
      this.logger.warn({ err: (err as Error).message }, 'replicas not found; connection limit back to the upper limit');
      this.server.setMaxConnections(this.opts.upperLimit);
      return;
    }
    const ready = loads.filter((l) => l.ready);
    const total = ready.reduce((n, l) => n + l.connections, 0);
    const share = fairShare(total, ready.length, this.opts.lowerLimit, this.opts.upperLimit);
    if (share !== this.server.maxConnections) this.logger.info({ replicas: ready.length, clients: total, share }, 'fair share of clients');
    this.server.setMaxConnections(share);
    this.server.peers = ready.filter((l) => l.serverId !== this.server.serverId).map((l) => l.clientUrl).filter((u): u is string => !!u);
  }

  private shedOne(): void {
    const { server } = this;
    if (server.isDraining || server.connections.size <= server.maxConnections) return;
    const all = [...server.connections];
    const victim = all.find((c) => c.caughtUp) ?? all.find((c) => c.streaming);
    if (victim) server.sendAway(victim, 'rebalance');
  }
}

async function load(url: string): Promise<PeerLoad> {
  try {
    const res = await fetch(new URL('/readyz', url), { signal: AbortSignal.timeout(2000) });
    const body = await res.json() as { ready?: boolean; connections?: number; serverId?: string; clientUrl?: string };
    // A replica knows its client port, not the address others reach it at: that is the peer's.
    const clientUrl = body.clientUrl?.replace('{host}', new URL(url).hostname);
    return { url, ready: res.status === 200 && body.ready === true, connections: Number(body.connections) || 0, serverId: body.serverId, clientUrl };
  } catch {
    return { url, ready: false, connections: 0 };
  }
}

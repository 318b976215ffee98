// The mirror view's part of serving (tiers, PROTOCOL.md "Tiers"). A server of a tier below asks
// for the mirror view naming itself, and is refused when it is on this server's chain to the root
// (it would follow itself). Once caught up, a mirror client hears how far the root datastore's
// revisions have reached it (`progress`, its watermark and the hold's measure) and this server's
// chain whenever it changes, so loops are found however the tree is rearranged.
import type { ProgressMsg } from '../src/protocol/messages.js';

/** Why the server `serverId` may not follow a server whose chain to the root is `chain`, or undefined. */
export function loopRefusal(serverId: string | undefined, chain: readonly string[]): string | undefined {
  // A client that names no server (a tool dumping the mirror view) cannot close a loop.
  if (serverId === undefined) return undefined;
  const at = chain.indexOf(serverId);
  if (at < 0) return undefined;
  if (at === 0) return `loop: server ${serverId} asked itself for the mirror view`;
  return `loop: server ${serverId} is upstream of this server (chain to the root: ${chain.join(' → ')})`;
}

/**
 * How far this server's store has got in the root datastore's revisions, and when the root server
 * got there (wall clock, ms): the root's own clock at the root, passed down unchanged below it.
 */
export class Watermark {
  revision = 0;
  at = 0;

  /** `rootTime`: when the root reached a revision, as the upstream said (a server of a tier below). */
  constructor(private readonly rootTime?: (revision: number) => number | undefined) {}

  observe(revision: number): void {
    if (!(revision > this.revision)) return;
    this.revision = revision;
    this.at = this.rootTime?.(revision) ?? Date.now();
  }
}

/** What one mirror client has been told of the watermark and the chain. */
export class MirrorTold {
  private revision = -1;

  /** `chain`: the chain the welcome carried. */
  constructor(private chain: readonly string[]) {}

  /** The progress due to a caught-up mirror client: undefined when nothing changed since the last. */
  due(w: Watermark, chain: readonly string[]): ProgressMsg | undefined {
    // The server replaces its chain array when the chain changes: identity is enough.
    const moved = chain !== this.chain;
    if (w.revision === this.revision && !moved) return undefined;
    this.revision = w.revision;
    this.chain = chain;
    return { t: 'progress', revision: String(w.revision), at: w.at, ...(moved ? { chain: [...chain] } : {}) };
  }
}

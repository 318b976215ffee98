// A `node --cpu-prof` profile read for the tools that summarise one: its samples, and for each
// sampled node its call frame and its parent (the profile lists children only).
import { readFileSync } from 'node:fs';

export interface CallFrame { functionName: string; url: string }
interface Node { id: number; callFrame: CallFrame; children?: number[] }

export interface Profile {
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  frame(id: number): CallFrame;
  parent(id: number): number | undefined;
}

export function readProfile(file: string): Profile {
  const p = JSON.parse(readFileSync(file, 'utf8')) as { nodes: Node[]; samples: number[]; timeDeltas: number[]; startTime: number };
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parents = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parents.set(c, n.id);
  return { samples: p.samples, timeDeltas: p.timeDeltas, startTime: p.startTime, frame: (id) => byId.get(id)!.callFrame, parent: (id) => parents.get(id) };
}

/** A frame as the tools print it: the function and the last two parts of its file's path. */
export const frameName = (f: CallFrame): string => `${f.functionName || '(anonymous)'} ${f.url.split('/').slice(-2).join('/')}`.trim();

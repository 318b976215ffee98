// Loads Calico resources from YAML or JSON files (a file, or every *.yaml/*.yml/*.json in a
// directory, in name order). A document may be one resource or a `kind: List` of them.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { BLOCK_AFFINITY, IPAM_BLOCK, keyForResource } from '../model/kinds.js';

export interface SeedResource { key: string; value: Record<string, unknown> }

export class SeedError extends Error {}

export function loadResources(paths: readonly string[]): SeedResource[] {
  const out: SeedResource[] = [];
  for (const p of paths) for (const file of filesOf(p)) out.push(...loadFile(file));
  return out;
}

function filesOf(p: string): string[] {
  let st;
  try { st = statSync(p); } catch { throw new SeedError(`seed path ${p} does not exist`); }
  if (!st.isDirectory()) return [p];
  return readdirSync(p).filter((f) => /\.(ya?ml|json)$/.test(f)).sort().map((f) => join(p, f));
}

function loadFile(file: string): SeedResource[] {
  const text = readFileSync(file, 'utf8');
  const docs: unknown[] = [];
  if (file.endsWith('.json')) {
    try { docs.push(JSON.parse(text)); } catch (err) { throw new SeedError(`${file}: ${(err as Error).message}`); }
  } else {
    for (const d of parseAllDocuments(text)) {
      if (d.errors.length) throw new SeedError(`${file}: ${d.errors[0]!.message}`);
      const v = d.toJS();
      if (v !== null && v !== undefined) docs.push(v);
    }
  }
  const out: SeedResource[] = [];
  const add = (doc: any, where: string) => {
    if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new SeedError(`${where}: not a resource object`);
    if (doc.kind === 'List' || doc.kind?.endsWith?.('List')) {
      if (!Array.isArray(doc.items)) throw new SeedError(`${where}: a List without items`);
      doc.items.forEach((it: unknown, i: number) => add(it, `${where} item ${i}`));
      return;
    }
    try {
      // IPAM documents are stored as Calico's etcd datastore stores them: the model, not a resource.
      const value = doc.kind === IPAM_BLOCK ? doc.spec : doc.kind === BLOCK_AFFINITY ? affinityModel(doc.spec) : doc;
      out.push({ key: keyForResource(doc), value });
    } catch (err) {
      throw new SeedError(`${where}: ${(err as Error).message}`);
    }
  };
  docs.forEach((d, i) => add(d, `${file} document ${i + 1}`));
  return out;
}

/**
 * A BlockAffinity document's spec as Calico stores it under /calico/ipam/v2/host/...:
 * `{state, deleted: bool}`, where the CRD's `deleted` is a string read as a Go boolean.
 */
function affinityModel(spec: any): { state: string; deleted: boolean } {
  const state = spec?.state ?? '';
  if (typeof state !== 'string') throw new Error('BlockAffinity spec.state is not a string');
  const d = spec?.deleted ?? false;
  const deleted = typeof d === 'boolean' ? d : GO_BOOL[String(d)];
  if (deleted === undefined) throw new Error(`BlockAffinity spec.deleted ${JSON.stringify(d)} is not a boolean`);
  return { state, deleted };
}

/** Go's boolean spellings, with "" as false (Calico parses only a non-empty string). */
const GO_BOOL: Record<string, boolean> = Object.fromEntries([
  ...['1', 't', 'T', 'TRUE', 'true', 'True'].map((s) => [s, true] as const),
  ...['', '0', 'f', 'F', 'FALSE', 'false', 'False'].map((s) => [s, false] as const),
]);

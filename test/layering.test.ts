// The house's one-way rule, checked on the import statements of the product's sources (type-only
// and dynamic imports included): data flows datastore → dedupe → snapshot → server → client, each
// stage imports only earlier ones and the foundation (src/), only cmd/ knows every stage, and no
// file imports itself back through others.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const FOLDERS = ['src', 'dedupe', 'snapshot', 'server', 'client', 'cmd'];

function tsFiles(dir: string): string[] {
  return readdirSync(join(ROOT, dir)).flatMap((name) => {
    const rel = `${dir}/${name}`;
    if (statSync(join(ROOT, rel)).isDirectory()) return tsFiles(rel);
    return name.endsWith('.ts') && !name.endsWith('.d.ts') ? [rel] : [];
  });
}

interface Import { spec: string; target: string; typeOnly: boolean; dynamic: boolean }

/** Every module a file names in an import, export … from or import(): repo-relative paths for our own files, package names otherwise. */
function importsOf(file: string): Import[] {
  const source = ts.createSourceFile(file, readFileSync(join(ROOT, file), 'utf8'), ts.ScriptTarget.Latest, false);
  const found: Import[] = [];
  const add = (node: ts.Node | undefined, typeOnly: boolean, dynamic: boolean) => {
    if (!node || !ts.isStringLiteralLike(node)) return;
    const spec = node.text;
    const target = spec.startsWith('.') ? relative(ROOT, resolve(ROOT, dirname(file), spec).replace(/\.js$/, '.ts')) : spec;
    found.push({ spec, target, typeOnly, dynamic });
  };
  const walk = (node: ts.Node) => {
    if (ts.isImportDeclaration(node)) {
      const c = node.importClause;
      const allTypes = !!c && (c.isTypeOnly || (!c.name && !!c.namedBindings && ts.isNamedImports(c.namedBindings)
        && c.namedBindings.elements.length > 0 && c.namedBindings.elements.every((e) => e.isTypeOnly)));
      add(node.moduleSpecifier, allTypes, false);
    } else if (ts.isExportDeclaration(node)) {
      const c = node.exportClause;
      const allTypes = node.isTypeOnly || (!!c && ts.isNamedExports(c) && c.elements.length > 0 && c.elements.every((e) => e.isTypeOnly));
      add(node.moduleSpecifier, allTypes, false);
    } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) {
      add(node.arguments[0], false, true);
    }
    ts.forEachChild(node, walk);
  };
  walk(source);
  return found;
}

const FILES = FOLDERS.flatMap(tsFiles);
const GRAPH = new Map(FILES.map((f) => [f, importsOf(f)]));

/** The layer a repo-relative path belongs to. */
function layer(path: string): string {
  if (path.startsWith('src/datastore/')) return 'datastore';
  const top = path.split('/')[0]!;
  return FOLDERS.includes(top) || top === 'bench' || top === 'test' ? top : 'package';
}

// What each layer may import, besides packages and itself.
const ALLOWED: Record<string, string[]> = {
  src: ['datastore'],
  datastore: ['src'],
  dedupe: ['src', 'datastore'],
  snapshot: ['src', 'datastore', 'dedupe'],
  server: ['src', 'datastore', 'dedupe', 'snapshot'],
  // The library agents embed: the foundation's model and protocol, nothing of the server side.
  client: ['src'],
  cmd: ['src', 'datastore', 'dedupe', 'snapshot', 'server', 'client'],
};

test('every stage imports only earlier stages and the foundation; only cmd/ imports every stage', () => {
  const wrong: string[] = [];
  for (const [file, imports] of GRAPH) {
    const from = layer(file);
    for (const { spec, target } of imports) {
      const to = layer(target);
      if (to === 'package' || to === from) continue;
      if (!ALLOWED[from]!.includes(to)) wrong.push(`${file} (${from}) imports ${spec} (${to})`);
    }
  }
  assert.deepEqual(wrong, []);
});

test('the client library loads no datastore client, nor anything of the server side', () => {
  // Only what runs: type-only imports are erased. Discovery loads the Kubernetes client on its
  // first call (a dynamic import): that is the one way an agent pays for it.
  const seen = new Set<string>();
  const packages = new Set<string>();
  const visit = (file: string) => {
    if (seen.has(file)) return;
    seen.add(file);
    for (const { spec, target, typeOnly, dynamic } of GRAPH.get(file) ?? []) {
      if (typeOnly || dynamic) continue;
      if (layer(target) === 'package') packages.add(spec);
      else visit(target);
    }
  };
  for (const f of FILES.filter((f) => f.startsWith('client/'))) visit(f);
  assert.deepEqual([...seen].filter((f) => layer(f) !== 'client' && layer(f) !== 'src'), []);
  assert.deepEqual([...packages].filter((p) => /kubernetes|etcd3|grpc|prom-client|pino|commander/.test(p)), []);
});

test('no import cycles between files', () => {
  const cycles: string[] = [];
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (file: string) => {
    state.set(file, 'open');
    stack.push(file);
    for (const { target } of GRAPH.get(file) ?? []) {
      if (!GRAPH.has(target)) continue;
      const s = state.get(target);
      if (s === 'open') cycles.push([...stack.slice(stack.indexOf(target)), target].join(' → '));
      else if (s === undefined) visit(target);
    }
    stack.pop();
    state.set(file, 'done');
  };
  for (const f of GRAPH.keys()) if (!state.has(f)) visit(f);
  assert.deepEqual(cycles, []);
});

test('the check sees the imports it is meant to see', () => {
  // A parse that found nothing would pass everything above.
  assert.ok(FILES.includes('cmd/app.ts') && FILES.includes('client/index.ts'));
  assert.ok(GRAPH.get('cmd/app.ts')!.some((i) => i.target === 'server/server.ts'));
  assert.ok(GRAPH.get('server/server.ts')!.some((i) => i.target === 'server/connection.ts'));
  assert.equal(layer('src/datastore/etcd.ts'), 'datastore');
});

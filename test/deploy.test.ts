// The in-cluster deployment (deploy/base, its overlays deploy/overlays/kubernetes,
// deploy/overlays/etcd and deploy/overlays/downstream (a tier below) as `kubectl kustomize` renders them, Dockerfile, .dockerignore) checked
// against the code it deploys: ports and settings against src/config.ts, probe paths against the health handler of
// server/http-endpoints.ts, RBAC against the collections the Kubernetes adapter watches
// (WATCHED_RESOURCES) and against the server itself (started with the Deployment's settings, behind
// an API front that enforces only our ClusterRole, it must answer /readyz 200 with nothing denied),
// the image against what `npm start` runs and what the code imports. No cluster and no Docker
// engine here: the base's files and each overlay's rendering are checked as data, the Dockerfile
// by its structure; without kubectl the overlays' checks are skipped and say why. Every check is
// also run against deliberately broken copies, which it must reject.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, request, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { isBuiltin } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { parseAllDocuments } from 'yaml';
import { healthHandler, type Readiness } from '../server/http-endpoints.js';
import { startApp } from '../cmd/app.js';
import { envName, loadConfig, SETTINGS } from '../src/config.js';
import { V3 } from '../src/datastore/kubernetes/api-group.js';
import { WATCHED_RESOURCES, watchedResources } from '../src/datastore/kubernetes/resources.js';
import { PRODUCTION_V8_FLAGS } from '../bench/lib/procs.js';
import { silentLogger } from '../src/logging.js';
import { startKubeApi, type KubeApiServer } from './support/kube-api.js';
import { asV3Crds, cluster, load } from './support/kube-cluster.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const DEPLOY = join(ROOT, 'deploy');
const BASE = join(DEPLOY, 'base');
/** Each overlay and the datastore it runs on (downstream: a tier below the root, README "Tiers"). */
const OVERLAYS = { kubernetes: 'kubernetes', etcd: 'etcdv3', downstream: 'upstream' } as const;
type OverlayName = keyof typeof OVERLAYS;
const PKG = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));

const NAMESPACE = 'calico-system';
const APP = 'calico-fanout';
/** The app (and the name of everything) of a bundle: the tier below has its own. */
const appOf = (b: { overlay?: { name: string } }): string => (b.overlay?.name === 'downstream' ? `${APP}-downstream` : APP);
/** What each manifest file holds: one concern per file. */
const FILE_KINDS: Record<string, string[]> = {
  'serviceaccount.yaml': ['ServiceAccount'],
  'rbac.yaml': ['ClusterRole', 'ClusterRoleBinding'],
  'deployment.yaml': ['Deployment'],
  'service.yaml': ['Service'],
  'poddisruptionbudget.yaml': ['PodDisruptionBudget'],
  'networkpolicy.yaml': ['NetworkPolicy'],
};
/** Files in deploy/ that kustomization.yaml deliberately leaves out (opt-in). */
const OPTIONAL = new Set(['networkpolicy.yaml']);
const API_VERSIONS: Record<string, string> = {
  ServiceAccount: 'v1',
  ClusterRole: 'rbac.authorization.k8s.io/v1',
  ClusterRoleBinding: 'rbac.authorization.k8s.io/v1',
  Deployment: 'apps/v1',
  Service: 'v1',
  PodDisruptionBudget: 'policy/v1',
  NetworkPolicy: 'networking.k8s.io/v1',
};
const CLUSTER_SCOPED = new Set(['ClusterRole', 'ClusterRoleBinding']);
/** Environment variables that are not calico-fanout settings, each with its reason. */
const NOT_SETTINGS: Record<string, string> = { NODE_OPTIONS: 'caps the V8 heap below the memory limit and the young generation' };
const VERBS = ['get', 'list', 'watch'];
/** The health paths the probes must use (served by healthHandler, checked below). */
const LIVEZ = '/livez';
const READYZ = '/readyz';
/** The server's defaults: the container ports must be these. */
const DEFAULTS = loadConfig({ env: {} });

type Obj = Record<string, any>;

interface Bundle {
  /**
   * deploy/base/*.yaml except kustomization.yaml: file name -> its documents; for an overlay, its
   * rendering under 'rendered' (plus the base's opt-in files, as they would apply beside it).
   */
  manifests: Map<string, Obj[]>;
  /** The same files' text (for their comments). */
  texts: Map<string, string>;
  kustomization: Obj;
  kustomizationText: string;
  dockerfile: string;
  dockerignore: string;
  /** Set for a rendered overlay: which, and the datastore it must configure. */
  overlay?: { name: OverlayName; datastore: string };
}

function parseYamlFile(path: string): Obj[] {
  const docs = parseAllDocuments(readFileSync(path, 'utf8'));
  assert.ok(Array.isArray(docs), `${path}: not YAML documents`);
  return docs.map((d, i) => {
    assert.deepEqual(d.errors.map(String), [], `${path} document ${i}: YAML errors`);
    assert.deepEqual(d.warnings.map(String), [], `${path} document ${i}: YAML warnings`);
    const js = d.toJS();
    assert.ok(js && typeof js === 'object' && !Array.isArray(js), `${path} document ${i} is not a mapping`);
    return js as Obj;
  });
}

function loadBundle(): Bundle {
  const manifests = new Map<string, Obj[]>();
  const texts = new Map<string, string>();
  for (const f of readdirSync(BASE).sort()) {
    if (f === 'kustomization.yaml') continue;
    assert.ok(f.endsWith('.yaml'), `deploy/base/${f}: only .yaml files belong in deploy/base/`);
    manifests.set(f, parseYamlFile(join(BASE, f)));
    texts.set(f, readFileSync(join(BASE, f), 'utf8'));
  }
  const [kustomization, ...more] = parseYamlFile(join(BASE, 'kustomization.yaml'));
  assert.equal(more.length, 0, 'kustomization.yaml: one document');
  return {
    manifests, texts, kustomization: kustomization!,
    kustomizationText: readFileSync(join(BASE, 'kustomization.yaml'), 'utf8'),
    dockerfile: readFileSync(join(ROOT, 'Dockerfile'), 'utf8'),
    dockerignore: readFileSync(join(ROOT, '.dockerignore'), 'utf8'),
  };
}

// kubectl (Debian's kubernetes-client) renders the overlays; scripts/ensure-kubectl.sh installs it
// when it is missing and may, and the overlays' checks are skipped only when it is still absent.
const kubectlMissing: string | false = (() => {
  spawnSync('bash', [join(ROOT, 'scripts/ensure-kubectl.sh')], { stdio: ['ignore', 'ignore', 'inherit'] });
  const probe = spawnSync('kubectl', ['version', '--client'], { encoding: 'utf8' });
  return probe.error || probe.status !== 0 ? `kubectl is not installed (scripts/ensure-kubectl.sh could not install kubernetes-client): ${probe.error?.message ?? probe.stderr}` : false;
})();
if (kubectlMissing) console.error(`# skipping the overlay tests: ${kubectlMissing}`);

/** `kubectl kustomize <dir>`: the documents it renders. */
function kustomize(dir: string): Obj[] {
  const out = spawnSync('kubectl', ['kustomize', dir], { encoding: 'utf8' });
  assert.equal(out.status, 0, `kubectl kustomize ${relative(ROOT, dir)} failed: ${out.stderr}`);
  return parseAllDocuments(out.stdout).map((d) => d.toJS() as Obj);
}

/**
 * The base's opt-in files as an overlay would render them once added to the base (in a copy of
 * deploy/): the tier below renames and relabels them.
 */
function optInRendered(name: OverlayName): Obj[] {
  const tmp = mkdtempSync(join(tmpdir(), 'calico-fanout-deploy-'));
  try {
    cpSync(DEPLOY, join(tmp, 'deploy'), { recursive: true });
    const k = join(tmp, 'deploy', 'base', 'kustomization.yaml');
    writeFileSync(k, readFileSync(k, 'utf8').replace(/^resources:\n/m, `resources:\n${[...OPTIONAL].map((f) => `  - ${f}\n`).join('')}`));
    const kinds = new Set([...OPTIONAL].flatMap((f) => FILE_KINDS[f]!));
    return kustomize(join(tmp, 'deploy', 'overlays', name)).filter((d) => kinds.has(d.kind));
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** An overlay as kustomize renders it, with the base's opt-in files beside it. */
function renderBundle(base: Bundle, name: OverlayName): Bundle {
  const dir = join(DEPLOY, 'overlays', name);
  const [kustomization, ...more] = parseYamlFile(join(dir, 'kustomization.yaml'));
  assert.equal(more.length, 0, `overlays/${name}/kustomization.yaml: one document`);
  const manifests = new Map<string, Obj[]>([['rendered', kustomize(dir)]]);
  const optIn = optInRendered(name);
  for (const f of OPTIONAL) manifests.set(f, optIn.filter((d) => FILE_KINDS[f]!.includes(d.kind)));
  assert.ok(base.manifests.has('networkpolicy.yaml'));
  return {
    manifests, texts: new Map(), kustomization: kustomization!, kustomizationText: readFileSync(join(dir, 'kustomization.yaml'), 'utf8'),
    dockerfile: base.dockerfile, dockerignore: base.dockerignore, overlay: { name, datastore: OVERLAYS[name] },
  };
}

// ---- helpers -------------------------------------------------------------------------------

const allDocs = (b: Bundle): Obj[] => [...b.manifests.values()].flat();

function the(b: Bundle, kind: string): Obj {
  const found = allDocs(b).filter((d) => d.kind === kind);
  assert.equal(found.length, 1, `exactly one ${kind} in deploy/ (found ${found.length})`);
  return found[0]!;
}

const deployment = (b: Bundle): Obj => the(b, 'Deployment');
const podSpec = (b: Bundle): Obj => deployment(b).spec?.template?.spec ?? {};
const podLabels = (b: Bundle): Record<string, string> => deployment(b).spec?.template?.metadata?.labels ?? {};

function container(b: Bundle): Obj {
  const cs = podSpec(b).containers;
  assert.ok(Array.isArray(cs) && cs.length === 1, 'the Deployment runs exactly one container');
  return cs[0];
}

/** A container port referenced by number or name, as its number (fails if the container has no such port). */
function containerPort(b: Bundle, ref: unknown, what: string): number {
  const ports: Obj[] = container(b).ports ?? [];
  const hit = ports.find((p) => (typeof ref === 'string' ? p.name === ref : p.containerPort === ref));
  assert.ok(hit, `${what}: ${JSON.stringify(ref)} is not a port of the container`);
  return hit.containerPort;
}

function namedPort(b: Bundle, name: string): Obj {
  const hit = (container(b).ports ?? []).find((p: Obj) => p.name === name);
  assert.ok(hit, `the container has a port named ${name}`);
  return hit;
}

/** The selector selects the labels: every key of the selector with the same value. */
function selects(selector: Record<string, string> | undefined, labels: Record<string, string>, what: string): void {
  assert.ok(selector && Object.keys(selector).length > 0, `${what}: a non-empty selector`);
  for (const [k, v] of Object.entries(selector)) assert.equal(labels[k], v, `${what}: selector ${k}=${v} must match the pod labels`);
}

/**
 * The Deployment's container environment as name -> value, as the pod would see it in NAMESPACE
 * (the one reference resolved: the downward API's metadata.namespace).
 */
function deploymentEnv(b: Bundle): Record<string, string> {
  const out: Record<string, string> = {};
  for (const e of container(b).env ?? []) {
    assert.equal(typeof e.name, 'string', 'env: every entry has a name');
    assert.ok(!(e.name in out), `env ${e.name} is set twice`);
    if (e.valueFrom !== undefined) {
      assert.equal(e.value, undefined, `env ${e.name}: value or valueFrom, not both`);
      assert.deepEqual(e.valueFrom, { fieldRef: { fieldPath: 'metadata.namespace' } }, `env ${e.name}: the only reference this check resolves is the pod's namespace`);
      out[e.name] = NAMESPACE;
      continue;
    }
    assert.equal(typeof e.value, 'string', `env ${e.name}: Kubernetes needs the value as a string (quote numbers and booleans)`);
    out[e.name] = e.value;
  }
  return out;
}

const typhaEnv = (env: Record<string, string>) => Object.fromEntries(Object.entries(env).filter(([k]) => k.startsWith('TYPHA_')));

/** A Kubernetes quantity as a number (cores, bytes). */
function quantity(q: unknown, what: string): number {
  const m = /^(\d+(?:\.\d+)?)(m|k|M|G|T|Ki|Mi|Gi|Ti)?$/.exec(String(q));
  assert.ok(m, `${what}: ${JSON.stringify(q)} is not a quantity`);
  const mult: Record<string, number> = { '': 1, m: 1e-3, k: 1e3, M: 1e6, G: 1e9, T: 1e12, Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40 };
  return Number(m[1]) * mult[m[2] ?? '']!;
}

/** (group, resource) of a cluster-wide collection path: '' for /api/v1, else the segment after /apis/. */
function groupResource(path: string): string {
  const core = /^\/api\/v1\/([a-z0-9]+)$/.exec(path);
  if (core) return `/${core[1]}`;
  const named = /^\/apis\/([a-z0-9.-]+)\/[a-z0-9]+\/([a-z0-9]+)$/.exec(path);
  assert.ok(named, `WATCHED_RESOURCES path ${path} is not a cluster-wide collection path`);
  return `${named[1]}/${named[2]}`;
}

/** What the ClusterRole must grant: group/resource for every watched collection, plus EndpointSlices. */
function expectedGrants(): string[] {
  // Calico's resources in either API group: which one a cluster serves is discovered at run time.
  const watched = [...WATCHED_RESOURCES, ...watchedResources(V3)];
  return [...new Set([...watched.map((r) => groupResource(r.path)), 'discovery.k8s.io/endpointslices'])].sort();
}

/** The union of the ClusterRoles' rules (one bound to our ServiceAccount each, checkRbac checks). */
const rulesOf = (b: Bundle): Obj[] => allDocs(b).filter((d) => d.kind === 'ClusterRole').flatMap((d) => d.rules);

/**
 * What the ClusterRoles must grant: the Kubernetes datastore's collections for its overlay, and
 * EndpointSlices wherever rebalancing finds the replicas through the Service (every overlay).
 */
function expectedGrantsFor(b: Bundle): string[] {
  if (b.overlay?.datastore === 'kubernetes') return expectedGrants();
  return deploymentEnv(b).TYPHA_CONNECTIONREBALANCINGMODE === 'kubernetes' ? ['discovery.k8s.io/endpointslices'] : [];
}

/** Status the server's health handler answers for a path (false when it does not serve the path). */
async function healthStatus(path: string, state: { ready: boolean; stuck?: string }): Promise<number | false> {
  let status = 0;
  const res = { writeHead(code: number) { status = code; return res; }, end() { return res; } };
  const readiness: Readiness = { notLive: () => state.stuck, ready: () => state.ready, detail: () => ({}), view: () => ({}) };
  const handled = await healthHandler(readiness)({ url: path } as IncomingMessage, res as unknown as ServerResponse);
  return handled ? status : false;
}

// ---- the Dockerfile --------------------------------------------------------------------------

interface Instruction { op: string; args: string }

function dockerInstructions(text: string): Instruction[] {
  const out: Instruction[] = [];
  let cur = '';
  for (const raw of text.split('\n')) {
    const line = raw.trimEnd();
    if (/^\s*#/.test(line)) continue; // comments, also inside a continued instruction
    if (line.endsWith('\\')) { cur += line.slice(0, -1) + ' '; continue; }
    cur += line;
    if (cur.trim()) {
      const m = /^\s*(\w+)\s+([\s\S]*)$/.exec(cur);
      assert.ok(m, `Dockerfile: cannot parse ${JSON.stringify(cur)}`);
      out.push({ op: m[1]!.toUpperCase(), args: m[2]!.trim() });
    }
    cur = '';
  }
  return out;
}

/** Instructions grouped per stage (each starts with its FROM). */
function dockerStages(text: string): Instruction[][] {
  const stages: Instruction[][] = [];
  for (const i of dockerInstructions(text)) {
    if (i.op === 'FROM') stages.push([i]);
    else if (stages.length) stages.at(-1)!.push(i);
    else assert.ok(i.op === 'ARG', `Dockerfile: ${i.op} before the first FROM`);
  }
  return stages;
}

function execForm(stage: Instruction[], op: string): string[] {
  const found = stage.filter((i) => i.op === op);
  assert.ok(found.length >= 1, `Dockerfile runtime stage: ${op} is set`);
  let parsed: unknown;
  try { parsed = JSON.parse(found.at(-1)!.args); } catch { assert.fail(`Dockerfile: ${op} must be in exec (JSON array) form, so signals reach node`); }
  assert.ok(Array.isArray(parsed) && parsed.every((x) => typeof x === 'string'), `Dockerfile: ${op} is a JSON array of strings`);
  return parsed as string[];
}

interface Copy { from?: string; sources: string[]; dest: string }

function copies(stage: Instruction[]): Copy[] {
  return stage.filter((i) => i.op === 'COPY' || i.op === 'ADD').map((i) => {
    const words = i.args.split(/\s+/);
    const flags = words.filter((w) => w.startsWith('--'));
    const rest = words.filter((w) => !w.startsWith('--'));
    assert.ok(rest.length >= 2, `Dockerfile: ${i.op} ${i.args} needs a source and a destination`);
    const from = flags.find((f) => f.startsWith('--from='))?.slice('--from='.length);
    return { from, sources: rest.slice(0, -1).map((s) => s.replace(/^\.\//, '').replace(/\/$/, '')), dest: rest.at(-1)! };
  });
}

/** .dockerignore patterns as matchers of context-relative paths. */
function ignoreMatchers(text: string): { pattern: string; re: RegExp }[] {
  return text.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#')).map((p) => {
    assert.ok(!p.startsWith('!'), `.dockerignore: exceptions (${p}) are not supported by this check; list what to leave out instead`);
    const clean = p.replace(/^\.?\//, '').replace(/\/$/, '');
    const re = clean.split('/').map((seg) => seg === '**' ? '.*' : seg.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*').replace(/\?/g, '[^/]')).join('/');
    return { pattern: p, re: new RegExp(`^${re}$`) };
  });
}

/** Every file under a repository path (itself if a file). */
function filesUnder(rel: string): string[] {
  const abs = join(ROOT, rel);
  if (!existsSync(abs)) return [];
  if (!statSync(abs).isDirectory()) return [rel];
  return readdirSync(abs).flatMap((f) => filesUnder(rel ? `${rel}/${f}` : f));
}

interface RuntimeNeeds {
  /** Repository-relative files and directories the server loads at run time. */
  paths: Set<string>;
  /** npm packages it imports. */
  packages: Set<string>;
}

let runtimeNeedsCache: RuntimeNeeds | undefined;

/**
 * What `calico-fanout serve` loads: the import graph from the package's bin (static value
 * imports, re-exports, string-literal dynamic imports; type-only imports are erased) plus the
 * files it opens relative to its modules (`new URL('...', import.meta.url)`), read with the
 * TypeScript parser.
 */
function runtimeNeeds(): RuntimeNeeds {
  if (runtimeNeedsCache) return runtimeNeedsCache;
  const paths = new Set<string>();
  const packages = new Set<string>();
  const bin = PKG.bin?.['calico-fanout'];
  assert.equal(typeof bin, 'string', 'package.json bin names calico-fanout');
  // Node reads "type": "module" from package.json to load bin/ as ESM; version.ts reads the version.
  paths.add('package.json');
  const queue = [join(ROOT, bin)];
  const seen = new Set<string>();
  // bin/ runs the compiled code: a file of dist/ stands for its source (dist/ mirrors the sources),
  // and what the sources import is needed as part of dist/, not as a source file.
  const compiled = new Set<string>();
  const resolveModule = (from: string, spec: string): string => {
    const base = resolve(dirname(from), spec);
    const candidates = [base, base.replace(/\.js$/, '.ts'), `${base}.ts`, join(base, 'index.ts')];
    const hit = candidates.find((c) => existsSync(c) && statSync(c).isFile());
    assert.ok(hit, `${relative(ROOT, from)}: import ${JSON.stringify(spec)} does not resolve to a file`);
    return hit;
  };
  while (queue.length) {
    const file = queue.pop()!;
    if (seen.has(file)) continue;
    seen.add(file);
    paths.add(compiled.has(file) ? 'dist' : relative(ROOT, file).split(sep).join('/'));
    const sf = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true);
    const onSpecifier = (spec: string) => {
      if (spec.startsWith('.')) {
        const target = resolveModule(file, spec);
        if (compiled.has(file)) compiled.add(target);
        queue.push(target);
        return;
      }
      if (isBuiltin(spec)) return;
      const name = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!;
      if (name === PKG.name) paths.add('dist'); // a self-reference resolves through package.json exports
      else packages.add(name);
    };
    const visit = (n: ts.Node): void => {
      if (ts.isImportDeclaration(n) && ts.isStringLiteral(n.moduleSpecifier)) {
        const c = n.importClause;
        const typeOnly = c && (c.isTypeOnly || (!c.name && c.namedBindings && ts.isNamedImports(c.namedBindings)
          && c.namedBindings.elements.length > 0 && c.namedBindings.elements.every((e) => e.isTypeOnly)));
        if (!typeOnly) onSpecifier(n.moduleSpecifier.text);
      } else if (ts.isExportDeclaration(n) && n.moduleSpecifier && ts.isStringLiteral(n.moduleSpecifier)) {
        if (!n.isTypeOnly) onSpecifier(n.moduleSpecifier.text);
      } else if (ts.isCallExpression(n) && n.expression.kind === ts.SyntaxKind.ImportKeyword) {
        const [arg] = n.arguments;
        if (arg && ts.isStringLiteralLike(arg)) onSpecifier(arg.text);
      } else if (ts.isNewExpression(n) && ts.isIdentifier(n.expression) && n.expression.text === 'URL') {
        const [spec, base] = n.arguments ?? [];
        if (spec && base && ts.isStringLiteralLike(spec) && spec.text.startsWith('.') && base.getText(sf) === 'import.meta.url') {
          const target = resolve(dirname(file), spec.text);
          const rel = relative(ROOT, target).split(sep).join('/');
          if (rel.startsWith('dist/') && rel.endsWith('.js')) {
            // The compiled code bin/ runs: follow its sources.
            const source = join(ROOT, rel.slice('dist/'.length).replace(/\.js$/, '.ts'));
            assert.ok(existsSync(source), `${relative(ROOT, file)}: ${rel} has no source`);
            compiled.add(source);
            queue.push(source);
            paths.add('dist');
          // The bench harness is optional at run time (a clone's, run through tsx): not in the image.
          // version.ts and config.ts try two locations (from src/ and dist/src/); only existing ones count.
          } else if (!rel.startsWith('bench/') && existsSync(target)) paths.add(rel);
        }
      }
      ts.forEachChild(n, visit);
    };
    visit(sf);
  }
  runtimeNeedsCache = { paths, packages };
  return runtimeNeedsCache;
}

// ---- the checks ------------------------------------------------------------------------------

function checkWellFormed(b: Bundle): void {
  if (!b.overlay) assert.deepEqual([...b.manifests.keys()].sort(), Object.keys(FILE_KINDS).sort(), 'deploy/base holds one file per concern');
  const dns1123 = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
  for (const [file, docs] of b.manifests) {
    if (!b.overlay) assert.deepEqual(docs.map((d) => d.kind), FILE_KINDS[file], `deploy/base/${file}: its kinds`);
    for (const d of docs) {
      const what = b.overlay ? `overlays/${b.overlay.name} ${d.kind} ${d.metadata?.name}` : `deploy/base/${file} ${d.kind}`;
      assert.equal(d.apiVersion, API_VERSIONS[d.kind], `${what}: apiVersion`);
      assert.equal(typeof d.metadata?.name, 'string', `${what}: metadata.name`);
      assert.match(d.metadata.name, dns1123, `${what}: metadata.name is a DNS-1123 name`);
      if (CLUSTER_SCOPED.has(d.kind)) assert.equal(d.metadata.namespace, undefined, `${what}: cluster-scoped, no namespace`);
      else assert.equal(d.metadata.namespace, NAMESPACE, `${what}: namespace`);
      assert.equal(d.metadata.labels?.app, appOf(b), `${what}: label app=${appOf(b)}`);
      for (const meta of [d.metadata, d.spec?.template?.metadata ?? {}]) {
        for (const field of ['labels', 'annotations']) {
          for (const [k, v] of Object.entries(meta[field] ?? {})) assert.equal(typeof v, 'string', `${what}: ${field} ${k} must be a string`);
        }
      }
      switch (d.kind) {
        case 'Deployment': {
          selects(d.spec?.selector?.matchLabels, d.spec?.template?.metadata?.labels ?? {}, `${what} spec.selector`);
          const cs = d.spec?.template?.spec?.containers;
          assert.ok(Array.isArray(cs) && cs.length > 0, `${what}: containers`);
          for (const c of cs) {
            assert.match(String(c.name), /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, `${what}: container name`);
            assert.ok(typeof c.image === 'string' && c.image.length > 0, `${what}: container image`);
          }
          break;
        }
        case 'Service': {
          assert.ok(Array.isArray(d.spec?.ports) && d.spec.ports.length > 0, `${what}: ports`);
          for (const p of d.spec.ports) {
            assert.ok(Number.isInteger(p.port) && p.port > 0 && p.port < 65536, `${what}: port number`);
            if (d.spec.ports.length > 1) assert.equal(typeof p.name, 'string', `${what}: ports need names when there are several`);
          }
          assert.ok(d.spec.selector && Object.keys(d.spec.selector).length > 0, `${what}: selector`);
          break;
        }
        case 'PodDisruptionBudget':
          assert.ok(d.spec?.selector?.matchLabels && Object.keys(d.spec.selector.matchLabels).length > 0, `${what}: selector`);
          assert.equal([d.spec.minAvailable, d.spec.maxUnavailable].filter((x) => x !== undefined).length, 1, `${what}: exactly one of minAvailable, maxUnavailable`);
          break;
        case 'ClusterRole':
          assert.ok(Array.isArray(d.rules) && d.rules.length > 0, `${what}: rules`);
          for (const r of d.rules) for (const f of ['apiGroups', 'resources', 'verbs']) assert.ok(Array.isArray(r[f]) && r[f].length > 0, `${what}: every rule has ${f}`);
          break;
        case 'ClusterRoleBinding':
          assert.ok(d.roleRef?.apiGroup && d.roleRef?.kind && d.roleRef?.name, `${what}: roleRef`);
          assert.ok(Array.isArray(d.subjects) && d.subjects.length > 0 && d.subjects.every((s: Obj) => s.kind && s.name), `${what}: subjects`);
          break;
        case 'NetworkPolicy':
          assert.ok(d.spec?.podSelector && typeof d.spec.podSelector === 'object', `${what}: podSelector`);
          break;
      }
    }
  }
}

function checkKustomization(b: Bundle): void {
  if (b.overlay) { checkOverlayKustomization(b); return; }
  const k = b.kustomization;
  assert.equal(k.apiVersion, 'kustomize.config.k8s.io/v1beta1', 'kustomization apiVersion');
  assert.equal(k.kind, 'Kustomization', 'kustomization kind');
  assert.equal(k.namespace, NAMESPACE, 'kustomization namespace');
  const want = [...b.manifests.keys()].filter((f) => !OPTIONAL.has(f)).sort();
  assert.deepEqual([...(k.resources ?? [])].sort(), want, 'kustomization lists every manifest but the optional ones');
  for (const f of OPTIONAL) {
    const header = (b.texts.get(f) ?? '').split('\napiVersion:')[0]!;
    assert.match(header, /optional/i, `deploy/${f}: its header says it is optional`);
    assert.match(b.kustomizationText, new RegExp(`#.*${f.replace('.', '\\.')}`), `kustomization.yaml mentions the optional ${f} in a comment`);
  }
  // One image, tagged with the package version, and kustomize's images entry naming it.
  const [name, tag] = String(container(b).image).split(':');
  assert.equal(tag, PKG.version, 'the container image tag is the package version');
  const entry = (k.images ?? []).find((i: Obj) => i.name === name);
  assert.ok(entry, `kustomization images has an entry for ${name}`);
  assert.equal(String(entry.newTag), PKG.version, 'kustomization images newTag is the package version');
}

/** An overlay builds on the base, in the same namespace, and renders the base's image and every kind it has. */
function checkOverlayKustomization(b: Bundle): void {
  const k = b.kustomization;
  const name = b.overlay!.name;
  assert.equal(k.apiVersion, 'kustomize.config.k8s.io/v1beta1', `overlays/${name}: kustomization apiVersion`);
  assert.equal(k.kind, 'Kustomization', `overlays/${name}: kustomization kind`);
  assert.equal(k.namespace, NAMESPACE, `overlays/${name}: kustomization namespace`);
  assert.ok((k.resources ?? []).includes('../../base'), `overlays/${name} builds on ../../base`);
  const rendered = b.manifests.get('rendered') ?? [];
  const kinds = new Set(rendered.map((d) => d.kind));
  for (const [f, ks] of Object.entries(FILE_KINDS)) {
    if (OPTIONAL.has(f)) continue;
    for (const kind of ks) assert.ok(kinds.has(kind), `overlays/${name} renders the base's ${kind}`);
  }
  for (const f of OPTIONAL) for (const kind of FILE_KINDS[f]!) assert.ok(!rendered.some((d) => d.kind === kind), `overlays/${name} leaves the optional ${f} out`);
  assert.equal(container(b).image, `calico-fanout:${PKG.version}`, `overlays/${name}: the image tagged with the package version`);
}

function checkRbac(b: Bundle): void {
  const roles = allDocs(b).filter((d) => d.kind === 'ClusterRole');
  const bindings = allDocs(b).filter((d) => d.kind === 'ClusterRoleBinding');
  assert.ok(roles.length > 0, 'a ClusterRole');
  const granted = new Set<string>();
  for (const role of roles) {
    assert.equal(role.aggregationRule, undefined, `ClusterRole ${role.metadata.name}: no aggregation`);
    for (const r of role.rules) {
      assert.deepEqual([...r.verbs].sort(), VERBS, `ClusterRole rule ${JSON.stringify(r.resources)}: verbs exactly get, list, watch`);
      assert.equal(r.nonResourceURLs, undefined, 'ClusterRole: no nonResourceURLs');
      assert.equal(r.resourceNames, undefined, 'ClusterRole: no resourceNames');
      for (const g of r.apiGroups) {
        assert.notEqual(g, '*', 'ClusterRole: no wildcard apiGroups');
        for (const res of r.resources) {
          assert.ok(res !== '*' && !res.includes('/'), `ClusterRole: ${res}: no wildcards, no subresources`);
          granted.add(`${g}/${res}`);
        }
      }
    }
  }
  const datastore = b.overlay?.datastore ?? 'none (the base leaves it to an overlay)';
  assert.deepEqual([...granted].sort(), expectedGrantsFor(b), `the ClusterRoles grant exactly what the ${datastore} datastore and rebalancing read`);

  // Every role is bound to our ServiceAccount, and nothing else is bound.
  const sa = the(b, 'ServiceAccount');
  for (const role of roles) {
    const binding = bindings.find((x) => x.roleRef?.name === role.metadata.name);
    assert.ok(binding, `ClusterRole ${role.metadata.name} is bound`);
    assert.deepEqual(binding.roleRef, { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: role.metadata.name }, 'ClusterRoleBinding roleRef');
  }
  for (const binding of bindings) {
    assert.ok(roles.some((r) => r.metadata.name === binding.roleRef?.name), `ClusterRoleBinding ${binding.metadata.name} binds one of our ClusterRoles`);
    assert.deepEqual(binding.subjects, [{ kind: 'ServiceAccount', name: sa.metadata.name, namespace: NAMESPACE }], 'ClusterRoleBinding binds our ServiceAccount only');
  }
  assert.equal(podSpec(b).serviceAccountName, sa.metadata.name, 'the pods run as the ServiceAccount');
  assert.notEqual(sa.automountServiceAccountToken, false, 'the token is mounted (in-cluster configuration)');
  assert.notEqual(podSpec(b).automountServiceAccountToken, false, 'the token is mounted (in-cluster configuration)');
}

/** A file setting's path lies in a read-only Secret volume of the container, readable by its user. */
function checkMountedFile(b: Bundle, name: string, path: string): void {
  const c = container(b);
  const spec = podSpec(b);
  const mount = (c.volumeMounts ?? []).find((m: Obj) => path.startsWith(`${String(m.mountPath).replace(/\/$/, '')}/`));
  assert.ok(mount, `env ${name}: ${path} is not under a volume mount of the container`);
  assert.equal(mount.readOnly, true, `env ${name}: its volume is mounted read-only`);
  const secret = (spec.volumes ?? []).find((v: Obj) => v.name === mount.name)?.secret;
  assert.ok(secret?.secretName, `env ${name}: ${path} is not from a mounted Secret`);
  const rel = path.slice(String(mount.mountPath).replace(/\/$/, '').length + 1);
  const item = (secret.items as Obj[] | undefined)?.find((i) => i.path === rel);
  if (secret.items) assert.ok(item, `env ${name}: the Secret's items have no ${rel}`);
  // Secret files belong to root; a non-root server reads them as "other", or through fsGroup.
  const mode: number = item?.mode ?? secret.defaultMode ?? 0o644;
  const readable = (mode & 0o004) !== 0 || (spec.securityContext?.fsGroup !== undefined && (mode & 0o040) !== 0);
  assert.ok(readable, `env ${name}: ${path} (mode ${mode.toString(8)}) is not readable by the server's user: give the pod an fsGroup and the file group read`);
}

function checkEnv(b: Bundle): void {
  const env = deploymentEnv(b);
  const settings = new Set(SETTINGS.map(envName));
  for (const name of Object.keys(env)) {
    if (name.startsWith('TYPHA_')) assert.ok(settings.has(name), `env ${name} is not a setting of src/config.ts`);
    else assert.ok(name in NOT_SETTINGS, `env ${name} is neither a TYPHA_* setting nor an allowed variable (${Object.keys(NOT_SETTINGS).join(', ')})`);
  }
  // A file setting names a file the pod reads from a mounted Secret; loadConfig gets a stand-in
  // here, as it checks that the file exists.
  const loadable = typhaEnv(env);
  for (const s of SETTINGS) {
    const name = envName(s);
    if (s.kind !== 'file' || !loadable[name]) continue;
    checkMountedFile(b, name, loadable[name]);
    loadable[name] = join(ROOT, 'package.json');
  }
  let config: Record<string, unknown> | undefined;
  try { config = loadConfig({ env: loadable }) as unknown as Record<string, unknown>; } catch (err) { assert.fail(`the Deployment's settings do not load: ${(err as Error).message}`); }
  if (b.overlay) assert.equal(config.datastoreType, b.overlay.datastore, `TYPHA_DATASTORETYPE=${b.overlay.datastore}`);
  else assert.equal(env.TYPHA_DATASTORETYPE, undefined, 'the base leaves TYPHA_DATASTORETYPE to an overlay');
  if (config.datastoreType === 'etcdv3') {
    assert.ok((config.etcdEndpoints as string[]).every((e) => e.startsWith('https://')), 'etcd over TLS: https endpoints');
    for (const f of ['etcdCaFile', 'etcdCertFile', 'etcdKeyFile']) assert.ok(config[f], `etcd over mutual TLS: ${f} set`);
  }
  // A tier below follows the root's Service (never its own), in its namespace, on the client port's name.
  if (config.datastoreType === 'upstream') {
    assert.equal(config.upstreamK8sServiceName, APP, 'the tier below follows the root\'s Service');
    assert.notEqual(config.upstreamK8sServiceName, the(b, 'Service').metadata.name, 'the tier below does not follow its own Service');
    assert.equal(config.upstreamK8sNamespace, NAMESPACE, 'the root\'s Service is in the namespace');
  }
  // The page lists clients' addresses, identities and nodes to whoever reaches the health port.
  assert.equal(config.statusPageEnabled, false, 'the status page is off (TYPHA_STATUSPAGEENABLED=false)');
  assert.equal(config.healthEnabled, true, 'health endpoints enabled');
  assert.equal(config.prometheusMetricsEnabled, true, 'metrics enabled');
  const shutdown = Number(env.TYPHA_SHUTDOWNTIMEOUTSECS);
  assert.ok(Number.isFinite(shutdown) && shutdown > 0, 'TYPHA_SHUTDOWNTIMEOUTSECS is set to a number of seconds');
  assert.equal(config.shutdownTimeoutSecs, shutdown, 'the shutdown timeout loads as set');
  // The ports the server binds with these settings are the container ports.
  assert.equal(config.serverPort, namedPort(b, 'calico-typha').containerPort, 'client port as configured');
  assert.equal(config.healthPort, namedPort(b, 'health').containerPort, 'health port as configured');
  assert.equal(config.prometheusMetricsPort, namedPort(b, 'metrics').containerPort, 'metrics port as configured');
  // Rebalancing finds the replicas through our Service: its name, namespace and port name.
  if (config.connectionRebalancingMode === 'kubernetes') {
    const svc = the(b, 'Service');
    assert.equal(config.k8sServiceName, svc.metadata.name, 'rebalancing reads the EndpointSlices of our Service');
    assert.equal(config.k8sNamespace, svc.metadata.namespace, 'rebalancing looks in the Service\'s namespace');
    assert.ok(svc.spec.ports.some((p: Obj) => p.name === config.k8sPortName), `rebalancing looks for a port of the Service named ${config.k8sPortName}`);
  }
  // The harness runs calico-fanout with production's V8 flags, so that its figures are production's.
  for (const flag of PRODUCTION_V8_FLAGS) assert.ok((env.NODE_OPTIONS ?? '').split(/\s+/).includes(flag), `NODE_OPTIONS has ${flag}, as the benchmarks run calico-fanout`);
  const heap = /--max-old-space-size=(\d+)/.exec(env.NODE_OPTIONS ?? '');
  if (heap) assert.ok(Number(heap[1]) * 2 ** 20 < quantity(container(b).resources?.limits?.memory, 'memory limit'), 'the V8 heap cap is below the memory limit');
}

async function checkDeployment(b: Bundle): Promise<void> {
  const d = deployment(b);
  const spec = podSpec(b);
  const c = container(b);
  assert.equal(d.spec.replicas, 3, 'replicas');
  assert.deepEqual(d.spec.strategy, { type: 'RollingUpdate', rollingUpdate: { maxSurge: '100%', maxUnavailable: 1 } }, 'rolling update as Calico rolls Typha');

  // Ports: the server's defaults, by name.
  const ianaName = /^(?=.*[a-z])[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
  for (const p of c.ports ?? []) {
    assert.ok(typeof p.name === 'string' && p.name.length <= 15 && ianaName.test(p.name) && !p.name.includes('--'), `port name ${p.name} is a valid IANA service name`);
    assert.ok(p.protocol === undefined || p.protocol === 'TCP', `port ${p.name} is TCP`);
  }
  assert.equal(namedPort(b, 'calico-typha').containerPort, DEFAULTS.serverPort, 'client port calico-typha = serverPort default');
  assert.equal(namedPort(b, 'health').containerPort, DEFAULTS.healthPort, 'health port = healthPort default');
  assert.equal(namedPort(b, 'metrics').containerPort, DEFAULTS.prometheusMetricsPort, 'metrics port = prometheusMetricsPort default');

  // Probes: the real endpoints, on the health port; liveness must not depend on being in sync.
  const http = readFileSync(join(ROOT, 'server/http-endpoints.ts'), 'utf8');
  for (const path of [LIVEZ, READYZ]) assert.ok(http.includes(`'${path}'`), `server/http-endpoints.ts serves ${path}`);
  const probes = { liveness: c.livenessProbe, readiness: c.readinessProbe };
  for (const [kind, probe] of Object.entries(probes)) {
    assert.ok(probe?.httpGet, `${kind} probe is an HTTP GET`);
    assert.ok(probe.httpGet.scheme === undefined || probe.httpGet.scheme === 'HTTP', `${kind} probe: plain HTTP`);
    assert.equal(containerPort(b, probe.httpGet.port, `${kind} probe port`), DEFAULTS.healthPort, `${kind} probe on the health port`);
  }
  // What the server answers on the probes' paths (false: it does not serve that path).
  assert.equal(await healthStatus(probes.liveness.httpGet.path, { ready: false }), 200, 'the liveness path answers 200 while not in sync');
  assert.equal(await healthStatus(probes.liveness.httpGet.path, { ready: true, stuck: 'event loop stuck' }), 503, 'the liveness path answers 503 when the process is stuck');
  assert.equal(await healthStatus(probes.readiness.httpGet.path, { ready: false }), 503, 'the readiness path answers 503 while not ready');
  assert.equal(await healthStatus(probes.readiness.httpGet.path, { ready: true }), 200, 'the readiness path answers 200 when ready');
  // ...and our paths, not Typha's aliases (/liveness, /readiness).
  assert.equal(probes.liveness.httpGet.path, LIVEZ, 'liveness path');
  assert.equal(probes.readiness.httpGet.path, READYZ, 'readiness path');

  // Shutdown: Kubernetes must not kill it before the drain is over.
  const grace = spec.terminationGracePeriodSeconds;
  const shutdown = Number(deploymentEnv(b).TYPHA_SHUTDOWNTIMEOUTSECS);
  assert.ok(Number.isInteger(grace) && grace >= shutdown, `terminationGracePeriodSeconds (${grace}) >= TYPHA_SHUTDOWNTIMEOUTSECS (${shutdown})`);
  assert.ok(d.spec.progressDeadlineSeconds >= Math.max(600, 1.2 * grace), 'progressDeadlineSeconds >= max(600, 1.2 x grace), as the operator sets it for Typha');

  // Security: the effective settings (container over pod).
  const psc = spec.securityContext ?? {};
  const csc = c.securityContext ?? {};
  const eff = (k: string) => csc[k] ?? psc[k];
  assert.equal(eff('runAsNonRoot'), true, 'runAsNonRoot');
  assert.equal(eff('runAsUser'), 10001, 'runAsUser 10001');
  assert.equal(eff('seccompProfile')?.type, 'RuntimeDefault', 'seccompProfile RuntimeDefault');
  assert.equal(csc.allowPrivilegeEscalation, false, 'allowPrivilegeEscalation false');
  assert.equal(csc.readOnlyRootFilesystem, true, 'readOnlyRootFilesystem');
  assert.notEqual(csc.privileged, true, 'not privileged');
  assert.deepEqual(csc.capabilities?.drop, ['ALL'], 'capabilities drop ALL');
  assert.equal(csc.capabilities?.add, undefined, 'no capabilities added');
  // With a read-only root, tsx needs a writable temporary directory (it fails to start without one).
  const tmp = (c.volumeMounts ?? []).find((m: Obj) => m.mountPath === '/tmp');
  assert.ok(tmp && !tmp.readOnly, 'a writable /tmp is mounted');
  assert.ok((spec.volumes ?? []).some((v: Obj) => v.name === tmp.name && v.emptyDir), '/tmp is an emptyDir');
  assert.equal(spec.hostNetwork ?? false, false, 'pod network, not the host network (see the comment in deployment.yaml)');
  assert.equal(spec.enableServiceLinks, false, 'no Service link variables among the settings');

  // Resources.
  const res = c.resources ?? {};
  for (const r of ['cpu', 'memory']) quantity(res.requests?.[r], `requests.${r}`);
  assert.ok(quantity(res.limits?.memory, 'limits.memory') >= quantity(res.requests.memory, 'requests.memory'), 'memory limit >= request');

  // Scheduling, as Typha's.
  const terms: Obj[] = spec.affinity?.podAntiAffinity?.preferredDuringSchedulingIgnoredDuringExecution ?? [];
  assert.equal(spec.affinity?.podAntiAffinity?.requiredDuringSchedulingIgnoredDuringExecution, undefined, 'anti-affinity is preferred, not required');
  for (const key of ['topology.kubernetes.io/zone', 'kubernetes.io/hostname']) {
    const t = terms.find((x) => x.podAffinityTerm?.topologyKey === key);
    assert.ok(t && t.weight >= 1 && t.weight <= 100, `preferred pod anti-affinity by ${key}`);
    selects(t.podAffinityTerm.labelSelector?.matchLabels, podLabels(b), `anti-affinity by ${key}`);
  }
  const tol: Obj[] = spec.tolerations ?? [];
  assert.ok(tol.some((t) => t.key === 'CriticalAddonsOnly' && t.operator === 'Exists'), 'tolerates CriticalAddonsOnly');
  for (const effect of ['NoSchedule', 'NoExecute']) assert.ok(tol.some((t) => t.effect === effect && t.operator === 'Exists' && !t.key), `tolerates every ${effect} taint`);
  assert.equal(spec.priorityClassName, 'system-cluster-critical', 'priorityClassName');
}

function checkServiceAndPdb(b: Bundle): void {
  const svc = the(b, 'Service');
  assert.equal(svc.metadata.name, appOf(b), 'Service name');
  // Tiers: the root's Service (app=calico-fanout) does not select the tier below, nor it the root.
  if (appOf(b) !== APP) assert.notEqual(podLabels(b).app, APP, 'the root\'s Service must not select the pods of the tier below');
  assert.ok(svc.spec.type === undefined || svc.spec.type === 'ClusterIP', 'a ClusterIP Service');
  selects(svc.spec.selector, podLabels(b), 'Service selector');
  const port = svc.spec.ports.find((p: Obj) => p.name === 'calico-typha');
  assert.ok(port, 'the Service port is named calico-typha (how Calico clients discover Typha)');
  assert.equal(port.port, DEFAULTS.serverPort, 'Service port number');
  assert.ok(port.protocol === undefined || port.protocol === 'TCP', 'Service port TCP');
  assert.equal(port.targetPort, 'calico-typha', 'the Service targets the named container port');
  assert.equal(containerPort(b, port.targetPort, 'Service targetPort'), DEFAULTS.serverPort, 'Service targetPort is the client port');

  const pdb = the(b, 'PodDisruptionBudget');
  assert.equal(pdb.spec.maxUnavailable, 1, 'PDB maxUnavailable 1');
  assert.deepEqual(pdb.spec.selector.matchLabels, deployment(b).spec.selector.matchLabels, 'PDB selects the Deployment\'s pods');
}

function checkNetworkPolicy(b: Bundle): void {
  const np = the(b, 'NetworkPolicy');
  selects(np.spec.podSelector.matchLabels, podLabels(b), 'NetworkPolicy podSelector');
  assert.deepEqual(np.spec.policyTypes, ['Ingress'], 'NetworkPolicy restricts ingress only (egress reaches the API server)');
  const rules: Obj[] = np.spec.ingress ?? [];
  const portsOf = (r: Obj) => (r.ports ?? []).map((p: Obj) => containerPort(b, p.port, 'NetworkPolicy port'));
  assert.ok(rules.some((r) => portsOf(r).includes(DEFAULTS.serverPort) && (r.from ?? []).length > 0), 'NetworkPolicy admits clients to the client port');
  const nonEmpty = (sel: Obj | undefined) => Object.keys(sel?.matchLabels ?? {}).length > 0;
  for (const port of [DEFAULTS.healthPort, DEFAULTS.prometheusMetricsPort]) {
    const admitting = rules.filter((r) => portsOf(r).includes(port));
    assert.ok(admitting.some((r) => (r.from ?? []).some((p: Obj) => nonEmpty(p.namespaceSelector) && !p.podSelector)), `NetworkPolicy admits a monitoring namespace to port ${port}`);
    for (const r of admitting) {
      assert.ok((r.from ?? []).length > 0, `port ${port} is not open to everyone`);
      for (const peer of r.from) assert.ok(nonEmpty(peer.namespaceSelector) || nonEmpty(peer.podSelector), `port ${port}: only from a selected namespace or selected pods`);
    }
  }
  // Rebalancing replicas read each other's /readyz.
  const env = deploymentEnv(b);
  if (env.TYPHA_CONNECTIONREBALANCINGMODE === 'kubernetes') {
    assert.ok(rules.some((r) => portsOf(r).includes(DEFAULTS.healthPort) && (r.from ?? []).some((p: Obj) => !p.namespaceSelector && !p.ipBlock && p.podSelector?.matchLabels
      && Object.entries(p.podSelector.matchLabels).every(([k, v]) => podLabels(b)[k] === v))), 'NetworkPolicy lets the replicas reach each other\'s health port (rebalancing)');
  }
}

function checkDockerfile(b: Bundle): void {
  const stages = dockerStages(b.dockerfile);
  assert.ok(stages.length >= 2, `Dockerfile: multi-stage (found ${stages.length} FROM)`);
  for (const s of stages) assert.match(s[0]!.args, /^node:20[-.\w]*(\s+AS\s+[\w-]+)?$/i, 'Dockerfile: stages build on Node 20 images');
  const build = stages[0]!;
  const runtime = stages.at(-1)!;
  const runs = (s: Instruction[]) => s.filter((i) => i.op === 'RUN').map((i) => i.args);
  assert.ok(runs(build).some((r) => /\bnpm ci\b/.test(r)), 'Dockerfile build stage: npm ci');
  assert.ok(runs(build).some((r) => /\bnpm run build\b/.test(r)), 'Dockerfile build stage: npm run build');
  const installs = runs(runtime).filter((r) => /\bnpm (ci|install|i)\b/.test(r));
  assert.ok(installs.length > 0, 'Dockerfile runtime stage installs the dependencies');
  for (const r of installs) assert.match(r, /\bnpm ci\b[^&|;]*--omit=dev/, 'Dockerfile runtime stage: npm ci --omit=dev (no dev dependencies)');

  // Non-root, numeric (so runAsNonRoot can verify it), the Deployment's user.
  const users = runtime.filter((i) => i.op === 'USER');
  assert.ok(users.length > 0, 'Dockerfile runtime stage: USER');
  const [uid, gid] = users.at(-1)!.args.split(':');
  assert.match(uid!, /^\d+$/, 'Dockerfile USER is numeric');
  assert.notEqual(Number(uid), 0, 'Dockerfile USER is not root');
  const sc = { ...podSpec(b).securityContext, ...container(b).securityContext };
  assert.equal(Number(uid), sc.runAsUser, 'Dockerfile USER = the Deployment\'s runAsUser');
  if (gid !== undefined && sc.runAsGroup !== undefined) assert.equal(Number(gid), sc.runAsGroup, 'Dockerfile group = runAsGroup');

  // Runs what `npm start` runs; the Deployment's args make it `calico-fanout serve`.
  const entrypoint = execForm(runtime, 'ENTRYPOINT');
  const cmd = execForm(runtime, 'CMD');
  assert.deepEqual(entrypoint, ['node', '--enable-source-maps', PKG.bin['calico-fanout']], 'ENTRYPOINT runs bin/calico-fanout.js with source maps');
  assert.equal([...entrypoint, ...cmd].join(' '), PKG.scripts.start, 'ENTRYPOINT + CMD = npm start');
  assert.equal(container(b).command, undefined, 'the Deployment keeps the image ENTRYPOINT');
  assert.equal([...entrypoint, ...container(b).args].join(' '), PKG.scripts.start, 'the Deployment runs `calico-fanout serve`');

  const exposed = runtime.filter((i) => i.op === 'EXPOSE').flatMap((i) => i.args.split(/\s+/)).map((p) => Number(p.split('/')[0]));
  for (const p of [DEFAULTS.serverPort, DEFAULTS.healthPort, DEFAULTS.prometheusMetricsPort]) assert.ok(exposed.includes(p), `Dockerfile EXPOSEs ${p}`);
  const workdir = runtime.filter((i) => i.op === 'WORKDIR').at(-1)?.args;
  assert.ok(workdir?.startsWith('/'), 'Dockerfile runtime stage: an absolute WORKDIR');

  // The runtime stage copies everything the server loads, at the same relative paths.
  const stageNames = new Set(stages.map((s) => /\s+AS\s+([\w-]+)/i.exec(s[0]!.args)?.[1]).filter(Boolean));
  const runtimeCopies = copies(runtime);
  for (const cp of runtimeCopies) {
    if (cp.from) { assert.ok(stageNames.has(cp.from), `COPY --from=${cp.from} names a stage`); continue; }
    for (const src of cp.sources) {
      assert.ok(existsSync(join(ROOT, src)), `Dockerfile copies ${src}, which does not exist`);
      const dest = cp.dest.replace(/^\.\//, '').replace(/\/$/, '').replace(new RegExp(`^${workdir}/?`), '');
      const isDir = statSync(join(ROOT, src)).isDirectory();
      if (isDir) assert.equal(dest, src, `Dockerfile: COPY ${src} keeps its path (to ./${src})`);
      else assert.ok(dest === '' || dest === '.' || dest === src, `Dockerfile: COPY ${src} keeps its path`);
    }
  }
  const fromContext = runtimeCopies.filter((cp) => !cp.from).flatMap((cp) => cp.sources);
  const covered = (p: string) => fromContext.some((s) => s === '.' || p === s || p.startsWith(`${s}/`));
  const needs = runtimeNeeds();
  for (const p of needs.paths) {
    if (p === 'dist' || p.startsWith('dist/')) assert.ok(runtimeCopies.some((cp) => cp.from && cp.sources.some((s) => /(^|\/)dist$/.test(s))), 'Dockerfile: dist/ from the build stage');
    else assert.ok(covered(p), `Dockerfile runtime stage: ${p} is loaded at run time but not copied`);
  }
  // `calico-fanout bench` loads tsx if it is there (a clone's dev dependencies) and says so if not.
  const optional = new Set(['tsx']);
  for (const pkg of [...needs.packages].filter((p) => !optional.has(p))) assert.ok(pkg in (PKG.dependencies ?? {}), `${pkg} is imported at run time, so it must be a dependency (npm ci --omit=dev leaves devDependencies out)`);
  // The build stage has what `npm run build` compiles and what it reads.
  const buildSources = copies(build).filter((cp) => !cp.from).flatMap((cp) => cp.sources);
  const tsconfigBuild = JSON.parse(readFileSync(join(ROOT, 'tsconfig.build.json'), 'utf8'));
  for (const p of ['package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.build.json', ...tsconfigBuild.include]) {
    assert.ok(buildSources.some((s) => s === '.' || p === s || p.startsWith(`${s}/`)), `Dockerfile build stage copies ${p}`);
  }

  // .dockerignore keeps host artefacts out and nothing the Dockerfile copies.
  const ignore = ignoreMatchers(b.dockerignore);
  assert.ok(ignore.some((m) => m.re.test('node_modules')), '.dockerignore leaves node_modules out');
  const contextSources = stages.flatMap((s) => copies(s)).filter((cp) => !cp.from).flatMap((cp) => cp.sources);
  for (const src of contextSources) {
    for (const f of filesUnder(src)) {
      const parts = f.split('/');
      for (let i = 1; i <= parts.length; i++) {
        const prefix = parts.slice(0, i).join('/');
        const hit = ignore.find((m) => m.re.test(prefix));
        assert.ok(!hit, `.dockerignore pattern ${hit?.pattern} drops ${f}, which the Dockerfile copies`);
      }
    }
  }
}

async function checkAll(b: Bundle): Promise<void> {
  checkWellFormed(b);
  checkKustomization(b);
  checkRbac(b);
  checkEnv(b);
  await checkDeployment(b);
  checkServiceAndPdb(b);
  checkNetworkPolicy(b);
  checkDockerfile(b);
}

// ---- the tests -------------------------------------------------------------------------------

const bundle = loadBundle();

const rendered = new Map<OverlayName, Bundle>();
/** An overlay's rendering (kubectl kustomize runs once per overlay). */
function overlay(name: OverlayName): Bundle {
  let b = rendered.get(name);
  if (!b) rendered.set(name, (b = renderBundle(bundle, name)));
  return b;
}

describe('deploy/base', () => {
  test('every manifest is valid YAML, one concern per file, with the fields its kind requires', () => checkWellFormed(bundle));
  test('kustomization.yaml lists the manifests (the NetworkPolicy is opt-in) and tags the image with the package version', () => checkKustomization(bundle));
  test('RBAC: get, list, watch on EndpointSlices only (rebalancing), for our ServiceAccount', () => {
    assert.ok(expectedGrants().includes('discovery.k8s.io/endpointslices'));
    checkRbac(bundle);
  });
  test('every environment variable is a setting of src/config.ts, and they load; no datastore, no status page', () => checkEnv(bundle));
  test('Deployment: replicas, rollout, ports, probes, shutdown grace, security, resources, scheduling', () => checkDeployment(bundle));
  test('Service port calico-typha targets the client port; the PDB allows one pod down', () => checkServiceAndPdb(bundle));
  test('NetworkPolicy (optional): clients to 5473, monitoring to health and metrics', () => checkNetworkPolicy(bundle));
  test('Dockerfile: multi-stage, production dependencies only, non-root, runs npm start, copies what the server loads', () => checkDockerfile(bundle));
});

describe('deploy/ layout', () => {
  test('a base, an overlay per datastore, the dashboard; deploy/ itself applies the Kubernetes overlay', () => {
    assert.deepEqual(readdirSync(DEPLOY).sort(), ['base', 'grafana', 'kustomization.yaml', 'overlays']);
    assert.deepEqual(readdirSync(join(DEPLOY, 'overlays')).sort(), Object.keys(OVERLAYS).sort());
    const [top] = parseYamlFile(join(DEPLOY, 'kustomization.yaml'));
    assert.deepEqual(top!.resources, ['overlays/kubernetes'], 'deploy/kustomization.yaml: the Kubernetes overlay, the default');
  });
});

describe('deploy/overlays as kubectl kustomize renders them', { skip: kubectlMissing || false }, () => {
  for (const name of Object.keys(OVERLAYS) as OverlayName[]) {
    test(`${name}: valid, on the ${OVERLAYS[name]} datastore; RBAC exactly what it reads; settings load; Deployment, Service, PDB, NetworkPolicy, image`, async () => {
      await checkAll(overlay(name));
    });
  }
  test('kubernetes: both Calico API groups and ClusterNetworkPolicies are granted', () => {
    const granted = rulesOf(overlay('kubernetes')).flatMap((r: Obj) => r.apiGroups.flatMap((g: string) => r.resources.map((res: string) => `${g}/${res}`)));
    for (const g of ['crd.projectcalico.org/ippools', 'projectcalico.org/ippools', 'policy.networking.k8s.io/clusternetworkpolicies']) assert.ok(granted.includes(g), g);
  });
  test('etcd: client certificates from the calico-etcd-secrets Secret; no Kubernetes datastore grants', () => {
    const b = overlay('etcd');
    const volume = podSpec(b).volumes.find((v: Obj) => v.secret?.secretName === 'calico-etcd-secrets');
    assert.ok(volume, 'a volume of the Secret calico-etcd-secrets');
    const env = deploymentEnv(b);
    for (const k of ['TYPHA_ETCDCAFILE', 'TYPHA_ETCDCERTFILE', 'TYPHA_ETCDKEYFILE']) assert.ok(env[k], `${k} set`);
    assert.deepEqual(expectedGrantsFor(b), ['discovery.k8s.io/endpointslices']);
  });
  test('deploy/ renders as the Kubernetes overlay', () => {
    assert.deepEqual(kustomize(DEPLOY), overlay('kubernetes').manifests.get('rendered'));
  });
});

// ---- RBAC against the server itself --------------------------------------------------------

/** Kubernetes request attributes (verb, API group, resource, namespace) of a request, or undefined for a non-resource URL. */
function requestAttributes(method: string, url: string): { verb: string; group: string; resource: string; namespace?: string } | undefined {
  const u = new URL(url, 'http://x');
  const segs = u.pathname.split('/').filter(Boolean).map(decodeURIComponent);
  let group: string;
  let rest: string[];
  if (segs[0] === 'api' && segs.length >= 3) { group = ''; rest = segs.slice(2); }
  else if (segs[0] === 'apis' && segs.length >= 4) { group = segs[1]!; rest = segs.slice(3); }
  else return undefined;
  let namespace: string | undefined;
  if (rest[0] === 'namespaces' && rest.length >= 3) { namespace = rest[1]; rest = rest.slice(2); }
  const [plural, name, sub] = rest;
  const resource = sub ? `${plural}/${sub}` : plural!;
  const watch = ['1', 'true'].includes(u.searchParams.get('watch') ?? '');
  const verb = method === 'GET' || method === 'HEAD' ? (watch ? 'watch' : name ? 'get' : 'list')
    : method === 'POST' ? 'create' : method === 'PUT' ? 'update' : method === 'PATCH' ? 'patch'
      : method === 'DELETE' ? (name ? 'delete' : 'deletecollection') : method.toLowerCase();
  return { verb, group, resource, namespace };
}

/** Non-resource paths every authenticated user may GET (the default system:discovery and system:public-info-viewer roles). */
const DISCOVERY = /^\/(api|apis|version|healthz|livez|readyz|openapi)(\/|$)/;

interface RbacFront { url: string; denied: string[]; allowed: Set<string>; close(): Promise<void> }

/**
 * An HTTP front for the contract server that authorizes every request with the ClusterRole's
 * rules, as kube-apiserver's RBAC authorizer does (a ClusterRole bound cluster-wide applies in
 * every namespace), answering 403 otherwise. Requests are recorded as "verb group/resource"
 * (plus " in <namespace>" for namespaced ones).
 */
async function rbacFront(api: KubeApiServer, rules: Obj[]): Promise<RbacFront> {
  const denied: string[] = [];
  const allowed = new Set<string>();
  const server = createServer((req, res) => {
    const attrs = requestAttributes(req.method ?? 'GET', req.url ?? '/');
    const ok = attrs
      ? rules.some((r) => (r.apiGroups.includes(attrs.group) || r.apiGroups.includes('*'))
        && (r.resources.includes(attrs.resource) || r.resources.includes('*'))
        && (r.verbs.includes(attrs.verb) || r.verbs.includes('*')))
      : req.method === 'GET' && DISCOVERY.test(new URL(req.url ?? '/', 'http://x').pathname);
    const what = attrs ? `${attrs.verb} ${attrs.group}/${attrs.resource}${attrs.namespace ? ` in ${attrs.namespace}` : ''}` : `${req.method} ${req.url}`;
    if (!ok) {
      denied.push(what);
      res.writeHead(403, { 'content-type': 'application/json' }).end(JSON.stringify({
        kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', reason: 'Forbidden', code: 403,
        message: `forbidden: User "system:serviceaccount:${NAMESPACE}:${APP}" cannot ${what}`,
      }));
      return;
    }
    allowed.add(what);
    const upstream = request({ host: '127.0.0.1', port: api.port, method: req.method, path: req.url, headers: req.headers }, (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers);
      up.pipe(res);
    });
    upstream.on('error', () => res.destroy());
    res.on('close', () => upstream.destroy());
    req.pipe(upstream);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, denied, allowed,
    close: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }),
  };
}

/** GET a path of a local HTTP port: the status code. */
function httpStatus(port: number, path: string): Promise<number> {
  return new Promise((resolveStatus, reject) => {
    const req = request({ host: '127.0.0.1', port, path }, (res) => { res.resume(); resolveStatus(res.statusCode ?? 0); });
    req.on('error', reject);
    req.end();
  });
}

describe('RBAC against the server as deployed (the Kubernetes overlay)', { skip: kubectlMissing || false }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'deploy-rbac-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  /**
   * `calico-fanout serve` with the Deployment's settings (ports made ephemeral, the kubeconfig
   * pointed at an RBAC front enforcing `rules`, rebalancing polled quickly) against a contract
   * server holding a small cluster, until `until` holds (20 s at most) and `settleMs` more; then
   * what the front allowed and denied, and what the readiness probe answers.
   */
  async function serveWith(rules: Obj[], until: (front: RbacFront, readyz: number) => boolean, settleMs = 0, v3Only = false) {
    const api = await startKubeApi(v3Only ? { calicoGroups: [V3] } : {});
    load(api, v3Only ? asV3Crds(cluster(20)) : cluster(20));
    const front = await rbacFront(api, rules);
    const kubeconfig = JSON.parse(readFileSync(api.kubeconfigPath, 'utf8'));
    kubeconfig.clusters[0].cluster.server = front.url;
    const path = join(dir, `kubeconfig-${front.url.split(':').at(-1)}`);
    writeFileSync(path, JSON.stringify(kubeconfig));
    const env: Record<string, string> = {
      ...typhaEnv(deploymentEnv(overlay('kubernetes'))), TYPHA_KUBECONFIG: path,
      TYPHA_SERVERPORT: '-1', TYPHA_HEALTHPORT: '-1', TYPHA_PROMETHEUSMETRICSPORT: '-1',
    };
    if (SETTINGS.some((s) => envName(s) === 'TYPHA_K8SSERVICEPOLLINTERVALSECS')) env.TYPHA_K8SSERVICEPOLLINTERVALSECS = '0.2';
    const app = await startApp(loadConfig({ env }), silentLogger);
    try {
      const health = app.ports.health!;
      let readyz = await httpStatus(health, READYZ);
      const end = Date.now() + 20_000;
      while (!until(front, readyz) && Date.now() < end) {
        await new Promise((r) => setTimeout(r, 50));
        readyz = await httpStatus(health, READYZ);
      }
      await new Promise((r) => setTimeout(r, settleMs));
      readyz = await httpStatus(health, READYZ);
      return { denied: [...front.denied], allowed: new Set(front.allowed), readyz, rebalancing: loadConfig({ env }).connectionRebalancingMode };
    } finally {
      await app.close();
      await front.close();
      await api.close();
    }
  }

  /** A list and a watch of every granted collection, Calico's in the group the cluster serves. */
  const everyWatch = (allowed: Set<string>, group = 'crd.projectcalico.org') => expectedGrants()
    .filter((gr) => !/^(crd\.)?projectcalico\.org\//.test(gr) || gr.startsWith(`${group}/`))
    .every((gr) => allowed.has(`list ${gr}`) && allowed.has(`watch ${gr}`));
  /** What kubernetes-mode rebalancing asks: the EndpointSlices of its Service's namespace. */
  const rebalancingLookup = `list discovery.k8s.io/endpointslices in ${NAMESPACE}`;
  const rebalancing = () => deploymentEnv(overlay('kubernetes')).TYPHA_CONNECTIONREBALANCINGMODE === 'kubernetes';

  test('with only our ClusterRoles it lists and watches everything, looks up its peers, and /readyz answers 200; nothing denied', { timeout: 60_000 }, async () => {
    const r = await serveWith(rulesOf(overlay('kubernetes')),
      (f, readyz) => readyz === 200 && everyWatch(f.allowed) && (!rebalancing() || f.allowed.has(rebalancingLookup)));
    assert.deepEqual(r.denied, [], 'requests the ClusterRole does not allow');
    assert.equal(r.readyz, 200, 'the readiness probe passes');
    assert.ok(everyWatch(r.allowed), `a list and a watch per granted collection (saw: ${[...r.allowed].sort().join(', ')})`);
    if (rebalancing()) assert.ok(r.allowed.has(rebalancingLookup), `rebalancing looked up its peers (saw: ${[...r.allowed].sort().join(', ')})`);
  });

  test('on a cluster serving Calico\'s resources only as projectcalico.org/v3 CRDs, the same ClusterRoles are enough', { timeout: 60_000 }, async () => {
    const r = await serveWith(rulesOf(overlay('kubernetes')), (f, readyz) => readyz === 200 && everyWatch(f.allowed, 'projectcalico.org'), 0, true);
    assert.deepEqual(r.denied, [], 'requests the ClusterRole does not allow');
    assert.equal(r.readyz, 200, 'the readiness probe passes');
    assert.ok(everyWatch(r.allowed, 'projectcalico.org'), `a list and a watch per v3 collection (saw: ${[...r.allowed].sort().join(', ')})`);
  });

  test('the front enforces: without the EndpointSlices rule requests are denied and /readyz stays 503', { timeout: 60_000 }, async () => {
    const rules = rulesOf(overlay('kubernetes')).filter((r: Obj) => !r.resources.includes('endpointslices'));
    // Until every other collection has been listed: with EndpointSlices allowed it would now be ready.
    const others = expectedGrants().filter((g) => g !== 'discovery.k8s.io/endpointslices' && !g.startsWith('projectcalico.org/'));
    const r = await serveWith(rules, (f) => f.denied.includes('list discovery.k8s.io/endpointslices') && others.every((g) => f.allowed.has(`list ${g}`)), 500);
    assert.ok(r.denied.includes('list discovery.k8s.io/endpointslices'), `denied: ${r.denied.join(', ')}`);
    assert.equal(r.readyz, 503, 'not ready without EndpointSlices');
  });
});

// ---- the checks can fail ---------------------------------------------------------------------

describe('the checks reject broken deployments', () => {
  const clone = (from: Bundle): Bundle => ({ ...structuredClone({ manifests: from.manifests, texts: from.texts, kustomization: from.kustomization, overlay: from.overlay }), kustomizationText: from.kustomizationText, dockerfile: from.dockerfile, dockerignore: from.dockerignore });
  const dep = (b: Bundle) => deployment(b);
  const ctr = (b: Bundle) => container(b);
  const envOf = (b: Bundle, name: string) => ctr(b).env.find((e: Obj) => e.name === name);
  const role = (b: Bundle, name = 'calico-fanout') => allDocs(b).find((d) => d.kind === 'ClusterRole' && d.metadata.name === name)!;
  const datastoreRole = (b: Bundle) => role(b, 'calico-fanout-kubernetes-datastore');
  const swap = (field: 'dockerfile' | 'dockerignore', from: string | RegExp, to: string) => (b: Bundle) => {
    const next = b[field].replace(from, to);
    assert.notEqual(next, b[field], `mutation did not apply: ${String(from)}`);
    b[field] = next;
  };

  const mutations: [string, (b: Bundle) => void, RegExp][] = [
    ['an extra file in deploy/', (b) => b.manifests.set('configmap.yaml', [{ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'x', namespace: NAMESPACE, labels: { app: APP } } }]), /one file per concern/],
    ['a document without metadata.name', (b) => { delete the(b, 'Service').metadata.name; }, /metadata\.name/],
    ['a wrong namespace', (b) => { the(b, 'ServiceAccount').metadata.namespace = 'default'; }, /namespace/],
    ['a Deployment selector that misses its pods', (b) => { dep(b).spec.selector.matchLabels = { app: 'other' }; }, /selector/],
    ['a container without an image', (b) => { delete ctr(b).image; }, /image/],
    ['a numeric annotation', (b) => { dep(b).spec.template.metadata.annotations['prometheus.io/port'] = 9093; }, /must be a string/],
    ['the Service left out of the kustomization', (b) => { b.kustomization.resources = b.kustomization.resources.filter((r: string) => r !== 'service.yaml'); }, /kustomization lists/],
    ['the NetworkPolicy applied by default', (b) => { b.kustomization.resources.push('networkpolicy.yaml'); }, /kustomization lists/],
    ['an image tagged latest', (b) => { ctr(b).image = 'calico-fanout:latest'; }, /package version/],
    ['a binding to another account', (b) => { the(b, 'ClusterRoleBinding').subjects[0].name = 'default'; }, /binds our ServiceAccount/],
    ['pods under another account', (b) => { podSpec(b).serviceAccountName = 'default'; }, /ServiceAccount/],
    ['an unknown TYPHA_ variable', (b) => { ctr(b).env.push({ name: 'TYPHA_NOSUCHSETTING', value: '1' }); }, /not a setting/],
    ['a non-TYPHA variable', (b) => { ctr(b).env.push({ name: 'FOO', value: '1' }); }, /neither a TYPHA_\* setting/],
    ['a number as an env value', (b) => { envOf(b, 'TYPHA_SHUTDOWNTIMEOUTSECS').value = 300; }, /as a string/],
    ['no shutdown timeout', (b) => { ctr(b).env = ctr(b).env.filter((e: Obj) => e.name !== 'TYPHA_SHUTDOWNTIMEOUTSECS'); }, /TYPHA_SHUTDOWNTIMEOUTSECS/],
    ['a health port setting that differs from the container port', (b) => { envOf(b, 'TYPHA_HEALTHPORT').value = '9099'; }, /health port as configured/],
    ['a heap cap above the memory limit', (b) => { envOf(b, 'NODE_OPTIONS').value = `--max-old-space-size=4096 ${PRODUCTION_V8_FLAGS.join(' ')}`; }, /heap cap/],
    ['no young-generation cap', (b) => { envOf(b, 'NODE_OPTIONS').value = '--max-old-space-size=768'; }, /max-semi-space-size/],
    ['replicas 1', (b) => { dep(b).spec.replicas = 1; }, /replicas/],
    ['maxSurge 25%', (b) => { dep(b).spec.strategy.rollingUpdate.maxSurge = '25%'; }, /rolling update/],
    ['the client port moved', (b) => { ctr(b).ports[0].containerPort = 5474; }, /client port|serverPort/],
    ['the client port renamed', (b) => { ctr(b).ports[0].name = 'typha'; }, /calico-typha/],
    ['a port name too long', (b) => { ctr(b).ports.push({ name: 'a-very-long-port-name', containerPort: 8080 }); }, /IANA/],
    ['liveness on a path the server does not serve', (b) => { ctr(b).livenessProbe.httpGet.path = '/healthz'; }, /liveness path answers 200/],
    ['readiness on /livez', (b) => { ctr(b).readinessProbe.httpGet.path = '/livez'; }, /readiness path answers 503/],
    ['liveness on /readyz', (b) => { ctr(b).livenessProbe.httpGet.path = '/readyz'; }, /liveness path answers 200 while not in sync/],
    ['liveness on Typha\'s /liveness', (b) => { ctr(b).livenessProbe.httpGet.path = '/liveness'; }, /liveness path/],
    ['readiness on Typha\'s /readiness', (b) => { ctr(b).readinessProbe.httpGet.path = '/readiness'; }, /readiness path/],
    ['a probe on the metrics port', (b) => { ctr(b).readinessProbe.httpGet.port = 9093; }, /health port/],
    ['a probe on a port the container lacks', (b) => { ctr(b).livenessProbe.httpGet.port = 'healthz'; }, /not a port of the container/],
    ['grace shorter than the shutdown timeout', (b) => { podSpec(b).terminationGracePeriodSeconds = 299; }, /terminationGracePeriodSeconds/],
    ['root', (b) => { podSpec(b).securityContext.runAsUser = 0; ctr(b).securityContext.runAsUser = 0; }, /runAsUser/],
    ['runAsNonRoot off', (b) => { ctr(b).securityContext.runAsNonRoot = false; }, /runAsNonRoot/],
    ['privilege escalation', (b) => { ctr(b).securityContext.allowPrivilegeEscalation = true; }, /allowPrivilegeEscalation/],
    ['a writable root filesystem', (b) => { ctr(b).securityContext.readOnlyRootFilesystem = false; }, /readOnlyRootFilesystem/],
    ['capabilities kept', (b) => { ctr(b).securityContext.capabilities.drop = ['NET_RAW']; }, /drop ALL/],
    ['seccomp unconfined', (b) => { ctr(b).securityContext.seccompProfile.type = 'Unconfined'; }, /seccomp/],
    ['no /tmp for tsx', (b) => { ctr(b).volumeMounts = []; }, /\/tmp/],
    ['the host network', (b) => { podSpec(b).hostNetwork = true; }, /host network/],
    ['service links', (b) => { delete podSpec(b).enableServiceLinks; }, /Service link/],
    ['no resource requests', (b) => { delete ctr(b).resources.requests; }, /requests/],
    ['a memory limit below the request', (b) => { ctr(b).resources.limits.memory = '128Mi'; }, /memory limit|heap cap/],
    ['no zone anti-affinity', (b) => { podSpec(b).affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution.pop(); }, /topology\.kubernetes\.io\/zone/],
    ['required anti-affinity', (b) => { podSpec(b).affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution = []; }, /preferred, not required/],
    ['no CriticalAddonsOnly toleration', (b) => { podSpec(b).tolerations.shift(); }, /CriticalAddonsOnly/],
    ['no priority class', (b) => { delete podSpec(b).priorityClassName; }, /priorityClassName/],
    ['a Service port named otherwise', (b) => { the(b, 'Service').spec.ports[0].name = 'typha'; }, /calico-typha/],
    ['a Service targeting the health port', (b) => { the(b, 'Service').spec.ports[0].targetPort = 'health'; }, /targets the named container port/],
    ['a Service selecting nothing of ours', (b) => { the(b, 'Service').spec.selector = { app: 'typha' }; }, /Service selector/],
    ['a PDB allowing two down', (b) => { the(b, 'PodDisruptionBudget').spec.maxUnavailable = 2; }, /maxUnavailable 1/],
    ['a PDB with both bounds', (b) => { the(b, 'PodDisruptionBudget').spec.minAvailable = 2; }, /exactly one of/],
    ['metrics open to everyone', (b) => { the(b, 'NetworkPolicy').spec.ingress[2].from = [{ namespaceSelector: {} }]; }, /monitoring namespace to port 9093|only from a selected/],
    ['health open to every pod of the namespace', (b) => { the(b, 'NetworkPolicy').spec.ingress[1].from[0].podSelector = {}; }, /only from a selected/],
    ['replicas cannot reach each other\'s health port', (b) => { the(b, 'NetworkPolicy').spec.ingress[1].from.shift(); }, /rebalancing/],
    ['rebalancing on another Service port name', (b) => { envOf(b, 'TYPHA_K8SPORTNAME').value = 'typha'; }, /port of the Service named typha/],
    ['rebalancing in another namespace', (b) => { const e = envOf(b, 'TYPHA_K8SNAMESPACE'); delete e.valueFrom; e.value = 'kube-system'; }, /Service's namespace/],
    ['an unresolvable valueFrom', (b) => { envOf(b, 'TYPHA_K8SNAMESPACE').valueFrom = { fieldRef: { fieldPath: 'spec.nodeName' } }; }, /only reference/],
    ['a NetworkPolicy restricting egress', (b) => { the(b, 'NetworkPolicy').spec.policyTypes = ['Ingress', 'Egress']; }, /ingress only/],
    ['one Dockerfile stage', swap('dockerfile', /FROM node:20-bookworm-slim AS build[\s\S]*?(?=FROM node:20-bookworm-slim AS runtime)/, ''), /multi-stage|npm run build/],
    ['dev dependencies in the image', swap('dockerfile', /npm ci --omit=dev/, 'npm ci'), /--omit=dev/],
    ['an image running as root', swap('dockerfile', /USER 10001:10001/, 'USER root'), /numeric/],
    ['another uid in the image', swap('dockerfile', /USER 10001:10001/, 'USER 1000:1000'), /runAsUser/],
    ['no USER', swap('dockerfile', /USER 10001:10001\n/, ''), /USER/],
    ['an ENTRYPOINT around npm start', swap('dockerfile', /ENTRYPOINT \[.*\]/, 'ENTRYPOINT ["node", "--import", "tsx", "cmd/main.ts"]'), /bin\/calico-fanout\.js/],
    ['a shell-form ENTRYPOINT', swap('dockerfile', /ENTRYPOINT \[.*\]/, 'ENTRYPOINT node bin/calico-fanout.js'), /exec \(JSON array\) form/],
    ['CMD watch', swap('dockerfile', /CMD \["serve"\]/, 'CMD ["watch"]'), /npm start/],
    ['dist/ not copied from the build stage', swap('dockerfile', /COPY --from=build \/app\/dist \.\/dist\n/, ''), /dist\/ from the build stage/],
    ['bin/ not copied', swap('dockerfile', /COPY bin \.\/bin\n(?=# The memory)/, ''), /bin\/.* not copied/],
    ['cmd/ not compiled', swap('dockerfile', /COPY cmd \.\/cmd\n/, ''), /build stage copies cmd/],
    ['the demo cluster not copied', swap('dockerfile', /COPY examples\/demo-cluster \.\/examples\/demo-cluster\n/, ''), /examples\/demo-cluster/],
    ['a directory flattened', swap('dockerfile', /COPY bin \.\/bin\n(?=# The memory)/, 'COPY bin ./\n'), /keeps its path/],
    ['port 9093 not exposed', swap('dockerfile', /EXPOSE 5473 9098 9093/, 'EXPOSE 5473 9098'), /EXPOSEs 9093/],
    ['sources ignored by .dockerignore', swap('dockerignore', /^tmp$/m, 'tmp\nsrc'), /\.dockerignore pattern src/],
    ['node_modules sent to the build', swap('dockerignore', /^node_modules\n/m, ''), /node_modules/],
  ];

  // Base mutations run without kubectl; datastore-specific ones on the rendered overlays.
  const overlayMutations: [string, OverlayName, (b: Bundle) => void, RegExp][] = [
    ['an extra verb', 'kubernetes', (b) => { datastoreRole(b).rules[0].verbs.push('create'); }, /verbs exactly/],
    ['a wildcard verb', 'kubernetes', (b) => { datastoreRole(b).rules[0].verbs = ['*']; }, /verbs exactly/],
    ['a resource the adapter does not watch', 'kubernetes', (b) => { datastoreRole(b).rules[0].resources.push('secrets'); }, /grant exactly/],
    ['EndpointSlices missing', 'kubernetes', (b) => { role(b).rules = []; }, /rules|grant exactly/],
    ['projectcalico.org missing', 'kubernetes', (b) => { for (const r of datastoreRole(b).rules) r.apiGroups = r.apiGroups.filter((g: string) => g !== 'projectcalico.org'); }, /grant exactly/],
    ['crd.projectcalico.org missing', 'kubernetes', (b) => { for (const r of datastoreRole(b).rules) r.apiGroups = r.apiGroups.filter((g: string) => g !== 'crd.projectcalico.org'); }, /grant exactly/],
    ['ClusterNetworkPolicies missing', 'kubernetes', (b) => { datastoreRole(b).rules = datastoreRole(b).rules.filter((r: Obj) => !r.apiGroups.includes('policy.networking.k8s.io')); }, /grant exactly/],
    ['a subresource', 'kubernetes', (b) => { datastoreRole(b).rules[0].resources.push('pods/log'); }, /subresources/],
    ['a wildcard resource', 'kubernetes', (b) => { datastoreRole(b).rules[0].resources = ['*']; }, /wildcards/],
    ['the datastore ClusterRole unbound', 'kubernetes', (b) => { for (const [k, ds] of b.manifests) b.manifests.set(k, ds.filter((d) => d.metadata?.name !== 'calico-fanout-kubernetes-datastore' || d.kind !== 'ClusterRoleBinding')); }, /is bound/],
    ['a bad setting value', 'kubernetes', (b) => { envOf(b, 'TYPHA_DATASTORETYPE').value = 'etcd'; }, /do not load/],
    ['the memory datastore', 'kubernetes', (b) => { ctr(b).env = ctr(b).env.filter((e: Obj) => e.name !== 'TYPHA_DATASTORETYPE'); }, /kubernetes/],
    ['the status page on', 'kubernetes', (b) => { envOf(b, 'TYPHA_STATUSPAGEENABLED').value = 'true'; }, /status page is off/],
    ['etcd with the Kubernetes datastore\'s reads', 'etcd', (b) => { b.manifests.get('rendered')!.push(...structuredClone(overlay('kubernetes').manifests.get('rendered')!.filter((d) => d.metadata?.name === 'calico-fanout-kubernetes-datastore'))); }, /grant exactly/],
    ['etcd over plain http', 'etcd', (b) => { envOf(b, 'TYPHA_ETCDENDPOINTS').value = 'http://etcd.example.internal:2379'; }, /do not load|https/],
    ['etcd without its CA', 'etcd', (b) => { ctr(b).env = ctr(b).env.filter((e: Obj) => e.name !== 'TYPHA_ETCDCAFILE'); }, /etcdCaFile/],
    ['etcd certificates not mounted', 'etcd', (b) => { ctr(b).volumeMounts = ctr(b).volumeMounts.filter((m: Obj) => m.mountPath !== '/calico-secrets'); }, /not under a volume mount/],
    ['etcd certificates from an emptyDir', 'etcd', (b) => { const v = podSpec(b).volumes.find((x: Obj) => x.secret); delete v.secret; v.emptyDir = {}; }, /not from a mounted Secret/],
    ['etcd certificates writable', 'etcd', (b) => { ctr(b).volumeMounts.find((m: Obj) => m.mountPath === '/calico-secrets').readOnly = false; }, /read-only/],
    ['etcd certificates unreadable by uid 10001', 'etcd', (b) => { delete podSpec(b).securityContext.fsGroup; }, /not readable/],
    ['etcd certificates owner-only', 'etcd', (b) => { podSpec(b).volumes.find((x: Obj) => x.secret).secret.defaultMode = 0o400; }, /not readable/],
    ['etcd overlay with another datastore', 'etcd', (b) => { envOf(b, 'TYPHA_DATASTORETYPE').value = 'kubernetes'; }, /etcdv3/],
    ['etcd overlay in the host network', 'etcd', (b) => { podSpec(b).hostNetwork = true; }, /host network/],
    ['etcd overlay as root', 'etcd', (b) => { podSpec(b).securityContext.runAsUser = 0; ctr(b).securityContext.runAsUser = 0; }, /runAsUser/],
    ['a tier below following itself', 'downstream', (b) => { envOf(b, 'TYPHA_UPSTREAMK8SSERVICENAME').value = 'calico-fanout-downstream'; }, /follows the root's Service/],
    ['a tier below with no upstream', 'downstream', (b) => { ctr(b).env = ctr(b).env.filter((e: Obj) => e.name !== 'TYPHA_UPSTREAMK8SSERVICENAME'); }, /do not load/],
    ['a tier below whose pods the root selects', 'downstream', (b) => { podLabels(b).app = APP; dep(b).spec.selector.matchLabels.app = APP; the(b, 'Service').spec.selector.app = APP; the(b, 'PodDisruptionBudget').spec.selector.matchLabels.app = APP; for (const t of podSpec(b).affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution) t.podAffinityTerm.labelSelector.matchLabels.app = APP; }, /must not select the pods of the tier below/],
    ['a tier below rebalancing over the root', 'downstream', (b) => { envOf(b, 'TYPHA_K8SSERVICENAME').value = 'calico-fanout'; }, /rebalancing reads the EndpointSlices of our Service/],
    ['a tier below as root', 'downstream', (b) => { podSpec(b).securityContext.runAsUser = 0; ctr(b).securityContext.runAsUser = 0; }, /runAsUser/],
  ];
  const baseMutations: [string, (b: Bundle) => void, RegExp][] = [
    ['a datastore in the base', (b) => { ctr(b).env.push({ name: 'TYPHA_DATASTORETYPE', value: 'kubernetes' }); }, /leaves TYPHA_DATASTORETYPE/],
    ['the status page on in the base', (b) => { envOf(b, 'TYPHA_STATUSPAGEENABLED').value = 'true'; }, /status page is off/],
    ['a Calico grant in the base', (b) => { role(b).rules.push({ apiGroups: ['crd.projectcalico.org'], resources: ['ippools'], verbs: ['get', 'list', 'watch'] }); }, /grant exactly/],
  ];

  for (const [what, name, mutate, expect] of overlayMutations) {
    test(`overlays/${name}: ${what}`, { skip: kubectlMissing || false }, async () => {
      const b = clone(overlay(name));
      mutate(b);
      await assert.rejects(checkAll(b), (err: Error) => {
        assert.match(err.message, expect, `rejected for another reason: ${err.message}`);
        return true;
      });
    });
  }

  for (const [what, mutate, expect] of [...mutations, ...baseMutations]) {
    test(what, async () => {
      const b = clone(bundle);
      mutate(b);
      await assert.rejects(checkAll(b), (err: Error) => {
        assert.match(err.message, expect, `rejected for another reason: ${err.message}`);
        return true;
      });
    });
  }
});

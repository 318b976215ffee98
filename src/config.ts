// Server configuration: one table of settings, read from (lowest to highest precedence) the
// defaults, an optional YAML/JSON config file, TYPHA_* environment variables and CLI flags.
// Typha's names are used where Typha has the setting. A bad value is an
// error naming the setting and where it came from; the CLI exits 2 on it.
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { AuthorizationError, parseAuthorization } from './authorization.js';

type Kind = 'int' | 'port' | 'seconds' | 'bytes' | 'number' | 'bool' | 'string' | 'file' | 'list' | 'oneof';

interface Setting {
  /** camelCase name: the config file key and the Config field. */
  readonly name: string;
  /** Typha-style name: TYPHA_<UPPER> in the environment; also accepted in the config file. */
  readonly typha: string;
  /** The environment variable, where Calico reads the setting under another name than TYPHA_<UPPER>. */
  readonly env?: string;
  readonly flag?: string;
  readonly kind: Kind;
  readonly default: unknown;
  readonly choices?: readonly string[];
  readonly min?: number;
  readonly help: string;
}

// The demo cluster shipped beside the code: one level up from src/, two from dist/src/.
const DEMO_CLUSTER = fileURLToPath([new URL('../examples/demo-cluster', import.meta.url), new URL('../../examples/demo-cluster', import.meta.url)]
  .find((u) => existsSync(u)) ?? new URL('../examples/demo-cluster', import.meta.url));

const TABLE = [
  { name: 'datastoreType', typha: 'DatastoreType', flag: 'datastore', kind: 'oneof', choices: ['memory', 'etcdv3', 'kubernetes', 'upstream'], default: 'memory', help: 'where the data comes from; memory serves the seed files, upstream another calico-fanout (a tier below it: README "Tiers")' },
  { name: 'memorySeedPaths', typha: 'MemorySeedPaths', flag: 'seed', kind: 'list', default: [DEMO_CLUSTER], help: 'YAML/JSON files or directories of Calico resources for the memory datastore' },
  { name: 'simulateChurn', typha: 'SimulateChurn', flag: 'simulate-churn', kind: 'number', min: 0, default: 0, help: 'memory datastore: rewrite workload endpoints at this many updates/s' },
  { name: 'etcdEndpoints', typha: 'EtcdEndpoints', flag: 'etcd-endpoints', kind: 'list', default: ['http://127.0.0.1:2379'], help: 'etcd client URLs, comma-separated' },
  { name: 'etcdCaFile', typha: 'EtcdCaFile', flag: 'etcd-ca-file', kind: 'file', default: '', help: 'CA bundle to verify etcd (TLS)' },
  { name: 'etcdCertFile', typha: 'EtcdCertFile', flag: 'etcd-cert-file', kind: 'file', default: '', help: 'client certificate for etcd (TLS)' },
  { name: 'etcdKeyFile', typha: 'EtcdKeyFile', flag: 'etcd-key-file', kind: 'file', default: '', help: 'client key for etcd (TLS)' },
  { name: 'etcdUsername', typha: 'EtcdUsername', flag: 'etcd-username', kind: 'string', default: '', help: 'etcd user (etcd authentication)' },
  { name: 'etcdPassword', typha: 'EtcdPassword', kind: 'string', default: '', help: 'etcd password (environment or config file only)' },
  { name: 'etcdPrefix', typha: 'EtcdPrefix', flag: 'etcd-prefix', kind: 'string', default: '/calico/', help: 'key prefix to list and watch' },
  { name: 'etcdPageSize', typha: 'EtcdPageSize', kind: 'int', min: 1, default: 10_000, help: 'keys per range request when listing' },
  { name: 'etcdProgressIntervalSecs', typha: 'EtcdProgressIntervalSecs', kind: 'seconds', min: 0.01, default: 10, help: 'ask the etcd watch for progress this often' },
  { name: 'etcdWatchTimeoutSecs', typha: 'EtcdWatchTimeoutSecs', kind: 'seconds', min: 0.01, default: 30, help: 'restart a watch that answers nothing this long' },
  { name: 'kubeconfig', typha: 'Kubeconfig', flag: 'kubeconfig', kind: 'file', default: '', help: 'kubernetes datastore: kubeconfig file (default: in-cluster service account, else $KUBECONFIG or ~/.kube/config)' },
  { name: 'kubernetesPageSize', typha: 'KubernetesPageSize', kind: 'int', min: 1, default: 500, help: 'kubernetes datastore: objects per list request (limit/continue paging)' },
  { name: 'kubernetesWatchTimeoutSecs', typha: 'KubernetesWatchTimeoutSecs', kind: 'seconds', min: 1, default: 300, help: 'kubernetes datastore: ask the API server to end each watch after about this long (then it resumes)' },
  { name: 'kubernetesWatchInactivitySecs', typha: 'KubernetesWatchInactivitySecs', kind: 'seconds', min: 0.01, default: 120, help: 'kubernetes datastore: restart a watch that sends nothing, not even a bookmark, this long' },
  { name: 'kubernetesMissingPollSecs', typha: 'KubernetesMissingPollSecs', kind: 'seconds', min: 0.01, default: 30, help: 'kubernetes datastore: list a collection that is not there (404: its CRD not installed) again this often; meanwhile it counts as empty' },
  // Calico's own name for it, without the TYPHA_ prefix.
  { name: 'calicoApiGroup', typha: 'CalicoAPIGroup', env: 'CALICO_API_GROUP', kind: 'oneof', choices: ['crd.projectcalico.org/v1', 'projectcalico.org/v3'], default: '', help: 'kubernetes datastore: the API group of Calico\'s resources (default: discovered through /apis: projectcalico.org/v3 when only that group is served)' },
  // Calico's own name for it, without the TYPHA_ prefix.
  { name: 'usePodCIDR', typha: 'UsePodCIDR', env: 'USE_POD_CIDR', flag: 'use-pod-cidr', kind: 'bool', default: false, help: 'host-local IPAM (Kubernetes pod CIDRs): the felix and bgp views carry no IPAM blocks or block affinities, as Typha\'s syncers; kubernetes datastore: a Node\'s IPIP tunnel address is the first address of its spec.podCIDR' },
  { name: 'interfacePrefix', typha: 'InterfacePrefix', env: 'FELIX_INTERFACEPREFIX', flag: 'interface-prefix', kind: 'list', default: ['cali'], help: 'kubernetes datastore: workload interface name prefixes, comma-separated (e.g. eni on EKS, gke, azv); pod interfaces are named with the first, as the CNI plugin names them' },
  // Tiers: the upstream datastore is another calico-fanout's mirror view, read with the client library.
  { name: 'upstreamUrls', typha: 'UpstreamURLs', flag: 'upstream-urls', kind: 'list', default: [], help: 'upstream datastore: the upstream calico-fanout replicas\' client URLs (ws:// or wss://), comma-separated' },
  { name: 'upstreamK8sServiceName', typha: 'UpstreamK8sServiceName', flag: 'upstream-service', kind: 'string', default: '', help: 'upstream datastore: find the upstream replicas from this Service\'s EndpointSlices (its port named TYPHA_K8SPORTNAME), as agents find servers' },
  { name: 'upstreamK8sNamespace', typha: 'UpstreamK8sNamespace', kind: 'string', default: 'calico-system', help: 'upstream datastore: the namespace of TYPHA_UPSTREAMK8SSERVICENAME' },
  { name: 'upstreamCAFile', typha: 'UpstreamCAFile', kind: 'file', default: '', help: 'upstream datastore: CA bundle the upstream servers\' certificates must chain to (wss://)' },
  { name: 'upstreamCertFile', typha: 'UpstreamCertFile', kind: 'file', default: '', help: 'upstream datastore: this server\'s client certificate for the upstream (its peer identity)' },
  { name: 'upstreamKeyFile', typha: 'UpstreamKeyFile', kind: 'file', default: '', help: 'upstream datastore: the key of TYPHA_UPSTREAMCERTFILE' },
  { name: 'upstreamServerCN', typha: 'UpstreamServerCN', kind: 'string', default: '', help: 'upstream datastore: the CN the upstream servers\' certificates must have' },
  { name: 'upstreamServerURISAN', typha: 'UpstreamServerURISAN', kind: 'string', default: '', help: 'upstream datastore: the URI SAN the upstream servers\' certificates must have (either this or the CN)' },
  { name: 'serverHost', typha: 'ServerHost', flag: 'server-host', kind: 'string', default: '', help: 'client port bind address ("" = all interfaces)' },
  { name: 'serverPort', typha: 'ServerPort', flag: 'server-port', kind: 'port', default: 5473, help: 'client port (0 = 5473, -1 = ephemeral)' },
  { name: 'healthEnabled', typha: 'HealthEnabled', kind: 'bool', default: true, help: 'serve /livez and /readyz' },
  { name: 'healthHost', typha: 'HealthHost', flag: 'health-host', kind: 'string', default: '', help: 'health bind address ("" = all interfaces)' },
  { name: 'healthPort', typha: 'HealthPort', flag: 'health-port', kind: 'port', default: 9098, help: 'health port (-1 = ephemeral)' },
  // Off unless asked for: the page lists clients' addresses, identities and nodes, and the health
  // port is reachable by whatever reaches the pod (Calico's own Typha runs on the host network).
  { name: 'statusPageEnabled', typha: 'StatusPageEnabled', flag: 'status-page', kind: 'bool', default: false, help: 'serve the status page (/ and /status.json: clients\' addresses, identities and nodes) on the health port' },
  { name: 'prometheusMetricsEnabled', typha: 'PrometheusMetricsEnabled', kind: 'bool', default: true, help: 'serve /metrics' },
  { name: 'prometheusMetricsHost', typha: 'PrometheusMetricsHost', flag: 'metrics-host', kind: 'string', default: '', help: 'metrics bind address ("" = all interfaces)' },
  { name: 'prometheusMetricsPort', typha: 'PrometheusMetricsPort', flag: 'metrics-port', kind: 'port', default: 9093, help: 'metrics port (-1 = ephemeral)' },
  { name: 'logSeverityScreen', typha: 'LogSeverityScreen', flag: 'log-level', kind: 'oneof', choices: ['DEBUG', 'INFO', 'WARNING', 'ERROR', 'CRITICAL', 'NONE'], default: 'INFO', help: 'log level' },
  { name: 'serverPingIntervalSecs', typha: 'ServerPingIntervalSecs', kind: 'seconds', min: 0.01, default: 10, help: 'ping every client this often' },
  { name: 'serverPongTimeoutSecs', typha: 'ServerPongTimeoutSecs', kind: 'seconds', min: 0.01, default: 60, help: 'close a client silent this long' },
  { name: 'serverHandshakeTimeoutSecs', typha: 'ServerHandshakeTimeoutSecs', kind: 'seconds', min: 0.01, default: 10, help: 'close a connection without hello after this long' },
  { name: 'serverHoldTimeoutSecs', typha: 'ServerHoldTimeoutSecs', kind: 'seconds', min: 0.01, default: 10, help: 'hold a client whose cache is newer than this replica at most this long while the replica catches up, then send it to another replica' },
  { name: 'serverWriteTimeoutSecs', typha: 'ServerWriteTimeoutSecs', kind: 'seconds', min: 0.01, default: 120, help: 'close a client whose socket makes no progress this long (stall timeout)' },
  { name: 'serverHighWaterMarkBytes', typha: 'ServerHighWaterMarkBytes', kind: 'bytes', min: 1024, default: 1 << 20, help: 'stop writing to a client whose socket buffer (or, under flow control, whose unacknowledged bytes) reach this much' },
  { name: 'serverMaxInboundMessageBytes', typha: 'ServerMaxInboundMessageBytes', kind: 'bytes', min: 1024, default: 256 << 10, help: 'largest frame a client may send (a hello with a cache digest is up to 128 KiB)' },
  { name: 'snapshotChunkBytes', typha: 'SnapshotChunkBytes', kind: 'bytes', min: 1024, default: 256 << 10, help: 'size of snapshot and catch-up frames' },
  { name: 'snapshotReuseSecs', typha: 'SnapshotReuseSecs', kind: 'seconds', min: 0, default: 1, help: 'serve a built snapshot to new clients for this long before building a fresher one' },
  { name: 'historyMaxBytes', typha: 'HistoryMaxBytes', flag: 'history-bytes', kind: 'bytes', min: 0, default: 64 << 20, help: 'memory for resume beyond the live state (deletion tombstones)' },
  { name: 'ingestBatchWindowSecs', typha: 'IngestBatchWindowSecs', kind: 'seconds', min: 0, default: 0.01, help: 'coalesce updates per key within this window (a tier below has none: each upstream frame is a batch already)' },
  { name: 'checksumIntervalSecs', typha: 'ChecksumIntervalSecs', kind: 'seconds', min: 0.01, default: 30, help: 'send each client its view checksum this often' },
  { name: 'serverCertFile', typha: 'ServerCertFile', flag: 'server-cert-file', kind: 'file', default: '', help: 'TLS certificate for the client port (PEM; reloaded when it changes)' },
  { name: 'serverKeyFile', typha: 'ServerKeyFile', flag: 'server-key-file', kind: 'file', default: '', help: 'TLS key for the client port (PEM; reloaded when it changes)' },
  { name: 'caFile', typha: 'CAFile', flag: 'ca-file', kind: 'file', default: '', help: 'CA bundle client certificates must chain to: mutual TLS' },
  { name: 'clientCN', typha: 'ClientCN', kind: 'string', default: '', help: 'required client certificate CN (exact, or a pattern with *)' },
  { name: 'clientURISAN', typha: 'ClientURISAN', kind: 'string', default: '', help: 'required client certificate URI SAN (exact, or a pattern: * within a path segment, ** across them, e.g. spiffe://cluster.local/ns/calico-system/sa/*)' },
  { name: 'clientAuthorization', typha: 'ClientAuthorization', kind: 'list', default: [], help: 'per-view authorization: identity-pattern=view|view,… (first match wins; {node} in a pattern must equal the hello\'s node; none: any verified client, any view)' },
  { name: 'allowUnauthenticatedMirror', typha: 'AllowUnauthenticatedMirror', kind: 'bool', default: false, help: 'without authorization rules, serve the mirror view (every node\'s data, for servers of a tier below) to any client: a tree on a trusted network; otherwise only a rule naming mirror grants it' },
  { name: 'prometheusMetricsCertFile', typha: 'PrometheusMetricsCertFile', kind: 'file', default: '', help: 'TLS certificate for the metrics and health listeners' },
  { name: 'prometheusMetricsKeyFile', typha: 'PrometheusMetricsKeyFile', kind: 'file', default: '', help: 'TLS key for the metrics and health listeners' },
  { name: 'prometheusMetricsCAFile', typha: 'PrometheusMetricsCAFile', kind: 'file', default: '', help: 'CA bundle metrics scrapers\' certificates must chain to (mutual TLS on the metrics listener)' },
  { name: 'maxConnectionsLowerLimit', typha: 'MaxConnectionsLowerLimit', kind: 'int', min: 0, default: 400, help: 'the connection limit never goes below this, whatever the fair share' },
  { name: 'maxConnectionsUpperLimit', typha: 'MaxConnectionsUpperLimit', kind: 'int', min: 1, default: 10000, help: 'connections above this get goaway {reason: overload} at once' },
  { name: 'connectionRebalancingMode', typha: 'ConnectionRebalancingMode', kind: 'oneof', choices: ['none', 'kubernetes', 'peers'], default: 'none', help: 'how the fair share of clients is found: kubernetes (the Service\'s ready replicas), peers (the peers list), none' },
  { name: 'peers', typha: 'Peers', kind: 'list', default: [], help: 'peers mode: every replica\'s health URL (http://host:port), this one included' },
  { name: 'k8sServiceName', typha: 'K8sServiceName', kind: 'string', default: 'calico-fanout', help: 'kubernetes mode: the Service whose EndpointSlices list the replicas' },
  { name: 'k8sNamespace', typha: 'K8sNamespace', kind: 'string', default: 'calico-system', help: 'kubernetes mode: the Service\'s namespace' },
  { name: 'k8sPortName', typha: 'K8sPortName', kind: 'string', default: 'calico-typha', help: 'the client port\'s name in the Service (as Calico clients expect)' },
  { name: 'k8sServicePollIntervalSecs', typha: 'K8sServicePollIntervalSecs', kind: 'seconds', min: 0.01, default: 30, help: 'how often the replicas and their loads are looked up' },
  { name: 'rebalanceShedPerSec', typha: 'RebalanceShedPerSec', kind: 'number', min: 0.01, default: 1, help: 'clients shed per second while over the fair share' },
  { name: 'shutdownTimeoutSecs', typha: 'ShutdownTimeoutSecs', kind: 'seconds', min: 0, default: 300, help: 'on SIGTERM, spread the goaways to clients over this long, then exit' },
] as const satisfies readonly Setting[];

/** Every setting, in the order `--help` lists them. */
export const SETTINGS: readonly Setting[] = TABLE;

/** The TypeScript type a setting of this kind holds once parsed. */
type ValueOf<S extends Setting> =
  S['kind'] extends 'int' | 'port' | 'seconds' | 'bytes' | 'number' ? number
    : S['kind'] extends 'bool' ? boolean
      : S['kind'] extends 'list' ? string[]
        // A oneof may default to '' (not set: decided at run time).
        : S['kind'] extends 'oneof' ? NonNullable<S['choices']>[number] | S['default']
          : string;

/** The settings as loaded: one field per row of the table, typed by its kind. */
export type Config = { -readonly [S in (typeof TABLE)[number] as S['name']]: ValueOf<S> };

export class ConfigError extends Error {}

export const envName = (s: Setting): string => s.env ?? `TYPHA_${s.typha.toUpperCase()}`;

const BYTE_UNITS: Record<string, number> = { '': 1, b: 1, k: 1e3, kb: 1e3, kib: 1024, m: 1e6, mb: 1e6, mib: 1 << 20, g: 1e9, gb: 1e9, gib: 1 << 30 };

function parseValue(s: Setting, raw: unknown, source: string): unknown {
  const fail = (why: string): never => {
    throw new ConfigError(`${s.name} (${envName(s)}): ${JSON.stringify(raw)} from ${source} ${why}`);
  };
  const text = typeof raw === 'string' ? raw.trim() : raw;
  const num = (): number => {
    const n = typeof text === 'number' ? text : typeof text === 'string' && text !== '' ? Number(text) : NaN;
    if (!Number.isFinite(n)) fail('is not a number');
    if (s.min !== undefined && n < s.min) fail(`is below the minimum ${s.min}`);
    return n;
  };
  switch (s.kind) {
    case 'number':
    case 'seconds':
      return num();
    case 'int': {
      const n = num();
      if (!Number.isInteger(n)) fail('is not an integer');
      return n;
    }
    case 'port': {
      const n = num();
      if (!Number.isInteger(n) || n < -1 || n > 65535) fail('is not a port (0-65535, or -1 for an ephemeral port)');
      return n;
    }
    case 'bytes': {
      if (typeof text === 'number') return Math.round(num());
      const m = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(String(text));
      const unit = m ? BYTE_UNITS[m[2]!.toLowerCase()] : undefined;
      if (!m || unit === undefined) return fail('is not a size (e.g. 1048576, 512KiB, 64MiB)');
      const n = Math.round(Number(m[1]) * unit);
      if (s.min !== undefined && n < s.min) fail(`is below the minimum ${s.min} bytes`);
      return n;
    }
    case 'bool': {
      if (typeof text === 'boolean') return text;
      const t = String(text).toLowerCase();
      if (['true', '1', 'yes', 'on'].includes(t)) return true;
      if (['false', '0', 'no', 'off'].includes(t)) return false;
      return fail('is not a boolean (true/false)');
    }
    case 'oneof': {
      const t = String(text);
      const hit = s.choices!.find((c) => c.toLowerCase() === t.toLowerCase());
      if (!hit) fail(`is not one of ${s.choices!.join(', ')}`);
      return hit;
    }
    case 'list': {
      const items = Array.isArray(text) ? text.map(String) : String(text).split(',').map((x) => x.trim()).filter(Boolean);
      if (items.length === 0) fail('is an empty list');
      return items;
    }
    case 'string':
      if (typeof text !== 'string') fail('is not a string');
      return text;
    case 'file':
      if (typeof text !== 'string') fail('is not a file path');
      if (text !== '' && !existsSync(text as string)) fail('names a file that does not exist');
      return text;
  }
}

export interface ConfigSources {
  flags?: Record<string, unknown>;
  env?: NodeJS.ProcessEnv;
  configFile?: string;
}

export function loadConfig({ flags = {}, env = process.env, configFile }: ConfigSources = {}): Config {
  const out: Record<string, unknown> = {};
  const file = configFile ? readConfigFile(configFile) : {};
  const known = new Set(SETTINGS.flatMap((s) => [s.name, s.typha, s.typha.toLowerCase()]));
  for (const k of Object.keys(file)) {
    if (!known.has(k)) throw new ConfigError(`config file ${configFile}: unknown setting ${JSON.stringify(k)}`);
  }
  for (const s of SETTINGS) {
    let value = s.default;
    const fromFile = file[s.name] ?? file[s.typha] ?? file[s.typha.toLowerCase()];
    if (fromFile !== undefined) value = parseValue(s, fromFile, `config file ${configFile}`);
    const fromEnv = env[envName(s)];
    // An empty variable is unset, as in Typha.
    if (fromEnv !== undefined && fromEnv !== '') value = parseValue(s, fromEnv, `environment variable ${envName(s)}`);
    const fromFlag = flags[s.name];
    if (fromFlag !== undefined) value = parseValue(s, fromFlag, `flag --${s.flag ?? s.name}`);
    out[s.name] = value;
  }
  const config = out as unknown as Config;
  validate(config);
  return config;
}

/** Rules across settings. */
function validate(c: Config): void {
  for (const e of c.etcdEndpoints) {
    let url: URL | undefined;
    try { url = new URL(e); } catch { /* reported below */ }
    if (!url || !['http:', 'https:'].includes(url.protocol) || !url.port) {
      throw new ConfigError(`etcdEndpoints (TYPHA_ETCDENDPOINTS): ${JSON.stringify(e)} is not an http(s)://host:port URL`);
    }
  }
  if (Boolean(c.etcdCertFile) !== Boolean(c.etcdKeyFile)) {
    throw new ConfigError('etcdCertFile (TYPHA_ETCDCERTFILE) and etcdKeyFile (TYPHA_ETCDKEYFILE) go together: set both or neither');
  }
  if (c.etcdCaFile && c.etcdEndpoints.some((e) => e.startsWith('http:'))) {
    throw new ConfigError('etcdCaFile (TYPHA_ETCDCAFILE) is set but etcdEndpoints (TYPHA_ETCDENDPOINTS) has http:// URLs: use https://');
  }
  if (!c.etcdPrefix.startsWith('/')) throw new ConfigError(`etcdPrefix (TYPHA_ETCDPREFIX): ${JSON.stringify(c.etcdPrefix)} must start with /`);
  for (const [cert, key, what] of [[c.serverCertFile, c.serverKeyFile, 'serverCertFile (TYPHA_SERVERCERTFILE) and serverKeyFile (TYPHA_SERVERKEYFILE)'],
    [c.prometheusMetricsCertFile, c.prometheusMetricsKeyFile, 'prometheusMetricsCertFile (TYPHA_PROMETHEUSMETRICSCERTFILE) and prometheusMetricsKeyFile (TYPHA_PROMETHEUSMETRICSKEYFILE)']] as const) {
    if (Boolean(cert) !== Boolean(key)) throw new ConfigError(`${what} go together: set both or neither`);
  }
  if (c.caFile && !c.serverCertFile) throw new ConfigError('caFile (TYPHA_CAFILE) asks for mutual TLS, which needs serverCertFile and serverKeyFile');
  if ((c.clientCN || c.clientURISAN || c.clientAuthorization.length) && !c.caFile) {
    throw new ConfigError('clientCN, clientURISAN and clientAuthorization need caFile (TYPHA_CAFILE): without client certificates there is no identity to check');
  }
  try {
    parseAuthorization(c.clientAuthorization);
  } catch (err) {
    if (err instanceof AuthorizationError) throw new ConfigError(`clientAuthorization (TYPHA_CLIENTAUTHORIZATION): ${err.message}`);
    throw err;
  }
  validateUpstream(c);
  if (c.allowUnauthenticatedMirror && c.clientAuthorization.length) {
    throw new ConfigError('allowUnauthenticatedMirror (TYPHA_ALLOWUNAUTHENTICATEDMIRROR) has no effect with clientAuthorization (TYPHA_CLIENTAUTHORIZATION): grant the mirror view in a rule (<peer identity>=mirror)');
  }
  if (c.statusPageEnabled && !c.healthEnabled) throw new ConfigError('statusPageEnabled (TYPHA_STATUSPAGEENABLED) serves the page on the health port, which healthEnabled (TYPHA_HEALTHENABLED) turns off');
  // A shared listener would put the page in front of every metrics scraper.
  if (c.statusPageEnabled && c.prometheusMetricsEnabled && c.healthPort !== -1 && effectivePort(c.healthPort, 9098) === effectivePort(c.prometheusMetricsPort, 9093)) {
    throw new ConfigError(`statusPageEnabled (TYPHA_STATUSPAGEENABLED) is never served on the metrics port, and healthPort (TYPHA_HEALTHPORT) is the metrics port (${effectivePort(c.healthPort, 9098)}): give them different ports`);
  }
  if (c.maxConnectionsLowerLimit > c.maxConnectionsUpperLimit) {
    throw new ConfigError(`maxConnectionsLowerLimit (${c.maxConnectionsLowerLimit}) is above maxConnectionsUpperLimit (${c.maxConnectionsUpperLimit})`);
  }
  if (c.connectionRebalancingMode === 'peers' && c.peers.length === 0) throw new ConfigError('connectionRebalancingMode peers needs peers (TYPHA_PEERS): every replica\'s health URL');
  for (const p of c.peers) {
    let url: URL | undefined;
    try { url = new URL(p); } catch { /* reported below */ }
    if (!url || !['http:', 'https:'].includes(url.protocol)) throw new ConfigError(`peers (TYPHA_PEERS): ${JSON.stringify(p)} is not an http(s):// URL`);
  }
}

/** The upstream datastore's settings (tiers). */
function validateUpstream(c: Config): void {
  const tls = c.upstreamCAFile || c.upstreamCertFile || c.upstreamKeyFile || c.upstreamServerCN || c.upstreamServerURISAN;
  for (const u of c.upstreamUrls) {
    let url: URL | undefined;
    try { url = new URL(u); } catch { /* reported below */ }
    if (!url || !['ws:', 'wss:'].includes(url.protocol) || !url.hostname) throw new ConfigError(`upstreamUrls (TYPHA_UPSTREAMURLS): ${JSON.stringify(u)} is not a ws(s)://host:port URL`);
    if (tls && url.protocol !== 'wss:') throw new ConfigError(`upstreamUrls (TYPHA_UPSTREAMURLS): ${JSON.stringify(u)} is not wss:// but the upstream TLS settings are set`);
  }
  if (c.datastoreType === 'upstream' && c.upstreamUrls.length === 0 && !c.upstreamK8sServiceName) {
    throw new ConfigError('datastoreType upstream needs upstreamUrls (TYPHA_UPSTREAMURLS) or upstreamK8sServiceName (TYPHA_UPSTREAMK8SSERVICENAME)');
  }
  if (Boolean(c.upstreamCertFile) !== Boolean(c.upstreamKeyFile)) throw new ConfigError('upstreamCertFile (TYPHA_UPSTREAMCERTFILE) and upstreamKeyFile (TYPHA_UPSTREAMKEYFILE) go together: set both or neither');
  // As agents' TLS: the upstream is dialled by address, so its certificate must name it otherwise.
  if (tls && !c.upstreamServerCN && !c.upstreamServerURISAN) {
    throw new ConfigError('upstream TLS needs upstreamServerCN (TYPHA_UPSTREAMSERVERCN) or upstreamServerURISAN (TYPHA_UPSTREAMSERVERURISAN): the upstream is identified by its certificate, not its address');
  }
}

function readConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`config file ${path}: ${(err as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = path.endsWith('.json') ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    throw new ConfigError(`config file ${path}: ${(err as Error).message}`);
  }
  if (parsed === null || parsed === undefined) return {};
  if (typeof parsed !== 'object' || Array.isArray(parsed)) throw new ConfigError(`config file ${path}: expected a mapping of settings`);
  return parsed as Record<string, unknown>;
}

/** The ports as the server binds them (Typha: 0 means the default, -1 an ephemeral port). */
export function effectivePort(port: number, dflt: number): number {
  return port === 0 ? dflt : port === -1 ? 0 : port;
}

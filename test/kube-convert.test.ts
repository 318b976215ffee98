// Kubernetes objects → Calico's model, as Calico's Kubernetes datastore converts them
// (src/datastore/kubernetes/*). Table-driven: every case states the exact key and value (or null,
// or the ConvertError) it must produce. Fixtures under test/fixtures/kube are shaped as the API
// server returns objects (uid, resourceVersion, managedFields, status). Every produced resource
// must also be accepted by the store (dedupe/prepare.ts) and parse back to its kind (parseKey).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { prepare } from '../dedupe/prepare.js';
import { BLOCK_AFFINITY, IPAM_BLOCK, keyForResource, parseKey } from '../src/model/kinds.js';
import { ConvertError, WATCHED_RESOURCES, type CalicoResource } from '../src/datastore/kubernetes/resources.js';
import { convertUID } from '../src/datastore/kubernetes/read.js';
import { vethNameForWorkload, workloadEndpointName } from '../src/datastore/kubernetes/convert-pod.js';

const FIXTURES = join(import.meta.dirname, 'fixtures', 'kube');
const DEMO = join(import.meta.dirname, '..', 'examples', 'demo-cluster');
const fixture = (name: string): any => JSON.parse(readFileSync(join(FIXTURES, name), 'utf8'));
const demoDocs = (file: string): any[] => parseAllDocuments(readFileSync(join(DEMO, file), 'utf8')).map((d) => d.toJS()).filter(Boolean);

const PODS = '/api/v1/pods';
const NODES = '/api/v1/nodes';
const NAMESPACES = '/api/v1/namespaces';
const SERVICEACCOUNTS = '/api/v1/serviceaccounts';
const NETPOLS = '/apis/networking.k8s.io/v1/networkpolicies';
const SERVICES = '/api/v1/services';
const SLICES = '/apis/discovery.k8s.io/v1/endpointslices';
const crd = (plural: string) => `/apis/crd.projectcalico.org/v1/${plural}`;

function collection(path: string) {
  const r = WATCHED_RESOURCES.find((w) => w.path === path);
  assert.ok(r, `no watched collection ${path}`);
  return r;
}

function deepFreeze<T>(v: T): T {
  if (typeof v === 'object' && v !== null) {
    for (const x of Object.values(v)) deepFreeze(x);
    Object.freeze(v);
  }
  return v;
}

/**
 * Converts through the table; checks purity (a frozen input, converted twice, gives equal results)
 * and, for a resource, that the store accepts it and its key parses back to the value's kind.
 */
function convert(path: string, obj: unknown): CalicoResource | null {
  const input = deepFreeze(structuredClone(obj));
  const out = collection(path).convert(input);
  assert.deepEqual(collection(path).convert(input), out, 'same input, same output');
  if (out) {
    const parsed = parseKey(out.key);
    assert.ok(parsed, `${out.key} parses`);
    if (!out.key.startsWith('/calico/ipam/')) {
      assert.equal(out.value.kind, parsed.kind, 'value kind is the key kind');
      assert.equal((out.value.metadata as any).name, parsed.name);
      assert.ok(!('resourceVersion' in (out.value.metadata as any)), 'no resourceVersion in the value');
    }
    const p = prepare({ key: out.key, value: out.value, revision: '1' });
    // Kinds no view carries (IPReservation, KubeControllersConfiguration) are known, not served.
    assert.ok(p.ok || (!p.ignored && p.unserved), `the store accepts ${out.key}: ${JSON.stringify(p)}`);
  }
  return out;
}

interface Case { name: string; input: unknown; expected: CalicoResource | null }

function runTable(path: string, cases: Case[]): void {
  for (const c of cases) test(c.name, () => assert.deepEqual(convert(path, c.input), c.expected));
}

// ---- Pods → WorkloadEndpoints -----------------------------------------------------------------

/** A minimal running pod, as the API server returns one. */
function pod(over: { name?: string; ns?: string; node?: string | undefined; ips?: string[]; podIP?: string; phase?: string;
  annotations?: Record<string, string>; labels?: Record<string, string>; sa?: string; hostNetwork?: boolean;
  deletionTimestamp?: string; containers?: any[]; initContainers?: any[] } = {}): any {
  const ips = over.ips ?? ['10.244.2.5'];
  const p: any = {
    kind: 'Pod',
    apiVersion: 'v1',
    metadata: {
      name: over.name ?? 'web-6d4cf56db6-x8kzp',
      generateName: 'web-6d4cf56db6-',
      namespace: over.ns ?? 'frontend',
      uid: '1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d',
      resourceVersion: '88120',
      creationTimestamp: '2025-03-14T09:35:10Z',
      labels: over.labels ?? { app: 'web', 'pod-template-hash': '6d4cf56db6' },
      ...(over.annotations ? { annotations: over.annotations } : {}),
      ...(over.deletionTimestamp ? { deletionTimestamp: over.deletionTimestamp, deletionGracePeriodSeconds: 30 } : {}),
    },
    spec: {
      containers: over.containers ?? [{ name: 'web', image: 'nginx:1.27', ports: [{ name: 'http', containerPort: 8080, protocol: 'TCP' }] }],
      ...(over.initContainers ? { initContainers: over.initContainers } : {}),
      restartPolicy: 'Always',
      serviceAccountName: over.sa ?? 'web',
      serviceAccount: over.sa ?? 'web',
      ...(over.node === undefined && 'node' in over ? {} : { nodeName: over.node ?? 'worker-2' }),
      ...(over.hostNetwork ? { hostNetwork: true } : {}),
    },
    status: {
      phase: over.phase ?? 'Running',
      hostIP: '192.168.10.12',
      ...(ips.length ? { podIP: over.podIP ?? ips[0], podIPs: ips.map((ip) => ({ ip })) } : {}),
      startTime: '2025-03-14T09:35:10Z',
    },
  };
  if (over.podIP !== undefined && ips.length === 0) p.status.podIP = over.podIP;
  return p;
}

/** The endpoint `pod()` gives, with overrides. */
function wep(over: { name?: string; ns?: string; node?: string; pod?: string; ipNetworks?: string[]; labels?: Record<string, string>;
  sa?: string | null; ports?: any[] | null; spec?: Record<string, unknown>; annotations?: Record<string, string> } = {}): CalicoResource {
  const ns = over.ns ?? 'frontend';
  const podName = over.pod ?? 'web-6d4cf56db6-x8kzp';
  const node = over.node ?? 'worker-2';
  const name = over.name ?? `${node.replace(/-/g, '--')}-k8s-${podName.replace(/-/g, '--')}-eth0`;
  const sa = over.sa === null ? undefined : over.sa ?? 'web';
  const ports = over.ports === null ? undefined : over.ports ?? [{ name: 'http', protocol: 'TCP', port: 8080 }];
  return {
    key: `/calico/resources/v3/projectcalico.org/workloadendpoints/${ns}/${name}`,
    value: {
      apiVersion: 'projectcalico.org/v3',
      kind: 'WorkloadEndpoint',
      metadata: {
        name,
        namespace: ns,
        uid: '1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d',
        creationTimestamp: '2025-03-14T09:35:10Z',
        labels: over.labels ?? {
          app: 'web', 'pod-template-hash': '6d4cf56db6',
          'projectcalico.org/namespace': ns, 'projectcalico.org/orchestrator': 'k8s',
          ...(sa ? { 'projectcalico.org/serviceaccount': sa } : {}),
        },
        ...(over.annotations ? { annotations: over.annotations } : {}),
      },
      spec: {
        orchestrator: 'k8s',
        node,
        pod: podName,
        endpoint: 'eth0',
        ipNetworks: over.ipNetworks ?? ['10.244.2.5/32'],
        profiles: [`kns.${ns}`, ...(sa ? [`ksa.${ns}.${sa}`] : [])],
        interfaceName: vethNameForWorkload(ns, podName),
        ...(sa ? { serviceAccountName: sa } : {}),
        ...(ports ? { ports } : {}),
        ...over.spec,
      },
    },
  };
}

describe('Pod → WorkloadEndpoint', () => {
  test('a running pod, as the API server returns it (coredns on worker-1)', () => {
    assert.deepEqual(convert(PODS, fixture('pod-coredns.json')), {
      key: '/calico/resources/v3/projectcalico.org/workloadendpoints/kube-system/worker--1-k8s-coredns--7db6d8ff4d--4xk9p-eth0',
      value: {
        apiVersion: 'projectcalico.org/v3',
        kind: 'WorkloadEndpoint',
        metadata: {
          name: 'worker--1-k8s-coredns--7db6d8ff4d--4xk9p-eth0',
          namespace: 'kube-system',
          uid: '9c4e4d8a-3f0b-4a56-8d3e-2f1b6c7a9e01',
          creationTimestamp: '2025-03-14T09:26:53Z',
          labels: {
            'k8s-app': 'kube-dns',
            'pod-template-hash': '7db6d8ff4d',
            'projectcalico.org/namespace': 'kube-system',
            'projectcalico.org/orchestrator': 'k8s',
            'projectcalico.org/serviceaccount': 'coredns',
          },
        },
        spec: {
          orchestrator: 'k8s',
          node: 'worker-1',
          pod: 'coredns-7db6d8ff4d-4xk9p',
          endpoint: 'eth0',
          containerID: '9066e539952d87467d5fe1c559d93729098f02bbd00b5da3c4b4581eecde2a12',
          ipNetworks: ['10.244.1.2/32'],
          profiles: ['kns.kube-system', 'ksa.kube-system.coredns'],
          interfaceName: 'calicda4fa553a8',
          serviceAccountName: 'coredns',
          ports: [
            { name: 'dns', protocol: 'UDP', port: 53 },
            { name: 'dns-tcp', protocol: 'TCP', port: 53 },
            { name: 'metrics', protocol: 'TCP', port: 9153 },
          ],
        },
      },
    });
  });

  test('the same endpoint as examples/demo-cluster serves, but for the CNI-written mac', () => {
    const demo = demoDocs('50-endpoints.yaml').find((d) => d.spec.pod === 'coredns-7db6d8ff4d-4xk9p');
    const { mac: _mac, ...spec } = demo.spec;
    const out = convert(PODS, fixture('pod-coredns.json'))!;
    const { uid: _uid, creationTimestamp: _ct, ...metadata } = out.value.metadata as any;
    assert.deepEqual({ ...out.value, metadata }, { ...demo, spec });
    assert.equal(out.key, keyForResource(demo));
  });

  runTable(PODS, [
    { name: 'running, one IPv4 address', input: pod(), expected: wep() },
    {
      name: 'dual-stack: every status.podIPs entry, /32 and /128, IPv6 printed canonically',
      input: pod({ ips: ['10.244.2.5', 'FD00:10:244:2:0:0:0:5'] }),
      expected: wep({ ipNetworks: ['10.244.2.5/32', 'fd00:10:244:2::5/128'] }),
    },
    {
      name: 'status.podIP when status.podIPs is absent',
      input: (() => { const p = pod(); delete p.status.podIPs; return p; })(),
      expected: wep(),
    },
    {
      name: 'no status IP yet: the Calico CNI annotations (plural first)',
      input: pod({ ips: [], annotations: { 'cni.projectcalico.org/podIP': '10.244.2.5/32', 'cni.projectcalico.org/podIPs': '10.244.2.5/32,fd00:10:244:2::5/128' } }),
      expected: wep({ ipNetworks: ['10.244.2.5/32', 'fd00:10:244:2::5/128'] }),
    },
    {
      name: 'no status IP yet: the singular Calico annotation',
      input: pod({ ips: [], annotations: { 'cni.projectcalico.org/podIP': '10.244.2.5' } }),
      expected: wep(),
    },
    {
      name: 'no status IP yet: the AWS VPC CNI annotation',
      input: pod({ ips: [], annotations: { 'vpc.amazonaws.com/pod-ips': '10.244.2.5' } }),
      expected: wep(),
    },
    { name: 'not scheduled (no spec.nodeName): none', input: pod({ node: undefined, ips: [] }), expected: null },
    { name: 'scheduled, no IP yet: none', input: pod({ ips: [] }), expected: null },
    { name: 'host-networked: none, even with an IP', input: pod({ hostNetwork: true, ips: ['192.168.10.12'] }), expected: null },
    { name: 'phase Succeeded: none', input: pod({ phase: 'Succeeded' }), expected: null },
    { name: 'phase Failed: none', input: pod({ phase: 'Failed' }), expected: null },
    { name: 'legacy phase Completed: none', input: pod({ phase: 'Completed' }), expected: null },
    { name: 'Pending with an IP: an endpoint', input: pod({ phase: 'Pending' }), expected: wep() },
    {
      name: 'terminating, CNI has not torn down yet: still an endpoint',
      input: pod({ deletionTimestamp: '2025-03-14T10:00:00Z', annotations: { 'cni.projectcalico.org/podIP': '10.244.2.5/32' } }),
      expected: wep(),
    },
    {
      name: 'terminating, Calico CNI released the IP (podIP annotation emptied): none',
      input: pod({ deletionTimestamp: '2025-03-14T10:00:00Z', annotations: { 'cni.projectcalico.org/podIP': '', 'cni.projectcalico.org/podIPs': '' } }),
      expected: null,
    },
    {
      name: 'terminating, AWS CNI released the IP: none',
      input: pod({ deletionTimestamp: '2025-03-14T10:00:00Z', annotations: { 'vpc.amazonaws.com/pod-ips': '' } }),
      expected: null,
    },
    {
      name: 'an emptied podIP annotation without deletionTimestamp does not finish the pod',
      input: pod({ annotations: { 'cni.projectcalico.org/podIP': '' } }),
      expected: wep(),
    },
    {
      name: 'dashes doubled in node and pod names; dots untouched',
      input: pod({ name: 'api-5f8b9c7d4-q2wrt', node: 'ip-10-0-1-23.ec2.internal', ns: 'backend' }),
      expected: wep({ name: 'ip--10--0--1--23.ec2.internal-k8s-api--5f8b9c7d4--q2wrt-eth0', pod: 'api-5f8b9c7d4-q2wrt', node: 'ip-10-0-1-23.ec2.internal', ns: 'backend' }),
    },
    {
      name: 'ports: named and host ports of containers then init containers; unnamed without hostPort and unknown protocols skipped; TCP default',
      input: pod({
        containers: [
          { name: 'a', ports: [
            { containerPort: 5678 },
            { name: 'no-proto', containerPort: 1234 },
            { name: 'tcp-with-host-port', containerPort: 8080, hostPort: 5678, protocol: 'TCP' },
            { name: 'with-host-ip', containerPort: 8081, hostPort: 6789, hostIP: '1.2.3.4', protocol: 'TCP' },
            { containerPort: 500, hostPort: 5000, protocol: 'TCP' },
          ] },
          { name: 'b', ports: [
            { name: 'udp', containerPort: 432, protocol: 'UDP' },
            { name: 'sctp', containerPort: 891, protocol: 'SCTP' },
            { name: 'unknown', containerPort: 567, protocol: 'unknown' },
          ] },
          { name: 'c' },
        ],
        initContainers: [{ name: 'init', ports: [{ name: 'init-http', containerPort: 9000 }] }],
      }),
      expected: wep({ ports: [
        { name: 'no-proto', protocol: 'TCP', port: 1234 },
        { name: 'tcp-with-host-port', protocol: 'TCP', port: 8080, hostPort: 5678 },
        { name: 'with-host-ip', protocol: 'TCP', port: 8081, hostPort: 6789, hostIP: '1.2.3.4' },
        { name: '', protocol: 'TCP', port: 500, hostPort: 5000 },
        { name: 'udp', protocol: 'UDP', port: 432 },
        { name: 'sctp', protocol: 'SCTP', port: 891 },
        { name: 'init-http', protocol: 'TCP', port: 9000 },
      ] }),
    },
    { name: 'no named ports: no ports field', input: pod({ containers: [{ name: 'x', ports: [{ containerPort: 80 }] }] }), expected: wep({ ports: null }) },
    {
      name: 'no service account: namespace profile only, no serviceaccount label',
      input: (() => { const p = pod(); delete p.spec.serviceAccountName; delete p.spec.serviceAccount; return p; })(),
      expected: wep({ sa: null }),
    },
    {
      name: 'a service account name of 63+ characters gets a profile but no label',
      input: pod({ sa: 's'.repeat(63) }),
      expected: (() => {
        const w = wep({ sa: 's'.repeat(63) });
        delete (w.value.metadata as any).labels['projectcalico.org/serviceaccount'];
        return w;
      })(),
    },
    {
      name: 'floating IPs → ipNATs per address family',
      input: pod({ ips: ['10.244.2.5', 'fd00:10:244:2::5'], annotations: { 'cni.projectcalico.org/floatingIPs': '["198.51.100.7","2001:db8::7"]' } }),
      expected: wep({
        ipNetworks: ['10.244.2.5/32', 'fd00:10:244:2::5/128'],
        spec: { ipNATs: [{ internalIP: '10.244.2.5', externalIP: '198.51.100.7' }, { internalIP: 'fd00:10:244:2::5', externalIP: '2001:db8::7' }] },
      }),
    },
    {
      name: 'allowed source prefixes, normalised; network-status annotation carried',
      input: pod({ annotations: { 'cni.projectcalico.org/allowedSourcePrefixes': '["10.10.1.7/24"]', 'k8s.v1.cni.cncf.io/network-status': '[{"name":"k8s-pod-network"}]', unrelated: 'x' } }),
      expected: wep({ spec: { allowSpoofedSourcePrefixes: ['10.10.1.0/24'] }, annotations: { 'k8s.v1.cni.cncf.io/network-status': '[{"name":"k8s-pod-network"}]' } }),
    },
  ]);

  test('WorkloadEndpoint names and veth names (libcalico-go vectors)', () => {
    assert.equal(workloadEndpointName('node', 'pod-name'), 'node-k8s-pod--name-eth0');
    assert.equal(workloadEndpointName('nodeA', 'podA'), 'nodeA-k8s-podA-eth0');
    // conversion_test.go: "the calculation of this name should be consistent between releases".
    assert.equal(vethNameForWorkload('default', 'podA'), 'cali7f94ce7c295');
    assert.equal(vethNameForWorkload('namespace', 'podname', 'eni'), 'eni82111e10a96');
    assert.throws(() => workloadEndpointName('-node', 'p'), ConvertError);
  });
});

// ---- Namespaces and ServiceAccounts → Profiles ------------------------------------------------

describe('Namespace / ServiceAccount → Profile', () => {
  runTable(NAMESPACES, [
    {
      name: 'namespace: kns.<ns>, pcns. labels plus projectcalico.org/name, allow-all rules, converted UID',
      input: fixture('namespace-frontend.json'),
      expected: {
        key: '/calico/resources/v3/projectcalico.org/profiles/kns.frontend',
        value: {
          apiVersion: 'projectcalico.org/v3',
          kind: 'Profile',
          metadata: { name: 'kns.frontend', uid: 'f638b47c-52da-4cb6-8efe-0958d43cb27a', creationTimestamp: '2025-03-14T09:30:00Z' },
          spec: {
            ingress: [{ action: 'Allow' }],
            egress: [{ action: 'Allow' }],
            labelsToApply: { 'pcns.kubernetes.io/metadata.name': 'frontend', 'pcns.team': 'web', 'pcns.projectcalico.org/name': 'frontend' },
          },
        },
      },
    },
    {
      name: 'namespace without labels or uid',
      input: { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'bare' } },
      expected: {
        key: '/calico/resources/v3/projectcalico.org/profiles/kns.bare',
        value: {
          apiVersion: 'projectcalico.org/v3', kind: 'Profile', metadata: { name: 'kns.bare' },
          spec: { ingress: [{ action: 'Allow' }], egress: [{ action: 'Allow' }], labelsToApply: { 'pcns.projectcalico.org/name': 'bare' } },
        },
      },
    },
  ]);
  runTable(SERVICEACCOUNTS, [
    {
      name: 'service account: ksa.<ns>.<sa>, pcsa. labels plus projectcalico.org/name, no rules',
      input: fixture('serviceaccount-prometheus.json'),
      expected: {
        key: '/calico/resources/v3/projectcalico.org/profiles/ksa.monitoring.prometheus',
        value: {
          apiVersion: 'projectcalico.org/v3',
          kind: 'Profile',
          metadata: { name: 'ksa.monitoring.prometheus', uid: '70b931de-56fa-4ebc-a283-0d951fe76ba3', creationTimestamp: '2025-03-14T09:31:12Z' },
          spec: { labelsToApply: { 'pcsa.app.kubernetes.io/name': 'prometheus', 'pcsa.projectcalico.org/name': 'prometheus' } },
        },
      },
    },
  ]);

  test('the profiles examples/demo-cluster serves, from their namespace and service account', () => {
    const demo = demoDocs('30-namespaces-profiles.yaml');
    const kns = demo.find((d) => d.metadata.name === 'kns.frontend');
    assert.deepEqual(convert(NAMESPACES, fixture('namespace-frontend.json'))!.value.spec, kns.spec);
    const ksa = demo.find((d) => d.metadata.name === 'ksa.monitoring.prometheus');
    assert.deepEqual(convert(SERVICEACCOUNTS, fixture('serviceaccount-prometheus.json'))!.value.spec, ksa.spec);
  });
});

// ---- NetworkPolicy → KubernetesNetworkPolicy (name and tier as Calico v3.32: test/kube-convert-v332.test.ts) ----------------------------------------------

const ORCH = "projectcalico.org/orchestrator == 'k8s'";

function netpol(spec: Record<string, unknown>, name = 'test.policy', ns = 'default'): any {
  return { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name, namespace: ns, resourceVersion: '10', creationTimestamp: '2025-03-14T09:40:00Z' }, spec };
}

function knp(spec: Record<string, unknown>, name = 'test.policy', ns = 'default'): CalicoResource {
  return {
    key: `/calico/resources/v3/projectcalico.org/kubernetesnetworkpolicies/${ns}/${name}`,
    value: {
      apiVersion: 'projectcalico.org/v3',
      kind: 'KubernetesNetworkPolicy',
      metadata: { name, namespace: ns, creationTimestamp: '2025-03-14T09:40:00Z' },
      spec: { order: 1000, tier: 'default', ...spec },
    },
  };
}

describe('NetworkPolicy → KubernetesNetworkPolicy', () => {
  runTable(NETPOLS, [
    {
      name: 'real-shaped policy: selectors, named ports, ipBlock with except, endPort range, empty namespaceSelector',
      input: fixture('networkpolicy-api.json'),
      expected: {
        key: '/calico/resources/v3/projectcalico.org/kubernetesnetworkpolicies/backend/api-allow',
        value: {
          apiVersion: 'projectcalico.org/v3',
          kind: 'KubernetesNetworkPolicy',
          metadata: { name: 'api-allow', namespace: 'backend', uid: '5cd23ab6-7ef1-4ad0-9cb4-7cf25ad63eb1', creationTimestamp: '2025-03-14T09:40:00Z' },
          spec: {
            order: 1000,
            tier: 'default',
            selector: `${ORCH} && app == 'api' && tier == 'backend' && version not in { 'canary', 'dev' }`,
            ingress: [
              { action: 'Allow', protocol: 'TCP', source: { selector: `${ORCH} && app == 'web'`, namespaceSelector: "team == 'web'" }, destination: { ports: [8080, 'metrics'] } },
              { action: 'Allow', protocol: 'TCP', source: { nets: ['172.17.0.0/16'], notNets: ['172.17.1.0/24'] }, destination: { ports: [8080, 'metrics'] } },
              { action: 'Allow', protocol: 'UDP', source: { selector: `${ORCH} && app == 'web'`, namespaceSelector: "team == 'web'" }, destination: { ports: [5353] } },
              { action: 'Allow', protocol: 'UDP', source: { nets: ['172.17.0.0/16'], notNets: ['172.17.1.0/24'] }, destination: { ports: [5353] } },
            ],
            egress: [
              { action: 'Allow', protocol: 'TCP', destination: { selector: `${ORCH} && role in { 'db' } && ! has(replica)`, ports: ['5432:5433'] } },
              { action: 'Allow', destination: { selector: ORCH, namespaceSelector: 'all()' } },
            ],
            types: ['Ingress', 'Egress'],
          },
        },
      },
    },
    {
      name: 'default deny: empty podSelector, no rules, Ingress',
      input: netpol({ podSelector: {}, policyTypes: ['Ingress'] }),
      expected: knp({ selector: ORCH, types: ['Ingress'] }),
    },
    {
      name: 'egress only: default-deny egress',
      input: netpol({ podSelector: {}, policyTypes: ['Egress'] }, 'testPolicy'),
      expected: knp({ selector: ORCH, types: ['Egress'] }, 'testPolicy'),
    },
    {
      name: 'no policyTypes (pre-1.8 API): Ingress',
      input: netpol({ podSelector: { matchLabels: { label: 'value' } } }),
      expected: knp({ selector: `${ORCH} && label == 'value'`, types: ['Ingress'] }),
    },
    {
      name: 'empty rule allows everything; absent podSelector selects every pod',
      input: netpol({ ingress: [{}], egress: [{}], policyTypes: ['Ingress', 'Egress'] }),
      expected: knp({ selector: ORCH, ingress: [{ action: 'Allow' }], egress: [{ action: 'Allow' }], types: ['Ingress', 'Egress'] }),
    },
    {
      name: 'egress rules without the Egress type are still converted',
      input: netpol({ podSelector: {}, egress: [{ ports: [{ protocol: 'TCP', port: 80 }] }], policyTypes: ['Ingress'] }),
      expected: knp({ selector: ORCH, egress: [{ action: 'Allow', protocol: 'TCP', destination: { ports: [80] } }], types: ['Ingress'] }),
    },
    {
      name: 'multiple peers and protocols: one rule per protocol (sorted) per peer',
      input: netpol({
        podSelector: { matchLabels: { label: 'value' } },
        ingress: [{ ports: [{ port: 90, protocol: 'UDP' }, { port: 80, protocol: 'TCP' }], from: [{ podSelector: { matchLabels: { k: 'v' } } }, { podSelector: { matchLabels: { k2: 'v2' } } }] }],
        policyTypes: ['Ingress'],
      }),
      expected: knp({
        selector: `${ORCH} && label == 'value'`,
        ingress: [
          { action: 'Allow', protocol: 'TCP', source: { selector: `${ORCH} && k == 'v'` }, destination: { ports: [80] } },
          { action: 'Allow', protocol: 'TCP', source: { selector: `${ORCH} && k2 == 'v2'` }, destination: { ports: [80] } },
          { action: 'Allow', protocol: 'UDP', source: { selector: `${ORCH} && k == 'v'` }, destination: { ports: [90] } },
          { action: 'Allow', protocol: 'UDP', source: { selector: `${ORCH} && k2 == 'v2'` }, destination: { ports: [90] } },
        ],
        types: ['Ingress'],
      }),
    },
    {
      name: 'protocol defaults to TCP; named port kept in place; DoesNotExist; matchLabels sorted',
      input: netpol({
        podSelector: { matchLabels: { label2: 'value2', label: 'value' } },
        ingress: [{ ports: [{ port: 80 }, { port: 'foo' }], from: [{ podSelector: { matchExpressions: [{ key: 'toast', operator: 'DoesNotExist' }] } }] }],
        policyTypes: ['Ingress'],
      }),
      expected: knp({
        selector: `${ORCH} && label == 'value' && label2 == 'value2'`,
        ingress: [{ action: 'Allow', protocol: 'TCP', source: { selector: `${ORCH} && ! has(toast)` }, destination: { ports: [80, 'foo'] } }],
        types: ['Ingress'],
      }),
    },
    {
      name: 'numeric ports merged into ranges after the named ones (SimplifyPorts)',
      input: netpol({ podSelector: {}, ingress: [{ ports: [{ port: 82 }, { port: 'foo' }, { port: 80 }, { port: 9090 }, { port: 81 }, { port: 80 }] }], policyTypes: ['Ingress'] }),
      expected: knp({ selector: ORCH, ingress: [{ action: 'Allow', protocol: 'TCP', destination: { ports: ['foo', '80:82', 9090] } }], types: ['Ingress'] }),
    },
    {
      name: 'a port entry without a port number allows every port of its protocol',
      input: netpol({ podSelector: {}, ingress: [{ ports: [{ port: 53, protocol: 'UDP' }, { protocol: 'UDP' }, { port: 53, protocol: 'UDP' }] }], policyTypes: ['Ingress'] }),
      expected: knp({ selector: ORCH, ingress: [{ action: 'Allow', protocol: 'UDP' }], types: ['Ingress'] }),
    },
    {
      name: 'endPort: a port range, ingress',
      input: netpol({ podSelector: {}, ingress: [{ ports: [{ protocol: 'TCP', port: 32000, endPort: 32768 }] }], policyTypes: ['Ingress'] }),
      expected: knp({ selector: ORCH, ingress: [{ action: 'Allow', protocol: 'TCP', destination: { ports: ['32000:32768'] } }], types: ['Ingress'] }),
    },
    {
      name: 'namespaceSelector: labels, empty (all namespaces), absent (own namespace)',
      input: netpol({
        podSelector: { matchLabels: { label: 'value' } },
        ingress: [{ from: [
          { namespaceSelector: { matchLabels: { namespaceRole: 'dev', namespaceFoo: 'bar' } } },
          { namespaceSelector: { matchLabels: {} } },
          { podSelector: {} },
          { namespaceSelector: { matchExpressions: [{ key: 'env', operator: 'In', values: ['prod', 'staging'] }, { key: 'pci', operator: 'Exists' }] }, podSelector: { matchLabels: { podA: 'B' } } },
        ] }],
        policyTypes: ['Ingress'],
      }),
      expected: knp({
        selector: `${ORCH} && label == 'value'`,
        ingress: [
          { action: 'Allow', source: { selector: ORCH, namespaceSelector: "namespaceFoo == 'bar' && namespaceRole == 'dev'" } },
          { action: 'Allow', source: { selector: ORCH, namespaceSelector: 'all()' } },
          { action: 'Allow', source: { selector: ORCH } },
          { action: 'Allow', source: { selector: `${ORCH} && podA == 'B'`, namespaceSelector: "env in { 'prod', 'staging' } && has(pci)" } },
        ],
        types: ['Ingress'],
      }),
    },
    {
      name: 'ipBlock: CIDRs printed as their network; egress',
      input: netpol({ podSelector: {}, egress: [{ to: [{ ipBlock: { cidr: '192.168.7.9/16', except: ['192.168.3.0/24', '192.168.4.1/24'] } }, { ipBlock: { cidr: '2001:DB8:0:0::/32' } }] }], policyTypes: ['Egress'] }),
      expected: knp({
        selector: ORCH,
        egress: [
          { action: 'Allow', destination: { nets: ['192.168.0.0/16'], notNets: ['192.168.3.0/24', '192.168.4.0/24'] } },
          { action: 'Allow', destination: { nets: ['2001:db8::/32'] } },
        ],
        types: ['Egress'],
      }),
    },
    {
      name: 'a rule with an unparsable port is dropped, the others kept',
      input: netpol({ podSelector: {}, ingress: [{ ports: [{ port: 'not_a:port' }] }, { ports: [{ port: 443 }] }], policyTypes: ['Ingress'] }),
      expected: knp({ selector: ORCH, ingress: [{ action: 'Allow', protocol: 'TCP', destination: { ports: [443] } }], types: ['Ingress'] }),
    },
  ]);
});

// ---- Node → Calico Node ---------------------------------------------------------------------

const WORKER1_LABELS = {
  'beta.kubernetes.io/arch': 'amd64', 'beta.kubernetes.io/os': 'linux', 'kubernetes.io/arch': 'amd64', 'kubernetes.io/hostname': 'worker-1',
  'kubernetes.io/os': 'linux', 'node-role.kubernetes.io/worker': '', 'topology.kubernetes.io/zone': 'zone-a', rack: 'rack1',
};

function k8sNode(annotations: Record<string, string> | undefined, extra: Record<string, unknown> = {}): any {
  return { apiVersion: 'v1', kind: 'Node', metadata: { name: 'n1', resourceVersion: '5', ...(annotations ? { annotations } : {}), ...extra }, spec: {}, status: {} };
}
function calicoNode(spec: Record<string, unknown>, metadata: Record<string, unknown> = {}, status?: Record<string, unknown>): CalicoResource {
  return {
    key: '/calico/resources/v3/projectcalico.org/nodes/n1',
    value: {
      apiVersion: 'projectcalico.org/v3', kind: 'Node',
      metadata: { name: 'n1', annotations: { 'projectcalico.org/kube-labels': 'null' }, ...metadata },
      spec: { orchRefs: [{ nodeName: 'n1', orchestrator: 'k8s' }], ...spec },
      ...(status ? { status } : {}),
    },
  };
}

describe('Node → Calico Node', () => {
  runTable(NODES, [
    {
      name: 'a node with every Calico annotation (worker-1)',
      input: fixture('node-worker-1.json'),
      expected: {
        key: '/calico/resources/v3/projectcalico.org/nodes/worker-1',
        value: {
          apiVersion: 'projectcalico.org/v3',
          kind: 'Node',
          metadata: {
            name: 'worker-1',
            uid: '2b7d6a1e-8c3f-4e9a-b1d2-7f6e5d4c3b2a',
            creationTimestamp: '2025-03-14T09:20:11Z',
            labels: WORKER1_LABELS,
            annotations: {
              'projectcalico.org/kube-labels': '{"beta.kubernetes.io/arch":"amd64","beta.kubernetes.io/os":"linux","kubernetes.io/arch":"amd64","kubernetes.io/hostname":"worker-1","kubernetes.io/os":"linux","node-role.kubernetes.io/worker":"","rack":"rack1","topology.kubernetes.io/zone":"zone-a"}',
            },
          },
          spec: {
            bgp: {
              ipv4Address: '192.168.10.11/24',
              ipv6Address: 'fd00:192:168:10::11/64',
              routeReflectorClusterID: '224.0.0.1',
              asNumber: 64512,
              ipv4IPIPTunnelAddr: '10.244.1.1',
            },
            ipv4VXLANTunnelAddr: '10.244.1.0',
            vxlanTunnelMACAddr: '86:2a:af:ef:a9:4d',
            orchRefs: [{ nodeName: 'worker-1', orchestrator: 'k8s' }],
            wireguard: { interfaceIPv4Address: '10.244.1.3' },
            addresses: [
              { address: '192.168.10.11/24', type: 'CalicoNodeIP' },
              { address: 'fd00:192:168:10::11/64', type: 'CalicoNodeIP' },
              { address: '192.168.10.11', type: 'InternalIP' },
            ],
          },
          status: { wireguardPublicKey: 'jlkVyQYooZYzI2wFfNhSZez5eWh44yfq1wKVjLvSXgY=', podCIDRs: ['10.96.1.0/24'] },
        },
      },
    },
    { name: 'no annotations, no labels: orchRefs only', input: k8sNode(undefined), expected: calicoNode({}) },
    {
      name: 'empty labels marshal as {}',
      input: k8sNode(undefined, { labels: {} }),
      expected: calicoNode({}, { annotations: { 'projectcalico.org/kube-labels': '{}' } }),
    },
    {
      name: 'asdot AS number; IPv6 and VXLAN v6 addresses; wireguard v6 key and address',
      input: k8sNode({
        'projectcalico.org/ASNumber': '1.10',
        'projectcalico.org/IPv6Address': 'fd00::10/64',
        'projectcalico.org/IPv6VXLANTunnelAddr': 'fd00:10:244::1',
        'projectcalico.org/VXLANTunnelMACAddrV6': '66:51:3a:bb:7e:02',
        'projectcalico.org/IPv6WireguardInterfaceAddr': 'fd00:10:244::2',
        'projectcalico.org/WireguardPublicKeyV6': 'v6key=',
      }),
      expected: calicoNode({
        bgp: { ipv6Address: 'fd00::10/64', asNumber: 65546 },
        ipv6VXLANTunnelAddr: 'fd00:10:244::1',
        vxlanTunnelMACAddrV6: '66:51:3a:bb:7e:02',
        wireguard: { interfaceIPv6Address: 'fd00:10:244::2' },
        addresses: [{ address: 'fd00::10/64', type: 'CalicoNodeIP' }],
      }, {}, { wireguardPublicKeyV6: 'v6key=' }),
    },
    {
      // A bare address is a valid IPv4Address (ValidateCIDRv4 parses a CIDR or an address): test/kube-convert-v332.test.ts.
      name: 'invalid annotation values are ignored (not an address, wrong family, unmasked network, bad MAC, bad AS number)',
      input: k8sNode({
        'projectcalico.org/IPv4Address': '192.168.10.311/24',
        'projectcalico.org/IPv6Address': '192.168.10.11/24',
        'projectcalico.org/IPv4IPIPTunnelAddr': '10.244.1.1/24',
        'projectcalico.org/IPv4VXLANTunnelAddr': 'fd00::1',
        'projectcalico.org/VXLANTunnelMACAddr': 'not-a-mac',
        'projectcalico.org/ASNumber': '65536.1',
      }),
      expected: calicoNode({}),
    },
    {
      name: 'Calico labels and annotations stored on the node merge under the Kubernetes ones',
      input: k8sNode({
        'projectcalico.org/labels': '{"calico-only":"yes","rack":"calico-value"}',
        'projectcalico.org/annotations': '{"note":"kept"}',
      }, { labels: { rack: 'rack2' } }),
      expected: (() => {
        const n = calicoNode({}, {
          labels: { 'calico-only': 'yes', rack: 'rack2' },
          annotations: { note: 'kept', 'projectcalico.org/kube-labels': '{"rack":"rack2"}' },
        });
        return n;
      })(),
    },
    {
      name: 'node addresses: InternalIP and ExternalIP after the BGP address, others dropped',
      input: (() => {
        const n = k8sNode({ 'projectcalico.org/IPv4Address': '192.168.10.20/24' });
        n.status.addresses = [{ type: 'Hostname', address: 'n1' }, { type: 'ExternalIP', address: '203.0.113.20' }, { type: 'InternalIP', address: '192.168.10.20' }];
        return n;
      })(),
      expected: calicoNode({
        bgp: { ipv4Address: '192.168.10.20/24' },
        addresses: [
          { address: '192.168.10.20/24', type: 'CalicoNodeIP' },
          { address: '203.0.113.20', type: 'ExternalIP' },
          { address: '192.168.10.20', type: 'InternalIP' },
        ],
      }),
    },
  ]);
});

// ---- Calico CRDs → v3 resources and IPAM documents ------------------------------------------

const NAMESPACED_CRDS = new Set(['NetworkPolicy', 'StagedNetworkPolicy', 'StagedKubernetesNetworkPolicy', 'NetworkSet']);
const CRD_PLURALS: Record<string, string> = {
  felixconfigurations: 'FelixConfiguration', clusterinformations: 'ClusterInformation', globalnetworkpolicies: 'GlobalNetworkPolicy',
  networkpolicies: 'NetworkPolicy', stagedglobalnetworkpolicies: 'StagedGlobalNetworkPolicy', stagednetworkpolicies: 'StagedNetworkPolicy',
  stagedkubernetesnetworkpolicies: 'StagedKubernetesNetworkPolicy', globalnetworksets: 'GlobalNetworkSet', networksets: 'NetworkSet',
  tiers: 'Tier', hostendpoints: 'HostEndpoint', ippools: 'IPPool', ipreservations: 'IPReservation', bgpconfigurations: 'BGPConfiguration',
  bgppeers: 'BGPPeer', bgpfilters: 'BGPFilter', blockaffinities: BLOCK_AFFINITY, ipamblocks: IPAM_BLOCK, caliconodestatuses: 'CalicoNodeStatus',
  kubecontrollersconfigurations: 'KubeControllersConfiguration',
};

describe('Calico CRDs → v3 resources', () => {
  test('every CRD collection is watched, and each kind maps to a key parseKey reads back as that kind', () => {
    const watched = WATCHED_RESOURCES.filter((r) => r.path.startsWith('/apis/crd.projectcalico.org/v1/')).map((r) => r.path.split('/').at(-1));
    assert.deepEqual(new Set(watched), new Set(Object.keys(CRD_PLURALS)));
    for (const [plural, kind] of Object.entries(CRD_PLURALS)) {
      assert.equal(collection(crd(plural)).kind, kind);
      const ns = NAMESPACED_CRDS.has(kind) ? 'ns1' : undefined;
      const spec = kind === IPAM_BLOCK ? { cidr: '10.244.9.0/26', affinity: 'host:n9' }
        : kind === BLOCK_AFFINITY ? { cidr: 'fd00:10:244:9::/122', node: 'n9', state: 'pending', deleted: '' } : { x: 1 };
      const out = convert(crd(plural), { apiVersion: 'crd.projectcalico.org/v1', kind, metadata: { name: 'obj-1', resourceVersion: '7', ...(ns ? { namespace: ns } : {}) }, spec });
      assert.ok(out);
      const parsed = parseKey(out.key)!;
      assert.equal(parsed.kind, kind, `${plural} → ${out.key}`);
      if (kind === IPAM_BLOCK) assert.equal(out.key, '/calico/ipam/v2/assignment/ipv4/block/10.244.9.0-26');
      else if (kind === BLOCK_AFFINITY) assert.deepEqual([out.key, parsed.host], ['/calico/ipam/v2/host/n9/ipv6/block/fd00:10:244:9::-122', 'n9']);
      else {
        assert.deepEqual([parsed.name, parsed.namespace], ['obj-1', ns]);
        assert.deepEqual(out.value, { apiVersion: 'projectcalico.org/v3', kind, metadata: { name: 'obj-1', ...(ns ? { namespace: ns } : {}) }, spec: { x: 1 } });
      }
    }
  });

  test('every demo-cluster document, stored as a CRD, converts to what the other datastores serve for it', () => {
    const kinds = new Set(Object.values(CRD_PLURALS));
    const plurals = Object.fromEntries(Object.entries(CRD_PLURALS).map(([p, k]) => [k, p]));
    let n = 0;
    for (const file of ['00-cluster.yaml', '20-ipam.yaml', '40-policy.yaml', '45-networksets.yaml', '55-hostendpoints.yaml', '60-bgp.yaml', '70-status.yaml']) {
      for (const doc of demoDocs(file)) {
        if (!kinds.has(doc.kind)) continue;
        const cr = { ...doc, apiVersion: 'crd.projectcalico.org/v1', metadata: { ...doc.metadata, uid: undefined, resourceVersion: '42' } };
        delete cr.metadata.uid;
        const out = convert(crd(plurals[doc.kind]!), cr)!;
        assert.equal(out.key, keyForResource(doc), `${file} ${doc.kind} ${doc.metadata.name}`);
        if (doc.kind === IPAM_BLOCK) assert.deepEqual(out.value, doc.spec);
        // The demo writes the CRD's string; the model (and this conversion) has a boolean.
        else if (doc.kind === BLOCK_AFFINITY) assert.deepEqual(out.value, { ...doc.spec, deleted: false });
        else assert.deepEqual(out.value, doc);
        n++;
      }
    }
    assert.ok(n >= 40, `converted ${n} documents`);
  });

  runTable(crd('globalnetworkpolicies'), [
    {
      name: 'metadata annotation merged (labels, annotations, creationTimestamp), UID converted, CR name kept',
      input: fixture('globalnetworkpolicy-crd.json'),
      expected: {
        key: '/calico/resources/v3/projectcalico.org/globalnetworkpolicies/security.block-threat-feed',
        value: {
          apiVersion: 'projectcalico.org/v3',
          kind: 'GlobalNetworkPolicy',
          metadata: {
            name: 'security.block-threat-feed',
            uid: 'da7a507a-34f2-4d58-9ddc-715afe36d8b4',
            creationTimestamp: '2025-03-14T09:44:59Z',
            labels: { 'projectcalico.org/tier': 'security', 'policy.example.com/owner': 'secops' },
            annotations: { 'policy.example.com/ticket': 'SEC-42' },
          },
          spec: {
            tier: 'security', order: 10, selector: 'all()', types: ['Ingress', 'Egress'],
            ingress: [{ action: 'Deny', source: { selector: "feed == 'threat'" } }, { action: 'Pass' }],
            egress: [{ action: 'Deny', destination: { selector: "feed == 'threat'" } }, { action: 'Pass' }],
          },
        },
      },
    },
  ]);

  runTable(crd('ippools'), [
    {
      name: 'IPPool written through the v1 API: ipip and nat-outgoing become ipipMode and natOutgoing',
      input: { apiVersion: 'crd.projectcalico.org/v1', kind: 'IPPool', metadata: { name: 'old-pool' }, spec: { cidr: '10.10.0.0/16', ipip: { enabled: true, mode: 'cross-subnet' }, 'nat-outgoing': true } },
      expected: {
        key: '/calico/resources/v3/projectcalico.org/ippools/old-pool',
        value: { apiVersion: 'projectcalico.org/v3', kind: 'IPPool', metadata: { name: 'old-pool' }, spec: { cidr: '10.10.0.0/16', ipipMode: 'CrossSubnet', natOutgoing: true } },
      },
    },
    {
      name: 'IPPool with IPIP disabled in the v1 field',
      input: { apiVersion: 'crd.projectcalico.org/v1', kind: 'IPPool', metadata: { name: 'p2' }, spec: { cidr: '10.11.0.0/16', ipip: { enabled: false } } },
      expected: {
        key: '/calico/resources/v3/projectcalico.org/ippools/p2',
        value: { apiVersion: 'projectcalico.org/v3', kind: 'IPPool', metadata: { name: 'p2' }, spec: { cidr: '10.11.0.0/16', ipipMode: 'Never' } },
      },
    },
  ]);

  runTable(crd('caliconodestatuses'), [
    {
      name: 'CalicoNodeStatus keeps its status',
      input: { apiVersion: 'crd.projectcalico.org/v1', kind: 'CalicoNodeStatus', metadata: { name: 'worker-1-status' }, spec: { node: 'worker-1', classes: ['Agent'], updatePeriodSeconds: 10 }, status: { lastUpdated: '2025-03-14T10:00:00Z', agent: { birdV4: { state: 'Ready' } } } },
      expected: {
        key: '/calico/resources/v3/projectcalico.org/caliconodestatuses/worker-1-status',
        value: {
          apiVersion: 'projectcalico.org/v3', kind: 'CalicoNodeStatus', metadata: { name: 'worker-1-status' },
          spec: { node: 'worker-1', classes: ['Agent'], updatePeriodSeconds: 10 },
          status: { lastUpdated: '2025-03-14T10:00:00Z', agent: { birdV4: { state: 'Ready' } } },
        },
      },
    },
  ]);

  runTable(crd('ipamblocks'), [
    {
      name: 'IPAMBlock → the model block under /calico/ipam/v2/assignment',
      input: fixture('ipamblock-worker-1.json'),
      expected: (() => {
        const spec = fixture('ipamblock-worker-1.json').spec;
        return { key: '/calico/ipam/v2/assignment/ipv4/block/10.244.1.0-26', value: spec };
      })(),
    },
    {
      name: 'IPv6 block: CIDR printed canonically; absent fields defaulted',
      input: { apiVersion: 'crd.projectcalico.org/v1', kind: 'IPAMBlock', metadata: { name: 'fd00-10-244--122' }, spec: { cidr: 'FD00:10:244:0::/122' } },
      expected: {
        key: '/calico/ipam/v2/assignment/ipv6/block/fd00:10:244::-122',
        value: { cidr: 'fd00:10:244::/122', affinity: null, strictAffinity: false, allocations: [], unallocated: [], attributes: [], deleted: false },
      },
    },
  ]);

  runTable(crd('blockaffinities'), [
    {
      name: 'BlockAffinity → the model affinity under /calico/ipam/v2/host/<node>',
      input: fixture('blockaffinity-worker-1.json'),
      expected: { key: '/calico/ipam/v2/host/worker-1/ipv4/block/10.244.1.0-26', value: { state: 'confirmed', node: 'worker-1', cidr: '10.244.1.0/26', deleted: false } },
    },
    {
      name: 'BlockAffinity marked deleted',
      input: { ...fixture('blockaffinity-worker-1.json'), spec: { cidr: '10.244.1.0/26', deleted: 'true', node: 'worker-1', state: 'pendingDeletion' } },
      expected: { key: '/calico/ipam/v2/host/worker-1/ipv4/block/10.244.1.0-26', value: { state: 'pendingDeletion', node: 'worker-1', cidr: '10.244.1.0/26', deleted: true } },
    },
    {
      name: 'a non-host affinity has no path in our layout: none',
      input: { ...fixture('blockaffinity-worker-1.json'), spec: { cidr: '10.244.1.0/26', deleted: 'false', node: 'vm-1', state: 'confirmed', type: 'virtual' } },
      expected: null,
    },
  ]);

  test('ConvertUID is its own inverse and keeps the version and variant bytes', () => {
    const uid = '9c4e4d8a-3f0b-4a56-8d3e-2f1b6c7a9e01';
    const c = convertUID(uid, 'x');
    assert.notEqual(c, uid);
    assert.equal(convertUID(c, 'x'), uid);
    assert.equal(c[14], '4');
    assert.equal(c.slice(19, 21), '8d');
  });
});

// ---- Service / EndpointSlice ----------------------------------------------------------------

describe('Service / EndpointSlice → KubernetesService / KubernetesEndpointSlice', () => {
  runTable(SERVICES, [
    {
      name: 'the Service itself in the v3 envelope',
      input: fixture('service-web.json'),
      expected: {
        key: '/calico/resources/v3/projectcalico.org/kubernetesservice/frontend/web',
        value: {
          apiVersion: 'projectcalico.org/v3',
          kind: 'KubernetesService',
          metadata: { name: 'web', namespace: 'frontend', uid: '7d8e9f0a-1b2c-4d3e-8f4a-5b6c7d8e9f0a', creationTimestamp: '2025-03-14T09:35:00Z', labels: { app: 'web' } },
          spec: fixture('service-web.json').spec,
          status: { loadBalancer: {} },
        },
      },
    },
  ]);
  runTable(SLICES, [
    {
      name: 'the EndpointSlice itself in the v3 envelope (fields at the top level, service-name label kept)',
      input: fixture('endpointslice-web.json'),
      expected: {
        key: '/calico/resources/v3/projectcalico.org/kubernetesendpointslices/frontend/web-x7k2p',
        value: {
          apiVersion: 'projectcalico.org/v3',
          kind: 'KubernetesEndpointSlice',
          metadata: {
            name: 'web-x7k2p', namespace: 'frontend', uid: '8e9f0a1b-2c3d-4e4f-9a5b-6c7d8e9f0a1b', creationTimestamp: '2025-03-14T09:35:00Z',
            labels: { app: 'web', 'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io', 'kubernetes.io/service-name': 'web' },
            annotations: { 'endpoints.kubernetes.io/last-change-trigger-time': '2025-03-14T09:35:31Z' },
          },
          addressType: 'IPv4',
          endpoints: fixture('endpointslice-web.json').endpoints,
          ports: [{ name: 'http', protocol: 'TCP', port: 8080 }],
        },
      },
    },
  ]);
});

// ---- Malformed objects ----------------------------------------------------------------------

describe('malformed objects throw ConvertError naming the problem', () => {
  const bad = (path: string, obj: unknown, message: RegExp) => ({ path, obj, message });
  const withPod = (f: (p: any) => void) => { const p = pod(); f(p); return p; };
  const cases = [
    bad(PODS, null, /Pod is not an object/),
    bad(PODS, [], /Pod is not an object/),
    bad(PODS, { kind: 'Pod' }, /Pod has no metadata/),
    bad(PODS, { metadata: 'x' }, /metadata is not an object/),
    bad(PODS, { metadata: { namespace: 'ns' } }, /Pod has no metadata\.name/),
    bad(PODS, { metadata: { name: 7, namespace: 'ns' } }, /metadata\.name is not a string/),
    bad(PODS, { metadata: { name: 'p' }, spec: { nodeName: 'n' } }, /Pod p has no metadata\.namespace/),
    bad(PODS, { ...pod(), kind: 'Node' }, /expected a Pod, got kind "Node"/),
    bad(PODS, withPod((p) => { p.metadata.labels = { app: 1 }; }), /labels\["app"\] is not a string/),
    bad(PODS, withPod((p) => { p.spec = 'x'; }), /spec is not an object/),
    bad(PODS, withPod((p) => { p.spec.nodeName = 7; }), /spec\.nodeName is not a string/),
    bad(PODS, withPod((p) => { p.spec.containers = 'not a list'; }), /containers is not an array/),
    bad(PODS, withPod((p) => { p.spec.containers[0].ports[0].containerPort = '80'; }), /containerPort is not a number/),
    bad(PODS, withPod((p) => { p.status.podIPs = 42; }), /status\.podIPs is not an array/),
    bad(PODS, withPod((p) => { p.status.podIPs = [{ ip: '10.0.0.300' }]; }), /invalid pod IP "10\.0\.0\.300"/),
    bad(PODS, withPod((p) => { p.status.podIPs = [{}]; }), /invalid pod IP ""/),
    bad(PODS, withPod((p) => { p.metadata.annotations = { 'cni.projectcalico.org/floatingIPs': 'not json' }; }), /floatingIPs is not JSON/),
    bad(PODS, withPod((p) => { p.spec.nodeName = 'node-'; }), /node "node-" must not begin or end with '-'/),
    bad(NODES, { metadata: { name: 'n1', annotations: { a: true } } }, /annotations\["a"\] is not a string/),
    bad(NODES, { metadata: { name: 'n1' }, status: { addresses: {} } }, /status\.addresses is not an array/),
    bad(NAMESPACES, { metadata: {} }, /Namespace has no metadata\.name/),
    bad(NAMESPACES, { metadata: { name: 'ns', uid: 'not-a-uid' } }, /invalid metadata\.uid "not-a-uid"/),
    bad(SERVICEACCOUNTS, { metadata: { name: 'sa' } }, /ServiceAccount sa has no metadata\.namespace/),
    bad(NETPOLS, netpol({ ingress: 'x' }), /spec\.ingress is not an array/),
    bad(NETPOLS, netpol({ ingress: [{ ports: [{ port: true }] }] }), /port is not a number or string/),
    bad(NETPOLS, netpol({ podSelector: { matchLabels: { a: 1 } } }), /matchLabels\["a"\] is not a string/),
    bad(crd('felixconfigurations'), { metadata: { name: 'default' }, spec: [] }, /spec is not an object/),
    bad(crd('felixconfigurations'), { kind: 'IPPool', metadata: { name: 'default' } }, /expected a FelixConfiguration/),
    bad(crd('networkpolicies'), { metadata: { name: 'default.p' }, spec: {} }, /NetworkPolicy default\.p without metadata\.namespace/),
    bad(crd('tiers'), { metadata: { name: 't', annotations: { 'projectcalico.org/metadata': '{nope' } } }, /unparsable projectcalico\.org\/metadata/),
    bad(crd('ipamblocks'), { metadata: { name: 'b' }, spec: { cidr: '10.0.0.0' } }, /no valid spec\.cidr/),
    bad(crd('ipamblocks'), { metadata: { name: 'b' } }, /IPAMBlock b has no spec/),
    bad(crd('ipamblocks'), { metadata: { name: 'b' }, spec: { cidr: '10.0.0.0/26', allocations: ['x'] } }, /allocations\[0\] is not a number or null/),
    bad(crd('blockaffinities'), { metadata: { name: 'a' }, spec: { cidr: '10.0.0.0/26' } }, /no spec\.node/),
    bad(crd('blockaffinities'), { metadata: { name: 'a' }, spec: { cidr: '10.0.0.0/26', node: 'n', deleted: 'maybe' } }, /deleted "maybe" is not a boolean/),
    bad(SERVICES, { metadata: { name: 's', namespace: 'ns' }, spec: 'x' }, /spec is not an object/),
    bad(SLICES, { metadata: { name: 's', namespace: 'ns' }, endpoints: {} }, /endpoints is not an array/),
  ];
  cases.forEach((c, i) => {
    test(`#${i} ${c.path}: ${c.message.source}`, () => {
      assert.throws(() => collection(c.path).convert(c.obj), (err: unknown) => {
        assert.ok(err instanceof ConvertError, `a ConvertError, not ${String(err)}`);
        assert.match(err.message, c.message);
        return true;
      });
    });
  });
});

// Kubernetes objects → Calico's model where Calico v3.32 (the reference release) differs from
// what calico-fanout produced before: interface prefixes, pod QoS controls, USE_POD_CIDR tunnel
// addresses, Node interfaces, NetworkPolicy name and tier, legacy ipBlock CIDRs, and
// ClusterNetworkPolicy. Every case names the Calico v3.32.1 file its expected output was read from
// (`calico` column); vectors from Calico's own tests keep their inputs and outputs.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { prepare } from '../dedupe/prepare.js';
import { parseKey } from '../src/model/kinds.js';
import { loadConfig } from '../src/config.js';
import { CRD_V1 } from '../src/datastore/kubernetes/api-group.js';
import { watchedResources, type CalicoResource, type ConversionOptions } from '../src/datastore/kubernetes/resources.js';
import { vethNameForWorkload } from '../src/datastore/kubernetes/convert-pod.js';

const PODS = '/api/v1/pods';
const NODES = '/api/v1/nodes';
const NETPOLS = '/apis/networking.k8s.io/v1/networkpolicies';
const CNPS = '/apis/policy.networking.k8s.io/v1alpha2/clusternetworkpolicies';
const ORCH = "projectcalico.org/orchestrator == 'k8s'";
/** A UID and its ConvertUID, from conversion_test.go "should parse a UID to a Calico ID". */
const UID = '30316465-6365-4463-ad63-3564622d3638';
const CONVERTED_UID = '0c8c26a6-c6a6-44c6-adc6-ac2646b46c1c';

const WEP_DEFAULT = 'libcalico-go/lib/backend/k8s/conversion/workload_endpoint_default.go';
const CONVERSION = 'libcalico-go/lib/backend/k8s/conversion/conversion.go';
const CONVERSION_TEST = 'libcalico-go/lib/backend/k8s/conversion/conversion_test.go';
const NODE = 'libcalico-go/lib/backend/k8s/resources/node.go';
const NODE_TEST = 'libcalico-go/lib/backend/k8s/resources/node_test.go';
const CNP = 'libcalico-go/lib/backend/k8s/conversion/clusternetworkpolicy.go';
const CNP_TEST = 'libcalico-go/lib/backend/k8s/conversion/clusternetworkpolicy_test.go';

interface Case { name: string; calico: string; opts?: ConversionOptions; input: unknown; expected: CalicoResource | null }

/** Converts with the collection of `path`; a produced resource must be one the store accepts, keyed as its kind. */
function convert(path: string, obj: unknown, opts: ConversionOptions = {}): CalicoResource | null {
  const r = watchedResources(CRD_V1, opts).find((w) => w.path === path);
  assert.ok(r, `${path} is watched`);
  const out = r.convert(structuredClone(obj));
  if (out) {
    const parsed = parseKey(out.key);
    assert.equal(out.value.kind, parsed?.kind, 'value kind is the key kind');
    const p = prepare({ key: out.key, value: out.value, revision: '1' });
    assert.ok(p.ok, `the store accepts ${out.key}: ${JSON.stringify(p)}`);
  }
  return out;
}

function runTable(path: string, cases: Case[]): void {
  for (const c of cases) test(`${c.name} [${c.calico}]`, () => assert.deepEqual(convert(path, c.input, c.opts), c.expected));
}

// ---- Pod → WorkloadEndpoint -----------------------------------------------------------------

function pod(annotations: Record<string, string> = {}, name = 'podA', ns = 'default'): any {
  return {
    apiVersion: 'v1', kind: 'Pod',
    metadata: { name, namespace: ns, uid: UID, resourceVersion: '1234', creationTimestamp: '2025-03-14T09:35:10Z', annotations },
    spec: { nodeName: 'nodeA', containers: [] },
    status: { phase: 'Running', podIP: '10.0.0.5', podIPs: [{ ip: '10.0.0.5' }] },
  };
}

function wep(spec: Record<string, unknown> = {}, name = 'podA', ns = 'default', prefix = 'cali'): CalicoResource {
  const wepName = `nodeA-k8s-${name}-eth0`;
  return {
    key: `/calico/resources/v3/projectcalico.org/workloadendpoints/${ns}/${wepName}`,
    value: {
      apiVersion: 'projectcalico.org/v3', kind: 'WorkloadEndpoint',
      metadata: {
        name: wepName, namespace: ns, uid: UID, creationTimestamp: '2025-03-14T09:35:10Z',
        labels: { 'projectcalico.org/namespace': ns, 'projectcalico.org/orchestrator': 'k8s' },
      },
      spec: {
        orchestrator: 'k8s', node: 'nodeA', pod: name, endpoint: 'eth0', ipNetworks: ['10.0.0.5/32'], profiles: [`kns.${ns}`],
        interfaceName: vethNameForWorkload(ns, name, prefix), ...spec,
      },
    },
  };
}

const GIB4 = 4 * 2 ** 30;

describe('FELIX_INTERFACEPREFIX: interface names', () => {
  test(`the first prefix of the list names the veth [${CONVERSION_TEST} "generate a veth name with the right prefix"]`, () => {
    const prefix = loadConfig({ env: { FELIX_INTERFACEPREFIX: 'eni,veth,foo' } }).interfacePrefix[0];
    assert.equal(vethNameForWorkload('namespace', 'podname', prefix), 'eni82111e10a96');
    assert.equal(loadConfig({ env: {} }).interfacePrefix[0], 'cali', 'unset: cali');
  });
  runTable(PODS, [
    { name: 'prefix eni', calico: WEP_DEFAULT, opts: { interfacePrefix: 'eni' }, input: pod({}, 'podname', 'namespace'),
      expected: wep({ interfaceName: 'eni82111e10a96' }, 'podname', 'namespace') },
    { name: 'no prefix given: cali', calico: WEP_DEFAULT, input: pod({}, 'podname', 'namespace'),
      expected: wep({ interfaceName: 'cali82111e10a96' }, 'podname', 'namespace') },
  ]);
});

describe('Pod QoS annotations → spec.qosControls', () => {
  const q = 'qos.projectcalico.org/';
  runTable(PODS, [
    {
      name: 'every Calico annotation, DSCP name in any case', calico: `${CONVERSION_TEST} "should parse valid QoSControl annotations"`,
      input: pod({
        arbitrary: 'annotation', [`${q}ingressBandwidth`]: '1M', [`${q}egressBandwidth`]: '2M', [`${q}ingressBurst`]: '3M', [`${q}egressBurst`]: '4M',
        [`${q}ingressPeakrate`]: '5M', [`${q}egressPeakrate`]: '6M', [`${q}ingressMinburst`]: '7M', [`${q}egressMinburst`]: '8M',
        [`${q}ingressPacketRate`]: '2k', [`${q}egressPacketRate`]: '9k', [`${q}ingressPacketBurst`]: '1k', [`${q}egressPacketBurst`]: '10k',
        [`${q}ingressMaxConnections`]: '13M', [`${q}egressMaxConnections`]: '14M', [`${q}dscp`]: 'cs5',
      }),
      expected: wep({ qosControls: {
        ingressBandwidth: 1e6, egressBandwidth: 2e6, ingressBurst: 3e6, egressBurst: 4e6, ingressPeakrate: 5e6, egressPeakrate: 6e6,
        ingressMinburst: 7e6, egressMinburst: 8e6, ingressPacketRate: 2000, egressPacketRate: 9000, ingressPacketBurst: 1000, egressPacketBurst: 10000,
        ingressMaxConnections: 13e6, egressMaxConnections: 14e6, dscp: 'CS5',
      } }),
    },
    {
      name: 'out of range: clamped to the bounds (0 to the minimum)', calico: `${CONVERSION_TEST} "should cap invalid QoSControl annotations to min/max values"`,
      input: pod({
        [`${q}ingressBandwidth`]: '1', [`${q}egressBandwidth`]: '20P', [`${q}ingressBurst`]: '3', [`${q}egressBurst`]: '40P',
        [`${q}ingressPeakrate`]: '5', [`${q}egressPeakrate`]: '50P', [`${q}ingressMinburst`]: '7', [`${q}egressMinburst`]: '8Gi',
        [`${q}ingressPacketRate`]: '0', [`${q}egressPacketRate`]: '60P', [`${q}ingressPacketBurst`]: '0', [`${q}egressPacketBurst`]: '70P',
        [`${q}ingressMaxConnections`]: '0', [`${q}egressMaxConnections`]: '80P',
      }),
      expected: wep({ qosControls: {
        ingressBandwidth: 1000, egressBandwidth: 1e15, ingressBurst: 1000, egressBurst: 34359738360, ingressPeakrate: 1010, egressPeakrate: 1.01e15,
        ingressMinburst: 1000, egressMinburst: 1e8, ingressPacketRate: 1, egressPacketRate: 10000, ingressPacketBurst: 1, egressPacketBurst: 10000,
        ingressMaxConnections: 1, egressMaxConnections: 4294967295,
      } }),
    },
    { name: 'burst without bandwidth: none', calico: `${CONVERSION_TEST} "should ignore burst QoSControl annotation if bandwidth is not present"`,
      input: pod({ [`${q}ingressBurst`]: '3M', [`${q}egressBurst`]: '4M' }), expected: wep() },
    { name: 'peakrate without bandwidth: none', calico: `${CONVERSION_TEST} "should ignore peakrate QoSControl annotation if bandwidth is not present"`,
      input: pod({ [`${q}ingressPeakrate`]: '3M', [`${q}egressPeakrate`]: '4M' }), expected: wep() },
    { name: 'minburst without peakrate: none', calico: `${CONVERSION_TEST} "should ignore minburst QoSControl annotation if peakrate is not present"`,
      input: pod({ [`${q}ingressMinburst`]: '3M', [`${q}egressMinburst`]: '4M' }), expected: wep() },
    { name: 'packet burst without packet rate: none', calico: `${CONVERSION_TEST} "should ignore packet burst QoSControl annotation if packet rate is not present"`,
      input: pod({ [`${q}ingressPacketBurst`]: '3M', [`${q}egressPacketBurst`]: '4M' }), expected: wep() },
    {
      name: 'Kubernetes bandwidth annotations with a DSCP name: default burst 4Gi', calico: WEP_DEFAULT,
      input: pod({ 'kubernetes.io/ingress-bandwidth': '10M', 'kubernetes.io/egress-bandwidth': '1Gi', [`${q}dscp`]: 'AF11' }),
      expected: wep({ qosControls: { ingressBandwidth: 1e7, ingressBurst: GIB4, egressBandwidth: 2 ** 30, egressBurst: GIB4, dscp: 'AF11' } }),
    },
    {
      name: "Calico's bandwidth annotation overrides the Kubernetes one; packet rate gets a default burst of 5", calico: WEP_DEFAULT,
      input: pod({ 'kubernetes.io/egress-bandwidth': '10M', [`${q}egressBandwidth`]: '20M', [`${q}ingressPacketRate`]: '100' }),
      expected: wep({ qosControls: { egressBandwidth: 2e7, egressBurst: GIB4, ingressPacketRate: 100, ingressPacketBurst: 5 } }),
    },
    {
      name: 'peakrate not above bandwidth is dropped; fractional quantities round up', calico: WEP_DEFAULT,
      input: pod({ [`${q}ingressBandwidth`]: '2M', [`${q}ingressPeakrate`]: '2M', [`${q}egressBandwidth`]: '1.0005k', [`${q}egressPeakrate`]: '1.5e3' }),
      expected: wep({ qosControls: { ingressBandwidth: 2e6, ingressBurst: GIB4, egressBandwidth: 1001, egressBurst: GIB4, egressPeakrate: 1500 } }),
    },
    {
      name: 'unparsable quantity and DSCP out of range: left out (the endpoint is kept)', calico: WEP_DEFAULT,
      input: pod({ 'kubernetes.io/ingress-bandwidth': '10 M', [`${q}dscp`]: '64' }),
      expected: wep(),
    },
    {
      name: 'DSCP as a number 0-63', calico: `${WEP_DEFAULT}; api/pkg/lib/numorstring/dscp.go`,
      input: pod({ [`${q}dscp`]: '46' }),
      expected: wep({ qosControls: { dscp: 46 } }),
    },
    {
      name: 'DSCP 0 is a setting', calico: `${WEP_DEFAULT}; api/pkg/lib/numorstring/dscp.go`,
      input: pod({ [`${q}dscp`]: '0' }),
      expected: wep({ qosControls: { dscp: 0 } }),
    },
    {
      name: 'unknown DSCP name: left out', calico: 'api/pkg/lib/numorstring/dscp.go',
      input: pod({ [`${q}dscp`]: 'AF99' }),
      expected: wep(),
    },
  ]);
});

// ---- Node → Calico Node ---------------------------------------------------------------------

function k8sNode(annotations: Record<string, string>, spec: Record<string, unknown> = {}): any {
  return { apiVersion: 'v1', kind: 'Node', metadata: { name: 'TestNode', resourceVersion: '1234', annotations }, spec, status: {} };
}
function calicoNode(spec: Record<string, unknown>, status?: Record<string, unknown>): CalicoResource {
  return {
    key: '/calico/resources/v3/projectcalico.org/nodes/TestNode',
    value: {
      apiVersion: 'projectcalico.org/v3', kind: 'Node',
      metadata: { name: 'TestNode', annotations: { 'projectcalico.org/kube-labels': 'null' } },
      spec: { orchRefs: [{ nodeName: 'TestNode', orchestrator: 'k8s' }], ...spec },
      ...(status ? { status } : {}),
    },
  };
}
const BGP_ANN = { 'projectcalico.org/IPv4Address': '172.17.17.10', 'projectcalico.org/ASNumber': '2546' };
const BGP_ADDR = [{ address: '172.17.17.10', type: 'CalicoNodeIP' }];
const IFACES_ANN = '[{"name":"eth1","addresses":["172.31.11.4"]},{"name":"eth0","addresses":["172.17.17.10","172.17.17.11"]}]';

describe('USE_POD_CIDR: Node tunnel addresses from spec.podCIDR', () => {
  const podCIDR = { usePodCIDR: true };
  runTable(NODES, [
    {
      name: 'IPIP tunnel address = first address of the pod CIDR; no wireguard address without a public key', opts: podCIDR,
      calico: `${NODE_TEST} "should parse a k8s Node to a Calico Node with an IPv4IPIPTunnelAddr and no wireguard tunnel addr if there is no public key"`,
      input: k8sNode(BGP_ANN, { podCIDR: '10.0.0.0/24' }),
      expected: calicoNode({ bgp: { ipv4Address: '172.17.17.10', asNumber: 2546, ipv4IPIPTunnelAddr: '10.0.0.1' }, addresses: BGP_ADDR }),
    },
    {
      name: 'with a wireguard public key, the wireguard address is the same', opts: podCIDR,
      calico: `${NODE_TEST} "should parse a k8s Node to a Calico Node with an IPv4IPIPTunnelAddr and a wireguard tunnel addr if there is a public key"`,
      input: k8sNode({ ...BGP_ANN, 'projectcalico.org/WireguardPublicKey': 'abcd' }, { podCIDR: '10.0.0.0/24' }),
      expected: calicoNode(
        { bgp: { ipv4Address: '172.17.17.10', asNumber: 2546, ipv4IPIPTunnelAddr: '10.0.0.1' }, wireguard: { interfaceIPv4Address: '10.0.0.1' }, addresses: BGP_ADDR },
        { wireguardPublicKey: 'abcd' },
      ),
    },
    {
      name: 'the annotations are not read for IPIP and wireguard then; VXLAN still is', opts: podCIDR, calico: `${NODE} K8sNodeToCalico`,
      input: k8sNode({ 'projectcalico.org/IPv4IPIPTunnelAddr': '10.9.9.9', 'projectcalico.org/IPv4WireguardInterfaceAddr': '10.9.9.8', 'projectcalico.org/IPv4VXLANTunnelAddr': '10.9.9.7' }, { podCIDR: '10.0.3.0/24' }),
      expected: calicoNode({ bgp: { ipv4IPIPTunnelAddr: '10.0.3.1' }, ipv4VXLANTunnelAddr: '10.9.9.7' }),
    },
    {
      name: 'the address as written, not the network, is incremented', opts: podCIDR, calico: `${NODE} getStaticTunnelAddress`,
      input: k8sNode({}, { podCIDR: '10.0.0.1/24' }),
      expected: calicoNode({ bgp: { ipv4IPIPTunnelAddr: '10.0.0.2' } }),
    },
    {
      name: 'empty pod CIDR: tunnel addresses from the annotations, as without USE_POD_CIDR', opts: podCIDR, calico: `${NODE_TEST} "should handle an empty pod CIDR"`,
      input: k8sNode({ ...BGP_ANN, 'projectcalico.org/IPv4IPIPTunnelAddr': '10.9.9.9' }),
      expected: calicoNode({ bgp: { ipv4Address: '172.17.17.10', asNumber: 2546, ipv4IPIPTunnelAddr: '10.9.9.9' }, addresses: BGP_ADDR }),
    },
    {
      name: 'an IPv6 pod CIDR gives no IPv4 tunnel address', opts: podCIDR, calico: `${NODE} getStaticTunnelAddress`,
      input: k8sNode({}, { podCIDR: 'feee::/122' }),
      expected: calicoNode({}),
    },
    {
      name: 'without USE_POD_CIDR the pod CIDR is not used', calico: `${NODE} K8sNodeToCalico`,
      input: k8sNode({ 'projectcalico.org/IPv4IPIPTunnelAddr': '10.9.9.9' }, { podCIDR: '10.0.0.0/24' }),
      expected: calicoNode({ bgp: { ipv4IPIPTunnelAddr: '10.9.9.9' } }),
    },
  ]);
  test(`an unparsable pod CIDR fails the conversion [${NODE} getStaticTunnelAddress]`, () => {
    assert.throws(() => convert(NODES, k8sNode({}, { podCIDR: '10.0.0/24' }), podCIDR), /podCIDR/);
  });
  test('USE_POD_CIDR: IPAM blocks and block affinities are not watched', () => {
    const paths = (o: ConversionOptions) => watchedResources(CRD_V1, o).map((r) => r.path);
    for (const plural of ['ipamblocks', 'blockaffinities']) {
      assert.ok(paths({}).includes(`/apis/crd.projectcalico.org/v1/${plural}`), `${plural} watched by default`);
      assert.ok(!paths(podCIDR).includes(`/apis/crd.projectcalico.org/v1/${plural}`), `${plural} not watched with USE_POD_CIDR`);
    }
  });
});

describe('Node spec.interfaces from projectcalico.org/Interfaces', () => {
  runTable(NODES, [
    {
      name: 'the annotation as calico-node writes it', calico: `${NODE_TEST} (nodeInterfacesAnnotation)`,
      input: k8sNode({ 'projectcalico.org/Interfaces': IFACES_ANN }),
      expected: calicoNode({ interfaces: [{ name: 'eth1', addresses: ['172.31.11.4'] }, { name: 'eth0', addresses: ['172.17.17.10', '172.17.17.11'] }] }),
    },
    {
      name: 'an invalid address is removed', calico: `${NODE} fillAllInterfaces`,
      input: k8sNode({ 'projectcalico.org/Interfaces': '[{"name":"eth0","addresses":["10.0.0.1","not-an-ip","fd00::1"]}]' }),
      expected: calicoNode({ interfaces: [{ name: 'eth0', addresses: ['10.0.0.1', 'fd00::1'] }] }),
    },
    {
      name: 'of two invalid addresses in a row the second stays (removal in place skips the next)', calico: `${NODE} fillAllInterfaces`,
      input: k8sNode({ 'projectcalico.org/Interfaces': '[{"name":"eth0","addresses":["bad-1","bad-2","10.0.0.1"]}]' }),
      expected: calicoNode({ interfaces: [{ name: 'eth0', addresses: ['bad-2', '10.0.0.1'] }] }),
    },
    {
      name: 'not JSON: no interfaces', calico: `${NODE} fillAllInterfaces`,
      input: k8sNode({ 'projectcalico.org/Interfaces': '[{"name":' }),
      expected: calicoNode({}),
    },
    {
      name: 'an empty list: omitted', calico: `${NODE} fillAllInterfaces (omitempty)`,
      input: k8sNode({ 'projectcalico.org/Interfaces': '[]' }),
      expected: calicoNode({}),
    },
    {
      name: 'a bare address in IPv4Address is a valid CIDR', calico: `${NODE} getAnnotation with validatorv3.ValidateCIDRv4 (ParseCIDROrIP)`,
      input: k8sNode({ 'projectcalico.org/IPv4Address': '172.17.17.10', 'projectcalico.org/IPv6Address': 'fd10::10' }),
      expected: calicoNode({ bgp: { ipv4Address: '172.17.17.10', ipv6Address: 'fd10::10' }, addresses: [...BGP_ADDR, { address: 'fd10::10', type: 'CalicoNodeIP' }] }),
    },
  ]);
});

// ---- NetworkPolicy --------------------------------------------------------------------------

function netpol(spec: Record<string, unknown>, name = 'test.policy', uid?: string): any {
  return { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name, namespace: 'default', resourceVersion: '10', ...(uid ? { uid } : {}) }, spec };
}
function knp(spec: Record<string, unknown>, name = 'test.policy', uid?: string): CalicoResource {
  return {
    key: `/calico/resources/v3/projectcalico.org/kubernetesnetworkpolicies/default/${name}`,
    value: { apiVersion: 'projectcalico.org/v3', kind: 'KubernetesNetworkPolicy', metadata: { name, namespace: 'default', ...(uid ? { uid } : {}) }, spec: { order: 1000, tier: 'default', ...spec } },
  };
}

describe('NetworkPolicy: name, tier, legacy CIDRs', () => {
  runTable(NETPOLS, [
    {
      name: 'its own name (no knp.default. prefix), tier default, converted UID', calico: `${CONVERSION_TEST} "should parse a basic k8s NetworkPolicy to a NetworkPolicy"; ${CONVERSION} K8sNetworkPolicyToCalico`,
      input: netpol({
        podSelector: { matchLabels: { label: 'value', label2: 'value2' } },
        ingress: [{ ports: [{ port: 80 }, { port: 'foo' }], from: [{ podSelector: { matchLabels: { k: 'v', k2: 'v2' } } }] }],
        policyTypes: ['Ingress'],
      }, 'test.policy', UID),
      expected: knp({
        selector: `${ORCH} && label == 'value' && label2 == 'value2'`,
        ingress: [{ action: 'Allow', protocol: 'TCP', source: { selector: `${ORCH} && k == 'v' && k2 == 'v2'` }, destination: { ports: [80, 'foo'] } }],
        types: ['Ingress'],
      }, 'test.policy', CONVERTED_UID),
    },
    {
      name: 'ipBlock cidr with leading zeros (legacy form): no nets, the rule matches any source', calico: `${CONVERSION} k8sPeerToCalicoFields`,
      input: netpol({ podSelector: {}, ingress: [{ from: [{ ipBlock: { cidr: '010.0.0.0/8' } }], ports: [{ port: 443 }] }], policyTypes: ['Ingress'] }),
      expected: knp({ selector: ORCH, ingress: [{ action: 'Allow', protocol: 'TCP', destination: { ports: [443] } }], types: ['Ingress'] }),
    },
    {
      name: 'legacy-form except: the excepts before it are kept, the rest dropped', calico: `${CONVERSION} k8sPeerToCalicoFields`,
      input: netpol({ podSelector: {}, egress: [{ to: [{ ipBlock: { cidr: '10.0.0.0/8', except: ['10.1.0.0/16', '010.2.0.0/16', '10.3.0.0/16'] } }] }], policyTypes: ['Egress'] }),
      expected: knp({ selector: ORCH, egress: [{ action: 'Allow', destination: { nets: ['10.0.0.0/8'], notNets: ['10.1.0.0/16'] } }], types: ['Egress'] }),
    },
  ]);
});

// ---- ClusterNetworkPolicy -------------------------------------------------------------------

function cnp(spec: Record<string, unknown>, name = 'test.policy'): any {
  return { apiVersion: 'policy.networking.k8s.io/v1alpha2', kind: 'ClusterNetworkPolicy', metadata: { name, uid: UID, resourceVersion: '7' }, spec };
}
function kcnp(spec: Record<string, unknown>, name = 'test.policy'): CalicoResource {
  return {
    key: `/calico/resources/v3/projectcalico.org/kubernetesclusternetworkpolicies/${name}`,
    value: { apiVersion: 'projectcalico.org/v3', kind: 'KubernetesClusterNetworkPolicy', metadata: { name, uid: CONVERTED_UID }, spec },
  };
}
const tcp80 = [{ tcp: { destinationPort: { number: 80 } } }];
const nsSubject = { namespaces: { matchLabels: { label: 'value', label2: 'value2' } } };
const ruleName = (name: string) => ({ annotations: { name } });

describe('ClusterNetworkPolicy → KubernetesClusterNetworkPolicy (kube-admin / kube-baseline)', () => {
  runTable(CNPS, [
    {
      name: 'Admin tier, namespaces subject, Accept → Allow', calico: `${CNP_TEST} "should parse a basic k8s ClusterNetworkPolicy to a GlobalNetworkPolicy"`,
      input: cnp({ priority: 100, tier: 'Admin', subject: nsSubject, ingress: [{ name: 'The first ingress rule', action: 'Accept', protocols: tcp80, from: [{ namespaces: { matchLabels: { k: 'v', k2: 'v2' } } }] }] }),
      expected: kcnp({
        tier: 'kube-admin', order: 100, namespaceSelector: "label == 'value' && label2 == 'value2'", selector: ORCH,
        ingress: [{ metadata: ruleName('The first ingress rule'), action: 'Allow', protocol: 'TCP', source: { namespaceSelector: "k == 'v' && k2 == 'v2'" }, destination: { ports: [80] } }],
        types: ['Ingress'],
      }),
    },
    {
      name: 'unconvertible rules: Deny/Pass become a bare Deny, Accept is dropped', calico: `${CNP_TEST} "should replace an unsupported ClusterNetworkPolicy rule with Deny action with a deny-all one"`,
      input: cnp({
        tier: 'Admin', priority: 600, subject: nsSubject,
        ingress: [
          { name: 'A random ingress rule', action: 'Pass', protocols: [{ udp: { destinationPort: { range: { start: 40, end: 20 } } } }], from: [{ namespaces: { matchLabels: { k: 'v' } } }] },
          { name: 'A random ingress rule 2', action: 'Accept', protocols: [{ udp: { destinationPort: { range: { start: 40, end: 20 } } } }], from: [{ namespaces: { matchLabels: { k: 'v' } } }] },
        ],
        egress: [
          { name: 'A random egress rule', action: 'Deny', protocols: [{ udp: { destinationPort: { range: { start: 40, end: 20 } } } }], to: [{ namespaces: { matchLabels: { k3: 'v3' } } }] },
          { name: 'A random egress rule 2', action: 'Deny', protocols: tcp80, to: [{ namespaces: { matchLabels: { k4: 'v4' } } }] },
        ],
      }),
      expected: kcnp({
        tier: 'kube-admin', order: 600, namespaceSelector: "label == 'value' && label2 == 'value2'", selector: ORCH,
        ingress: [{ action: 'Deny' }],
        egress: [{ action: 'Deny' }, { metadata: ruleName('A random egress rule 2'), action: 'Deny', protocol: 'TCP', destination: { namespaceSelector: "k4 == 'v4'", ports: [80] } }],
        types: ['Ingress', 'Egress'],
      }),
    },
    {
      name: 'networks peer: nets as networks, one rule per peer', calico: `${CNP_TEST} "should parse a k8s ClusterNetworkPolicy with a Networks peer and ports"`,
      input: cnp({
        tier: 'Admin', priority: 200, subject: nsSubject,
        ingress: [{ name: 'A random ingress rule', action: 'Pass', protocols: tcp80, from: [{ namespaces: { matchLabels: { k: 'v' } } }] }],
        egress: [{ name: 'A random egress rule', action: 'Deny', protocols: tcp80, to: [{ namespaces: { matchLabels: { k3: 'v3' } } }, { networks: ['10.10.10.0/24', '1.1.1.1/32'] }] }],
      }),
      expected: kcnp({
        tier: 'kube-admin', order: 200, namespaceSelector: "label == 'value' && label2 == 'value2'", selector: ORCH,
        ingress: [{ metadata: ruleName('A random ingress rule'), action: 'Pass', protocol: 'TCP', source: { namespaceSelector: "k == 'v'" }, destination: { ports: [80] } }],
        egress: [
          { metadata: ruleName('A random egress rule'), action: 'Deny', protocol: 'TCP', destination: { namespaceSelector: "k3 == 'v3'", ports: [80] } },
          { metadata: ruleName('A random egress rule'), action: 'Deny', protocol: 'TCP', destination: { nets: ['10.10.10.0/24', '1.1.1.1/32'], ports: [80] } },
        ],
        types: ['Ingress', 'Egress'],
      }),
    },
    {
      name: 'Baseline tier, pods subject, no protocols (any), named port, no rules of a direction: no type', calico: `${CNP} K8sClusterNetworkPolicyToCalico, unpackCNPProtocols`,
      input: cnp({
        tier: 'Baseline', priority: 5,
        subject: { pods: { namespaceSelector: {}, podSelector: { matchLabels: { app: 'db' } } } },
        egress: [
          { action: 'Deny', to: [{ pods: { namespaceSelector: { matchLabels: { team: 'x' } }, podSelector: {} } }] },
          { name: 'web', action: 'Accept', protocols: [{ destinationNamedPort: 'http' }, { tcp: { destinationPort: { range: { start: 8000, end: 8080 } } } }], to: [{ networks: ['10.1.2.3/16'] }] },
        ],
      }),
      expected: kcnp({
        tier: 'kube-baseline', order: 5, namespaceSelector: 'all()', selector: `${ORCH} && app == 'db'`,
        egress: [
          { action: 'Deny', destination: { selector: ORCH, namespaceSelector: "team == 'x'" } },
          { metadata: ruleName('web'), action: 'Allow', destination: { nets: ['10.1.0.0/16'], ports: ['http'] } },
          { metadata: ruleName('web'), action: 'Allow', protocol: 'TCP', destination: { nets: ['10.1.0.0/16'], ports: ['8000:8080'] } },
        ],
        types: ['Egress'],
      }),
    },
    {
      name: 'a peer with no supported field fails its rule (Accept: dropped); an invalid network too (Deny: bare Deny)', calico: `${CNP_TEST} "should faild parsing ... neither namespaces or pods set", "with an invalid networks peer"`,
      input: cnp({
        tier: 'Admin', priority: 1, subject: { namespaces: {} },
        ingress: [{ action: 'Accept', from: [{}] }],
        egress: [{ action: 'Deny', to: [{ networks: ['010.0.0.0/8'] }] }],
      }),
      expected: kcnp({ tier: 'kube-admin', order: 1, namespaceSelector: 'all()', selector: ORCH, egress: [{ action: 'Deny' }], types: ['Egress'] }),
    },
    { name: 'an unknown tier: nothing (a tombstone there)', calico: `${CNP_TEST} "should return a tombstone KVPair for an invalid tier"`,
      input: cnp({ priority: 100, tier: 'InvalidTier', subject: { namespaces: {} } }, 'bad-tier-policy'), expected: null },
    { name: 'no subject: nothing (a tombstone there)', calico: `${CNP_TEST} "should return a tombstone KVPair when no subject selector is specified"`,
      input: cnp({ priority: 100, tier: 'Admin', subject: {} }, 'no-subject-policy'), expected: null },
  ]);
});

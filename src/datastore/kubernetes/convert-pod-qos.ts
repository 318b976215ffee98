// A pod's QoS annotations → the WorkloadEndpoint's spec.qosControls (bandwidth, burst, peakrate,
// minburst, packet rate and burst, connection limits, DSCP), which Felix programs per interface.
// A value that does not parse is left out and one out of range is clamped to it, with the rest of
// the endpoint kept: a bad annotation must not take a pod off the network.
import { quantityValue } from './quantity.js';

const K8S_INGRESS_BANDWIDTH = 'kubernetes.io/ingress-bandwidth';
const K8S_EGRESS_BANDWIDTH = 'kubernetes.io/egress-bandwidth';
const Q = 'qos.projectcalico.org/';

const k = 1000n;
/** [min, max] of each quantity. Bandwidth and peakrate in bit/s, burst in bits, minburst in bytes. */
const BANDWIDTH = [k, 10n ** 15n] as const;
const BURST = [k, 0xffffffffn * 8n] as const;
const PEAKRATE = [1010n, 101n * 10n ** 13n] as const;
const MINBURST = [k, 10n ** 8n] as const;
/** Packets per second and packets: the kernel's limit match counts at most 10k. */
const PACKET_RATE = [1n, 10n * k] as const;
const PACKET_BURST = [1n, 10n * k] as const;
const CONNECTIONS = [1n, 0xffffffffn] as const;
const DEFAULT_BURST = 4n << 30n;
const DEFAULT_PACKET_BURST = 5n;

/** DSCP names Felix knows, and their code points. */
const DSCP_NAMES: Record<string, number> = {
  DF: 0, EF: 46, AF11: 10, AF12: 12, AF13: 14, AF21: 18, AF22: 20, AF23: 22, AF31: 26, AF32: 28, AF33: 30,
  AF41: 34, AF42: 36, AF43: 38, CS0: 0, CS1: 8, CS2: 16, CS3: 24, CS4: 32, CS5: 40, CS6: 48,
};

type Controls = Record<string, number | string>;

/**
 * The qosControls of a pod's annotations, or undefined when none is set. The Kubernetes
 * bandwidth annotations are read first, Calico's own (`qos.projectcalico.org/...`) override them.
 * Dependencies then apply: a burst needs its bandwidth, a peakrate needs a lower bandwidth, a
 * minburst needs its peakrate, a packet burst needs its packet rate (else the dependent value is
 * dropped); a bandwidth gets a default burst of 4 GiB and a packet rate a default burst of 5.
 * DSCP: a name (any case, printed canonically) or a number 0-63; anything else is left out.
 */
export function qosControls(annotations: Record<string, string>): Controls | undefined {
  const q: Record<string, bigint> = {};
  const read = (field: string, annotation: string, [min, max]: readonly [bigint, bigint]) => {
    const raw = annotations[annotation];
    if (raw === undefined) return;
    const v = quantityValue(raw);
    // Unparsable reads as 0 (unset); out of range as the nearest bound.
    q[field] = v === undefined ? 0n : v < min ? min : v > max ? max : v;
  };
  read('ingressBandwidth', K8S_INGRESS_BANDWIDTH, BANDWIDTH);
  read('egressBandwidth', K8S_EGRESS_BANDWIDTH, BANDWIDTH);
  for (const dir of ['ingress', 'egress'] as const) read(`${dir}Bandwidth`, `${Q}${dir}Bandwidth`, BANDWIDTH);
  for (const dir of ['ingress', 'egress'] as const) read(`${dir}Burst`, `${Q}${dir}Burst`, BURST);
  for (const dir of ['ingress', 'egress'] as const) read(`${dir}Peakrate`, `${Q}${dir}Peakrate`, PEAKRATE);
  for (const dir of ['ingress', 'egress'] as const) read(`${dir}Minburst`, `${Q}${dir}Minburst`, MINBURST);
  for (const dir of ['ingress', 'egress'] as const) read(`${dir}PacketRate`, `${Q}${dir}PacketRate`, PACKET_RATE);
  for (const dir of ['ingress', 'egress'] as const) read(`${dir}PacketBurst`, `${Q}${dir}PacketBurst`, PACKET_BURST);
  for (const dir of ['ingress', 'egress'] as const) read(`${dir}MaxConnections`, `${Q}${dir}MaxConnections`, CONNECTIONS);

  const get = (f: string) => q[f] ?? 0n;
  for (const dir of ['ingress', 'egress'] as const) {
    if (get(`${dir}Burst`) !== 0n && get(`${dir}Bandwidth`) === 0n) q[`${dir}Burst`] = 0n;
    const peak = get(`${dir}Peakrate`);
    if (peak !== 0n && (get(`${dir}Bandwidth`) === 0n || get(`${dir}Bandwidth`) >= peak)) q[`${dir}Peakrate`] = 0n;
    if (get(`${dir}Minburst`) !== 0n && get(`${dir}Peakrate`) === 0n) q[`${dir}Minburst`] = 0n;
    if (get(`${dir}PacketBurst`) !== 0n && get(`${dir}PacketRate`) === 0n) q[`${dir}PacketBurst`] = 0n;
  }
  for (const dir of ['ingress', 'egress'] as const) {
    if (get(`${dir}Bandwidth`) !== 0n && get(`${dir}Burst`) === 0n) q[`${dir}Burst`] = DEFAULT_BURST;
    if (get(`${dir}PacketRate`) !== 0n && get(`${dir}PacketBurst`) === 0n) q[`${dir}PacketBurst`] = DEFAULT_PACKET_BURST;
  }

  const out: Controls = {};
  for (const [f, v] of Object.entries(q)) if (v !== 0n) out[f] = Number(v);
  const dscp = annotations[`${Q}dscp`];
  if (dscp !== undefined) {
    const d = parseDSCP(dscp);
    if (d !== undefined) out.dscp = d;
  }
  return Object.keys(out).length ? out : undefined;
}

/** A DSCP as the value carries it: a number when the text is a decimal uint8, else the (canonical) name. */
function parseDSCP(raw: string): number | string | undefined {
  if (/^[0-9]+$/.test(raw)) {
    const n = Number(raw);
    return n <= 63 ? n : undefined;
  }
  const canonical = Object.keys(DSCP_NAMES).find((n) => n.toLowerCase() === raw.toLowerCase()) ?? raw;
  // Names are matched with surrounding spaces ignored, and then kept as written.
  return DSCP_NAMES[canonical.trim().toUpperCase()] !== undefined ? canonical : undefined;
}

// The updates a benchmark writes: WorkloadEndpoint-shaped values of realistic size (about
// 0.6 KiB of JSON), each stamped with its sequence number, its key's index and the time it was
// written on the monotonic clock every process on the machine shares.
export const BENCH_NS = 'bench';
export const PREFIX = '/calico/resources/v3/projectcalico.org/workloadendpoints/';

/** Microseconds on CLOCK_MONOTONIC: comparable across processes on one machine. */
export function nowUs(): number {
  return Number(process.hrtime.bigint() / 1000n);
}

export function keyOf(i: number): string {
  return `${PREFIX}${BENCH_NS}/node--${i % 500}-k8s-pod--${i}-eth0`;
}

const hex = (n: number, len: number) => (n * 2654435761 >>> 0).toString(16).padStart(8, '0').repeat(Math.ceil(len / 8)).slice(0, len);

export function valueOf(i: number, seq: number, ts: number): Record<string, unknown> {
  const node = `node-${i % 500}`;
  const pod = `pod-${i}`;
  return {
    apiVersion: 'projectcalico.org/v3',
    kind: 'WorkloadEndpoint',
    metadata: {
      name: `node--${i % 500}-k8s-pod--${i}-eth0`,
      namespace: BENCH_NS,
      labels: {
        app: `app-${i % 37}`, 'pod-template-hash': hex(i, 10), 'projectcalico.org/namespace': BENCH_NS,
        'projectcalico.org/orchestrator': 'k8s', 'projectcalico.org/serviceaccount': 'default',
      },
      annotations: { 'bench/key': String(i), 'bench/seq': String(seq), 'bench/ts': String(ts) },
    },
    spec: {
      orchestrator: 'k8s', node, pod, endpoint: 'eth0', containerID: hex(i + 1, 64),
      ipNetworks: [`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}/32`],
      profiles: [`kns.${BENCH_NS}`, `ksa.${BENCH_NS}.default`],
      interfaceName: `cali${hex(i + 2, 11)}`, mac: '5a:3b:6c:11:22:33',
      ports: [{ name: 'http', protocol: 'TCP', port: 8080 }],
    },
  };
}

export interface Stamp { key: number; seq: number; ts: number }

/** Reads the stamp back from a value as any system delivers it (object or JSON text). */
export function stampOf(v: unknown): Stamp | undefined {
  const a = (v as { metadata?: { annotations?: Record<string, string> } } | null)?.metadata?.annotations;
  if (!a || a['bench/seq'] === undefined) return undefined;
  return { key: Number(a['bench/key']), seq: Number(a['bench/seq']), ts: Number(a['bench/ts']) };
}

// The updates a benchmark writes: WorkloadEndpoint-shaped values of realistic size (about
// 0.6 KiB of JSON), each stamped with its sequence number, its key's index and the time it was
// written on the monotonic clock every process on the machine shares.
import { digitsAt, digitsEnd, forEachMark, STAMP_WITHIN } from './frame-items.js';

export const BENCH_NS = 'bench';
export const PREFIX = '/calico/resources/v3/projectcalico.org/workloadendpoints/';

/** Microseconds on CLOCK_MONOTONIC: comparable across processes on one machine. */
export function nowUs(): number {
  return Number(process.hrtime.bigint() / 1000n);
}

export function keyOf(i: number): string {
  return `${PREFIX}${BENCH_NS}/node--${i % 500}-k8s-pod--${i}-eth0`;
}

const KEY_INDEX = /-k8s-pod--(\d+)-eth0$/;

/** The index keyOf was given, or -1: a deletion carries no stamp, only its key. */
export function indexOfKey(key: string): number {
  const m = key.startsWith(PREFIX) ? KEY_INDEX.exec(key) : null;
  return m ? Number(m[1]) : -1;
}

const hex = (n: number, len: number) => (n * 2654435761 >>> 0).toString(16).padStart(8, '0').repeat(Math.ceil(len / 8)).slice(0, len);

export function valueOf(i: number, seq: number, ts: number): Record<string, unknown> {
  const node = `node-${i % 500}`;
  const pod = `pod-${i}`;
  return {
    apiVersion: 'projectcalico.org/v3',
    kind: 'WorkloadEndpoint',
    metadata: {
      // First, so that a reader finds the stamp near the start of the value in any encoding.
      annotations: { 'bench/key': String(i), 'bench/seq': String(seq), 'bench/ts': String(ts) },
      name: `node--${i % 500}-k8s-pod--${i}-eth0`,
      namespace: BENCH_NS,
      labels: {
        app: `app-${i % 37}`, 'pod-template-hash': hex(i, 10), 'projectcalico.org/namespace': BENCH_NS,
        'projectcalico.org/orchestrator': 'k8s', 'projectcalico.org/serviceaccount': 'default',
      },
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

/** Receives one stamp: the key's index, the sequence number and the write time. */
export type OnStamp = (key: number, seq: number, ts: number) => void;

/** Reads the stamp back from a decoded value (what a full agent does). */
export function stampOf(v: unknown, on: OnStamp): void {
  const a = (v as { metadata?: { annotations?: Record<string, string> } } | null)?.metadata?.annotations;
  if (a && a['bench/seq'] !== undefined) on(Number(a['bench/key']), Number(a['bench/seq']), Number(a['bench/ts']));
}

const MARK = Buffer.from('bench/key');

/**
 * Finds every stamp in encoded bytes without decoding them: msgpack (a value, or a raw frame of
 * many) or JSON alike, since each annotation name is followed by its digits after a header byte
 * or `":"`. Light clients measure delivery this way, as calibration's lean watchers did, so the
 * cost of decoding values (the same for every system) does not hide the cost of delivering them.
 */
export function stampsIn(buf: Buffer, on: OnStamp): void {
  let i = buf.indexOf(MARK);
  while (i >= 0) {
    const key = digitsAt(buf, i + MARK.length);
    const seq = digitsAt(buf, buf.indexOf('bench/seq', digitsEnd) + 9);
    const ts = digitsAt(buf, buf.indexOf('bench/ts', digitsEnd) + 8);
    on(key, seq, ts);
    i = buf.indexOf(MARK, digitsEnd);
  }
}

/**
 * The stamps of a protocol frame's items (`count` of them from byte `at`), each searched for only
 * near the start of its value (bench/lib/frame-items.ts): what lean readers do with every frame.
 */
export function stampsInItems(buf: Buffer, at: number, count: number, on: OnStamp): void {
  forEachMark(buf, at, count, MARK, STAMP_WITHIN, (after) => {
    const key = digitsAt(buf, after);
    const seq = digitsAt(buf, digitsEnd);
    on(key, seq, digitsAt(buf, digitsEnd));
  });
}


// Runtime figures of the compiled product (BENCHMARKS.md "Runtime"), each the median of N fresh
// processes, with bare `node -e 0` measured in the same command for the ratio:
//   - `calico-fanout --help`: wall time from spawn to exit;
//   - `serve` on the demo datastore: RSS once /readyz answers 200;
//   - a fresh process importing `calico-fanout/client`: RSS after the import.
// Usage: node --import tsx bench/tools/runtime.ts [runs=5]   (after `npm run build`)
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const RUNS = Number(process.argv[2] ?? 5);
const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]!; };
const mib = (kib: number) => kib / 1024;

function timed(args: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const child = spawn(process.execPath, args, { cwd: ROOT, stdio: 'ignore' });
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve(Number(process.hrtime.bigint() - t0) / 1e6) : reject(new Error(`${args.join(' ')}: exit ${code}`))));
  });
}

function rssKiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m![1]);
}

async function serveRss(): Promise<number> {
  const child = spawn(process.execPath, ['--enable-source-maps', 'bin/calico-fanout.js', 'serve', '--server-port', '-1', '--health-port', '-1', '--metrics-port', '-1', '--log-level', 'INFO'],
    { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    // The start line names the ports; then /readyz until 200.
    const health = await new Promise<number>((resolve, reject) => {
      let buf = '';
      child.stdout!.on('data', (d) => {
        buf += d;
        const m = /"health":(\d+)/.exec(buf);
        if (m) resolve(Number(m[1]));
      });
      child.on('exit', (code) => reject(new Error(`serve exited ${code}`)));
    });
    for (;;) {
      const r = await fetch(`http://127.0.0.1:${health}/readyz`).catch(() => undefined);
      if (r?.status === 200) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    await new Promise((r) => setTimeout(r, 500)); // settle after the first snapshot of the store
    return rssKiB(child.pid!);
  } finally {
    child.kill('SIGINT');
    await new Promise((r) => child.once('exit', r));
  }
}

function importRss(code: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', `${code}; process.stdout.write(String(process.memoryUsage.rss()))`], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d) => { out += d; });
    child.on('exit', (c) => (c === 0 ? resolve(Number(out) / 1024) : reject(new Error(`exit ${c}`))));
  });
}

const rows: string[] = [];
const bare: number[] = [];
const help: number[] = [];
for (let i = 0; i < RUNS; i++) {
  // Interleaved, so that a noisy moment hits both.
  bare.push(await timed(['-e', '0']));
  help.push(await timed(['bin/calico-fanout.js', '--help']));
}
rows.push(`start: node -e 0 ${median(bare).toFixed(0)} ms; calico-fanout --help ${median(help).toFixed(0)} ms (${(median(help) / median(bare)).toFixed(1)}×); runs ${help.map((t) => t.toFixed(0)).join(', ')} ms`);

const bareRss: number[] = [];
const clientRss: number[] = [];
for (let i = 0; i < RUNS; i++) {
  bareRss.push(await importRss('0'));
  clientRss.push(await importRss("await import('calico-fanout/client')"));
}
rows.push(`import calico-fanout/client: RSS ${mib(median(clientRss)).toFixed(1)} MiB (bare node ${mib(median(bareRss)).toFixed(1)} MiB); runs ${clientRss.map((k) => mib(k).toFixed(1)).join(', ')}`);

const serve: number[] = [];
for (let i = 0; i < RUNS; i++) serve.push(await serveRss());
rows.push(`serve (demo datastore) RSS once ready: ${mib(median(serve)).toFixed(1)} MiB; runs ${serve.map((k) => mib(k).toFixed(1)).join(', ')}`);

process.stdout.write(`${rows.join('\n')}\n`);

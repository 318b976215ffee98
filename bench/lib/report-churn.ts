// The churn scenario's results folder: JSON, a Markdown table per system (do the views equal
// etcd's, how fast creations arrive), the creation latency CDF and serving RSS over time.
import type { ChurnResult } from '../scenarios/churn.js';
import { cdfSvg, fmtMs, rssSvg, writeReportFiles } from './report.js';
import { rssLine } from './rss.js';

function row(r: ChurnResult): string {
  const serving = Object.entries(r.cpuS.serving).map(([n, v]) => `${n} ${v.toFixed(2)}`).join(' + ');
  const rss = Object.entries(r.peakRssMiB).map(([n, v]) => `${n} ${v}`).join(', ');
  return `| ${r.system} | ${r.clients} | ${r.waves} × ${r.waveSize} | ${r.created} / ${r.deleted} | ${r.etcdAsWritten ? 'yes' : `**no** (${r.putErrors} failed txns)`} | ${r.allMatch ? 'yes' : `**no** (${r.viewsMatchingEtcd} of ${r.clients})`} | ${r.delivered}/${r.expectedDeliveries} | ${fmtMs(r.latencyMs.p50)} | ${fmtMs(r.latencyMs.p99)} | ${fmtMs(r.latencyMs.max)} | ${r.churnS.toFixed(1)} | ${r.drainS.toFixed(2)} | ${serving} | ${r.cpuS.clients.toFixed(2)} | ${rss} | ${r.reconnects} |`;
}

export function churnMarkdown(title: string, command: string, results: ChurnResult[], machine: string): string {
  return [
    `# ${title}`, '', `Command: \`${command}\``, '', machine, '',
    '| system | N | waves × pods | created / deleted | etcd as written? | every view = etcd\'s churned keys? | delivered (creations + deletions) | p50 ms | p99 ms | max ms | churn s | drain s | serving CPU s | client CPU s | peak RSS MiB (serving) | reconnects |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|',
    ...results.map(row),
    '', 'Latency is creation write → client callback (deletions carry no stamp). A view equals etcd\'s when every deleted key is gone and every created key is there with the seq etcd holds.',
    '', '![creation latency CDF](latency.svg)', '', '![serving RSS over time](rss.svg)',
  ].join('\n') + '\n';
}

export function writeChurnResults(dir: string, name: string, command: string, results: ChurnResult[], machine: string): string {
  return writeReportFiles(dir, { scenario: name, command, machine, results }, {
    'latency.svg': cdfSvg(results.map((r) => ({ name: `${r.system} N=${r.clients}`, histogram: r.histogram }))),
    'rss.svg': rssSvg(results.map((r) => ({ name: `${r.system} N=${r.clients}`, t: r.rssSeries.t, mib: rssLine(r.rssSeries) })), 'seconds since the churn began'),
    'report.md': churnMarkdown(name, command, results, machine),
  });
}

// deploy/grafana/calico-fanout.json against the server: every query in the dashboard (panel
// targets and template variables) names only metrics a real server exports on /metrics, histograms
// through their _bucket/_sum/_count series; and the dashboard covers what operators look at.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { before, describe, test } from 'node:test';
import { cleanupAfterFile, LIMIT, startTestServer } from './support/harness.js';
import { httpGet } from './support/metrics.js';

const DASHBOARD = new URL('../deploy/grafana/calico-fanout.json', import.meta.url);
type Obj = Record<string, any>;

/** Metric families a server exports: name -> type, from the # TYPE lines of /metrics. */
function families(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (m) out.set(m[1]!, m[2]!);
  }
  return out;
}

// PromQL keywords that are not followed by '(' where they stand.
const KEYWORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'bool', 'and', 'or', 'unless', 'offset', 'inf', 'nan']);

/** The metric names a PromQL query reads (Grafana's $variables allowed in matchers and ranges). */
function metricsOf(query: string): string[] {
  // label_values(metric-or-selector, label): only the first argument is PromQL.
  const lv = /^\s*label_values\(\s*(.*?)\s*,\s*[a-zA-Z_][a-zA-Z0-9_]*\s*\)\s*$/.exec(query);
  if (lv) return metricsOf(lv[1]!);
  const bare = query
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'/g, '""') // strings
    .replace(/\{[^}]*\}/g, '') // label matchers
    .replace(/\[[^\]]*\]/g, '') // ranges
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ''); // label lists
  const names: string[] = [];
  for (const m of bare.matchAll(/(?<![\w$.])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?/g)) {
    if (m[2] || KEYWORDS.has(m[1]!.toLowerCase())) continue; // a function, or a keyword
    names.push(m[1]!);
  }
  return names;
}

/** Whether `name` is a series of an exported family: the family itself, or a histogram's (summary's) parts. */
function exported(name: string, fams: Map<string, string>): boolean {
  if (fams.has(name)) return true;
  const m = /^(.*)_(bucket|sum|count)$/.exec(name);
  if (!m) return false;
  const type = fams.get(m[1]!);
  return type === 'histogram' || (type === 'summary' && m[2] !== 'bucket');
}

/** Every PromQL query of the dashboard, with where it is. */
function queries(dash: Obj): { where: string; expr: string }[] {
  const out: { where: string; expr: string }[] = [];
  const walk = (panels: Obj[]) => {
    for (const p of panels ?? []) {
      for (const t of p.targets ?? []) out.push({ where: `panel "${p.title}" ${t.refId}`, expr: t.expr });
      walk(p.panels);
    }
  };
  walk(dash.panels);
  for (const v of dash.templating?.list ?? []) {
    if (v.type !== 'query') continue; // datasource, interval, custom: not PromQL
    out.push({ where: `variable $${v.name}`, expr: typeof v.query === 'string' ? v.query : v.query?.query });
  }
  return out;
}

const { track } = cleanupAfterFile();
let fams: Map<string, string>;
const dash = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as Obj;

before(async () => {
  const ts = track(await startTestServer());
  const r = await httpGet(ts.app.ports.metrics!, '/metrics');
  assert.equal(r.status, 200);
  fams = families(r.body);
});

describe('the Grafana dashboard', () => {
  test('every query names only metrics the server exports on /metrics', LIMIT, () => {
    const qs = queries(dash);
    assert.ok(qs.length >= 20, `the dashboard has queries (found ${qs.length})`);
    for (const { where, expr } of qs) {
      assert.equal(typeof expr, 'string', `${where}: a query`);
      const names = metricsOf(expr);
      assert.ok(names.length > 0, `${where}: ${expr} names a metric`);
      for (const n of names) assert.ok(exported(n, fams), `${where}: ${n} is not exported on /metrics (${expr})`);
    }
  });

  test('it shows connections, views, lag, snapshots, resyncs, disconnects, holds, datastore status and updates', () => {
    const used = new Set(queries(dash).flatMap((q) => metricsOf(q.expr)).map((n) => n.replace(/_(bucket|sum|count)$/, '')));
    for (const m of [
      'typha_connections_active', 'typha_connections_streaming', 'calico_fanout_client_lag_seconds', 'typha_snapshot_raw_bytes',
      'calico_fanout_resyncs_total', 'calico_fanout_connections_closed_total', 'calico_fanout_clients_held', 'calico_fanout_holds_total',
      'calico_fanout_datastore_status', 'calico_fanout_datastore_missing_collections', 'calico_fanout_updates_published_total',
    ]) assert.ok(used.has(m), `the dashboard queries ${m}`);
  });

  test('panels read the selected data source; ids are unique', () => {
    const ids = new Set<number>();
    const walk = (panels: Obj[]) => {
      for (const p of panels ?? []) {
        assert.ok(!ids.has(p.id), `panel id ${p.id} is unique`);
        ids.add(p.id);
        if (p.type !== 'row') assert.equal(p.datasource?.uid, '${datasource}', `panel "${p.title}" reads $datasource`);
        walk(p.panels);
      }
    };
    walk(dash.panels);
  });

  test('the check can fail: unknown metrics and parts of a non-histogram are rejected', () => {
    assert.deepEqual(metricsOf('sum by (syncer) (rate(calico_fanout_updates_published_total{instance=~"$instance"}[$__rate_interval]))'), ['calico_fanout_updates_published_total']);
    assert.deepEqual(metricsOf('histogram_quantile(0.99, sum by (le) (rate(calico_fanout_client_lag_seconds_bucket[5m])))'), ['calico_fanout_client_lag_seconds_bucket']);
    assert.deepEqual(metricsOf('label_values(typha_connections_active, instance)'), ['typha_connections_active']);
    assert.deepEqual(metricsOf('a_total / on (instance) group_left b_total or vector(0)'), ['a_total', 'b_total']);
    assert.ok(!exported('calico_fanout_no_such_metric', fams));
    assert.ok(exported('calico_fanout_client_lag_seconds_count', fams));
    assert.ok(!exported('typha_connections_active_bucket', fams), 'a gauge has no buckets');
    assert.ok(!exported('calico_fanout_resyncs', fams), 'a counter by another name');
  });
});

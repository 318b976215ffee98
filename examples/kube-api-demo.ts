// Try the Kubernetes datastore without a cluster: starts the contract server of the tests
// (test/support/kube-api.ts, our reading of the documented list/watch semantics, not a real
// kube-apiserver) with a small cluster in it, prints the kubeconfig to point calico-fanout at,
// and relabels a pod every second so there is something to watch. Ctrl-C stops it.
//   node --import tsx examples/kube-api-demo.ts [pods=500]
import { startKubeApi } from '../test/support/kube-api.js';
import { cluster, load, pod, podIp, PODS } from '../test/support/kube-cluster.js';

const pods = Number(process.argv[2] ?? 500);
const api = await startKubeApi({ bookmarkIntervalMs: 60_000 });
load(api, cluster(pods));
console.log(`Kubernetes API contract server at ${api.url} with ${pods} pods on 20 nodes`);
console.log(`  npm start -- --datastore kubernetes --kubeconfig ${api.kubeconfigPath}`);
let round = 0;
const churn = setInterval(() => {
  const i = round++ % pods;
  api.apply(PODS, pod(`web-${i}`, `ns-${i % 5}`, `node-${i % 20}`, podIp(i), { round: String(round) }));
}, 1000);
process.once('SIGINT', () => { clearInterval(churn); void api.close().then(() => process.exit(0)); });

// The Kubernetes adapter as the settings configure it. Its own module so that only a server on the
// Kubernetes API loads @kubernetes/client-node.
import type { Config } from '../src/config.js';
import { KubernetesDatastore } from '../src/datastore/kubernetes.js';
import { CRD_V1 } from '../src/datastore/kubernetes/api-group.js';
import { watchedResources } from '../src/datastore/kubernetes/resources.js';
import type { Logger } from '../src/logging.js';

export function kubernetesDatastore(config: Config, logger: Logger): KubernetesDatastore {
  return new KubernetesDatastore({
    kubeconfig: config.kubeconfig,
    pageSize: config.kubernetesPageSize,
    watchTimeoutSecs: config.kubernetesWatchTimeoutSecs,
    inactivityMs: config.kubernetesWatchInactivitySecs * 1000,
    requestTimeoutMs: 60_000,
    initialBackoffMs: 100,
    maxBackoffMs: 10_000,
    missingPollMs: config.kubernetesMissingPollSecs * 1000,
    calicoApiGroup: config.calicoApiGroup,
    logger: logger.child({ stage: 'kubernetes' }),
    resources: watchedResources(CRD_V1, { interfacePrefix: config.interfacePrefix[0], usePodCIDR: config.usePodCIDR }),
  });
}

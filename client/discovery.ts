// calico-fanout/client/discovery: the replicas from a Kubernetes Service's EndpointSlices, for
// SyncClientOptions.discover. A separate export: an agent that lists its servers itself never
// loads the Kubernetes client (even this loads it only on the first lookup).
export { kubernetesEndpoints, type KubernetesEndpointsOptions } from '../src/discovery.js';

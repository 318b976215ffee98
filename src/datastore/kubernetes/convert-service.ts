// Service (v1) and EndpointSlice (discovery.k8s.io/v1) → KubernetesService /
// KubernetesEndpointSlice, the pseudo-resources Calico's KDD felix syncer adds for Felix (its
// kube-proxy replacement and service-based policy). As Calico converts them, the key is the
// kind, namespace and name of the object, the value a deep copy of the Kubernetes object itself.
//
// Choice: the value is the Kubernetes object itself, in its own field layout (spec and status for
// a Service; addressType, endpoints and ports at the top level for an EndpointSlice, as
// discovery/v1 has no spec), so that a consumer decoding it as the Kubernetes type gets exactly
// what Calico hands Felix. Only the envelope is ours: apiVersion projectcalico.org/v3, `kind` the
// Calico kind (our store checks it against the key), and metadata reduced to name, namespace,
// uid, creationTimestamp, labels (EndpointSlices are tied to their Service by the
// kubernetes.io/service-name label) and annotations. resourceVersion, managedFields and the
// other server bookkeeping are dropped.
import {
  type CalicoResource, type KubeMeta, V3_API_VERSION, compact, keyOf, optArray, optObject, optString, readObject, v3Metadata,
} from './read.js';

export function convertService(obj: unknown): CalicoResource {
  const { o, meta } = readObject(obj, 'Service', true);
  const what = `Service ${meta.namespace}/${meta.name}`;
  const spec = optObject(o, 'spec', what);
  const status = optObject(o, 'status', what);
  return envelope('KubernetesService', meta, compact({ spec: structuredClone(spec ?? {}), status: status && structuredClone(status) }));
}

export function convertEndpointSlice(obj: unknown): CalicoResource {
  const { o, meta } = readObject(obj, 'EndpointSlice', true);
  const what = `EndpointSlice ${meta.namespace}/${meta.name}`;
  const addressType = optString(o, 'addressType', what);
  const endpoints = optArray(o, 'endpoints', what);
  const ports = optArray(o, 'ports', what);
  return envelope('KubernetesEndpointSlice', meta, compact({
    addressType,
    endpoints: endpoints && structuredClone(endpoints),
    ports: ports && structuredClone(ports),
  }));
}

function envelope(kind: string, meta: KubeMeta, body: Record<string, unknown>): CalicoResource {
  const value: Record<string, unknown> = { apiVersion: V3_API_VERSION, kind, metadata: v3Metadata(meta), ...body };
  return { key: keyOf(value), value };
}

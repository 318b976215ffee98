// Which API group serves Calico's resources. Calico v3.32+ may install them only as
// projectcalico.org/v3 CRDs; older releases as crd.projectcalico.org/v1. A cluster serving both
// uses crd.projectcalico.org/v1 (there projectcalico.org/v3 is Calico's own API server in front of
// the v1 CRDs). Calico's CALICO_API_GROUP forces the choice; else /apis decides, and a cluster
// that cannot be asked is taken to be v1, as Calico does.
import type { Logger } from '../../logging.js';
import type { KubeHttp } from './http.js';

export const CRD_V1 = 'crd.projectcalico.org/v1';
export const V3 = 'projectcalico.org/v3';
export type CalicoApiGroup = typeof CRD_V1 | typeof V3;

/** The group version to read Calico's resources from; `override` is CALICO_API_GROUP ('' unset). */
export async function discoverCalicoGroup(api: KubeHttp, override: string, timeoutMs: number, log: Logger): Promise<CalicoApiGroup> {
  if (override) return override.toLowerCase() === V3 ? V3 : CRD_V1;
  try {
    const list = await api.getJson('/apis', new AbortController().signal, timeoutMs);
    const names = new Set<string>((Array.isArray(list?.groups) ? list.groups : []).map((g: { name?: unknown }) => String(g?.name)));
    const v3 = names.has(groupOf(V3));
    const v1 = names.has(groupOf(CRD_V1));
    const group = v3 && !v1 ? V3 : CRD_V1;
    log.info({ v3present: v3, v1present: v1, group }, 'discovered the Calico API group');
    return group;
  } catch (err) {
    log.warn({ err: (err as Error).message, group: CRD_V1 }, 'could not list the API groups; reading Calico resources from crd.projectcalico.org/v1');
    return CRD_V1;
  }
}

const groupOf = (groupVersion: string) => groupVersion.split('/')[0]!;

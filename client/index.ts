// calico-fanout/client: the library agents embed (discovery from EndpointSlices: calico-fanout/client/discovery).
export { SyncClient, type SyncClientOptions, type ClientLogger, type ClientStats, type ClientEvent, type Update, type CachedValue } from './sync-client.js';
export { checkIdentity, type ClientTlsOptions } from './tls.js';
export { SYNCER_TYPES, type SyncerType, type ViewName } from '../src/model/views.js';
export type { SyncStatus, ResumeToken } from '../src/protocol/messages.js';

// calico-fanout/client: the library agents embed.
export { SyncClient, type SyncClientOptions, type ClientLogger, type ClientStats, type Update, type CachedValue } from './sync-client.js';
export { SYNCER_TYPES, type SyncerType } from '../src/model/views.js';
export type { SyncStatus, ResumeToken } from '../src/protocol/messages.js';

export type { JsonValue, KeyValue, Store, StoreEvent, StoreTxn } from './store.js';
export { openLmdbStore } from './lmdb-store.js';

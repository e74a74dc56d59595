export type { JsonValue, KeyValue, Store, StoreEvent, StoreTxn, TxnOptions } from './store.js';
export { openLmdbStore } from './lmdb-store.js';
export { openEtcdStore } from './etcd-store.js';
export { openStore, type StoreSettings } from './open.js';
export {
  RecordCollection,
  SingleRecord,
  type RecordKind,
  type StoreReader,
  StoredRecordError,
  type TypedKeyValue,
  decodeRecord,
} from './records.js';

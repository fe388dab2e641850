/**
 * storage/ — each role's LMDB database (keys from one grammar, values in msgpack), the
 * transactional event outbox, and the content-addressed blob store.
 *
 * ```ts
 * const store = RoleStore.open({ path: `${dataDir}/source/db`, log });
 * const blobs = new BlobStore({ dir: `${dataDir}/source/blobs`, store, log });
 * ```
 */
export { keys, prefixRange } from "./keys.ts";
export type { Key, KeyPart } from "./keys.ts";
export { RoleStore, Outbox } from "./db.ts";
export type { OutboxOptions, StoreOptions } from "./db.ts";
export { BlobStore } from "./blobstore.ts";
export type { BlobRecord, BlobStoreOptions } from "./blobstore.ts";

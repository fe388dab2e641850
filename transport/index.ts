/**
 * transport/ — how kiln's roles talk: the subject grammar, the msgpack codec, request/reply with
 * one error envelope and one retry policy, events on JetStream, chunked blob transfer, live logs,
 * signed requests, and the bridge that puts a nact actor behind a role's subjects.
 *
 * ```ts
 * const nc = await connectNats({ servers: "nats://127.0.0.1:4222", name: "cli", log });
 * const source = new RoleClient<SourceApi>(new RpcClient(nc), (t) => subjects.rpc(Role.Source, t));
 * const meta = await source.call("meta.get", { project: "demo" });
 * ```
 */
export { SUBJECT_PREFIX, EVENT_STREAM, Role, subjects, encodeToken, decodeToken, parseSubject } from "./subjects.ts";
export type { ParsedSubject } from "./subjects.ts";
export { encode, decode } from "./codec.ts";
export { backoff, delay, DEFAULT_BACKOFF_MS } from "./backoff.ts";
export type { Backoff } from "./backoff.ts";
export {
  ErrorCode,
  KilnError,
  InternalError,
  InvalidInputError,
  NotFoundError,
  ConflictError,
  ForbiddenError,
  UnauthenticatedError,
  TooLargeError,
  IntegrityError,
  TimeoutError,
  NoRespondersError,
  UnavailableError,
  errors,
  registerErrorClass,
  errorToWire,
  errorFromWire,
  okEnvelope,
  errorEnvelope,
  unwrapEnvelope,
} from "./errors.ts";
export type { WireError, Envelope, KilnErrorOptions } from "./errors.ts";
export { serve, RpcClient, RoleClient, mapNatsError, DEFAULT_REQUEST_TIMEOUT_MS } from "./rpc.ts";
export type {
  Api,
  CallOptions,
  RequestHandler,
  RequestMeta,
  RequestSigner,
  RequestWire,
  RpcClientOptions,
  ServeOptions,
} from "./rpc.ts";
export { Identity, verifySignedAuth, isUserPublicKey, argsDigest, DEFAULT_MAX_SKEW_MS } from "./auth.ts";
export type { SignedAuth, VerifyOptions } from "./auth.ts";
export { ensureEventStream, publishEvent, consumeEvents, makeEvent } from "./events.ts";
export type { EventBase, EventDraft, EventConsumer, ConsumeOptions, EventStreamOptions } from "./events.ts";
export {
  CHUNK_BYTES,
  DEFAULT_WINDOW,
  BLOB_VERBS,
  blobHandler,
  uploadStream,
  uploadFile,
  downloadBlob,
  readBlobBytes,
} from "./blobs.ts";
export type { BlobApi, BlobInfo, BlobExpectation, BlobReader, BlobWriter, TransferOptions } from "./blobs.ts";
export { publishLogChunk, subscribeLog } from "./logs.ts";
export type { LogChunk } from "./logs.ts";
export { connectNats, splitCredentials, inboxPrefixOf } from "./connection.ts";
export type { ConnectOptions } from "./connection.ts";
export { bridgeActor, reply } from "./actor-bridge.ts";
export type { BridgedRequest, BridgeOptions } from "./actor-bridge.ts";
export { NatsServerProcess, toConf, natsServerBinary } from "./nats-server.ts";
export type { ConfObject, ConfValue, ServerPorts, StartOptions } from "./nats-server.ts";

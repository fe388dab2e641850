/**
 * Chunked, content-addressed blob transfer over request/reply.
 *
 * Files move in chunks of {@link CHUNK_BYTES} (well under NATS's 1 MB payload limit). Flow
 * control is by credit: a sender or reader keeps at most `window` chunk requests outstanding and
 * issues the next only when one is answered, so memory on both sides stays near
 * `window × CHUNK_BYTES` whatever the file size. Downloads are verified against the sha256 they
 * were asked for; uploads are hashed by the receiver, which refuses content that does not match
 * what the sender announced.
 *
 * Verbs (served by every role that stores blobs, under its own subject space):
 * `blob.stat`, `blob.read`, `upload.begin`, `upload.chunk`, `upload.commit`, `upload.abort`, and
 * `upload.put` (a blob of one chunk in one request).
 */
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { open as openFile, rename, rm } from "node:fs/promises";
import type { Readable } from "node:stream";
import { IntegrityError, InvalidInputError, NotFoundError } from "./errors.ts";
import type { RoleClient, RequestHandler } from "./rpc.ts";

/** @default 256 KiB */
export const CHUNK_BYTES = 256 * 1024;
/** Outstanding chunk requests per transfer. @default 8 */
export const DEFAULT_WINDOW = 8;
/** Largest `blob.read` answered: the reply, with its envelope, must fit NATS's 1 MiB max_payload. */
const MAX_READ_BYTES = 3 * CHUNK_BYTES;

export interface BlobInfo {
  sha256: string;
  md5: string;
  size: number;
}

/** What an uploader promises; the receiver checks each given field. */
export interface BlobExpectation {
  size?: number;
  sha256?: string;
  md5?: string;
}

export interface BlobReader {
  stat(sha256: string): Promise<BlobInfo | undefined>;
  read(sha256: string, offset: number, length: number): Promise<Uint8Array>;
}

export interface BlobWriter {
  begin(expect?: BlobExpectation): Promise<string>;
  write(uploadId: string, offset: number, data: Uint8Array): Promise<void>;
  commit(uploadId: string): Promise<BlobInfo>;
  abort(uploadId: string): Promise<void>;
  /** A whole small blob at once (`upload.put`); without it, begin, write and commit serve. */
  put?(data: Uint8Array, expect: BlobExpectation): Promise<BlobInfo>;
}

/** The blob verbs as an Api map, to be merged into a role's Api. */
export type BlobApi = {
  "blob.stat": { req: { sha256: string }; res: BlobInfo | null };
  "blob.read": { req: { sha256: string; offset: number; length: number }; res: Uint8Array };
  "upload.begin": { req: BlobExpectation; res: { uploadId: string } };
  "upload.chunk": { req: { uploadId: string; offset: number; data: Uint8Array }; res: null };
  "upload.commit": { req: { uploadId: string }; res: BlobInfo };
  "upload.abort": { req: { uploadId: string }; res: null };
  /** A whole blob of at most {@link CHUNK_BYTES} in one request: begin, chunk and commit at once. */
  "upload.put": { req: BlobExpectation & { data: Uint8Array }; res: BlobInfo };
};

export const BLOB_VERBS: ReadonlySet<string> = new Set([
  "blob.stat",
  "blob.read",
  "upload.begin",
  "upload.chunk",
  "upload.commit",
  "upload.abort",
  "upload.put",
]);

function field<T>(args: unknown, name: string, check: (v: unknown) => v is T, what: string): T {
  const v = (args as Record<string, unknown> | null)?.[name];
  if (!check(v)) throw new InvalidInputError(`'${name}' must be ${what}`);
  return v;
}
const isStr = (v: unknown): v is string => typeof v === "string";
const isInt = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;
const isBytes = (v: unknown): v is Uint8Array => v instanceof Uint8Array;

function expectationOf(args: unknown): BlobExpectation {
  const a = (args ?? {}) as BlobExpectation;
  const expect: BlobExpectation = {};
  if (a.size !== undefined) expect.size = field(a, "size", isInt, "a size");
  if (a.sha256 !== undefined) expect.sha256 = field(a, "sha256", isStr, "a string");
  if (a.md5 !== undefined) expect.md5 = field(a, "md5", isStr, "a string");
  return expect;
}

/** Request handler for the blob verbs, backed by a store that reads (and maybe writes). */
export function blobHandler(reader: BlobReader, writer?: BlobWriter): RequestHandler {
  return async (args, meta) => {
    switch (meta.type) {
      case "blob.stat":
        return (await reader.stat(field(args, "sha256", isStr, "a string"))) ?? null;
      case "blob.read": {
        const length = Math.min(field(args, "length", isInt, "a count"), MAX_READ_BYTES);
        return reader.read(field(args, "sha256", isStr, "a string"), field(args, "offset", isInt, "an offset"), length);
      }
    }
    if (!writer) throw new NotFoundError(`this role does not accept uploads`);
    switch (meta.type) {
      case "upload.begin":
        return { uploadId: await writer.begin(expectationOf(args)) };
      case "upload.put": {
        const data = field(args, "data", isBytes, "bytes");
        if (data.length > CHUNK_BYTES) {
          throw new InvalidInputError(`upload.put takes at most ${CHUNK_BYTES} bytes; larger blobs go in chunks`);
        }
        if (writer.put) return writer.put(data, expectationOf(args));
        const uploadId = await writer.begin(expectationOf(args));
        try {
          await writer.write(uploadId, 0, data);
        } catch (err) {
          await writer.abort(uploadId);
          throw err;
        }
        return writer.commit(uploadId);
      }
      case "upload.chunk":
        await writer.write(
          field(args, "uploadId", isStr, "a string"),
          field(args, "offset", isInt, "an offset"),
          field(args, "data", isBytes, "bytes")
        );
        return null;
      case "upload.commit":
        return writer.commit(field(args, "uploadId", isStr, "a string"));
      case "upload.abort":
        await writer.abort(field(args, "uploadId", isStr, "a string"));
        return null;
      default:
        throw new NotFoundError(`unknown blob verb ${meta.type}`);
    }
  };
}

export interface TransferOptions {
  window?: number;
  /** Called after each chunk with bytes done so far. */
  onProgress?: (done: number, total: number) => void;
  signal?: AbortSignal;
}

/** Uploads a stream; returns what the receiver stored. */
export async function uploadStream(
  client: RoleClient<BlobApi>,
  input: Readable,
  expect: BlobExpectation = {},
  opts: TransferOptions = {}
): Promise<BlobInfo> {
  const window = opts.window ?? DEFAULT_WINDOW;
  const { uploadId } = await client.call("upload.begin", expect);
  const inflight = new Set<Promise<null>>();
  let failure: unknown;
  let offset = 0;
  try {
    for await (const raw of input) {
      const buf = typeof raw === "string" ? Buffer.from(raw) : (raw as Buffer);
      for (let i = 0; i < buf.length; i += CHUNK_BYTES) {
        if (opts.signal?.aborted) throw opts.signal.reason;
        const data = buf.subarray(i, Math.min(buf.length, i + CHUNK_BYTES));
        // The upload id is the capability; only upload.begin is signed (hashing each chunk for
        // a signature nobody checks would cost more than sending it).
        const p = client.call("upload.chunk", { uploadId, offset, data }, { timeoutMs: 60_000, sign: false });
        offset += data.length;
        const tracked = p.finally(() => inflight.delete(tracked));
        tracked.catch((err: unknown) => {
          failure ??= err;
        });
        inflight.add(tracked);
        if (inflight.size >= window) await Promise.race(inflight).catch(() => undefined);
        if (failure) throw failure;
        opts.onProgress?.(offset, expect.size ?? offset);
      }
    }
    await Promise.allSettled([...inflight]);
    if (failure) throw failure;
    return await client.call("upload.commit", { uploadId }, { timeoutMs: 120_000, sign: false });
  } catch (err) {
    await client.call("upload.abort", { uploadId }, { sign: false }).catch(() => undefined);
    throw err;
  }
}

async function readAtMost(file: string, max: number): Promise<Uint8Array> {
  const fh = await openFile(file, "r");
  try {
    const buf = Buffer.alloc(max);
    let n = 0;
    for (;;) {
      const { bytesRead } = await fh.read(buf, n, max - n, n);
      if (bytesRead === 0 || (n += bytesRead) === max) break;
    }
    return buf.subarray(0, n);
  } finally {
    await fh.close();
  }
}

/**
 * Uploads a file from disk. A file whose expected size fits in one chunk goes in one request
 * (`upload.put`): a build's log, meta and small packages cost one round trip each, not three.
 */
export async function uploadFile(
  client: RoleClient<BlobApi>,
  file: string,
  expect: BlobExpectation = {},
  opts: TransferOptions = {}
): Promise<BlobInfo> {
  if (expect.size !== undefined && expect.size <= CHUNK_BYTES) {
    if (opts.signal?.aborted) throw opts.signal.reason;
    // At most one byte more than a chunk is read; a file that changed since is refused, here when
    // it grew and by the receiver when it shrank.
    const data = await readAtMost(file, CHUNK_BYTES + 1);
    if (data.length > expect.size) {
      throw new IntegrityError(`${file} changed: it has more than the announced ${expect.size} bytes`);
    }
    const info = await client.call("upload.put", { ...expect, data }, { timeoutMs: 60_000 });
    opts.onProgress?.(info.size, info.size);
    return info;
  }
  return uploadStream(client, createReadStream(file, { highWaterMark: CHUNK_BYTES }), expect, opts);
}

/**
 * Downloads a blob to `dest` (written to `dest.part`, renamed when complete and verified).
 * Chunks are requested `window` ahead and written in order, so the sha256 is checked on the fly.
 */
export async function downloadBlob(
  client: RoleClient<BlobApi>,
  sha256: string,
  dest: string,
  opts: TransferOptions & { size?: number } = {}
): Promise<BlobInfo> {
  // With the size known (a job lists it) no `blob.stat` is needed: a blob of another size fails
  // the chunk length or the hash below.
  if (opts.size !== undefined && (!Number.isSafeInteger(opts.size) || opts.size < 0)) {
    throw new InvalidInputError(`bad blob size ${opts.size}`);
  }
  const info =
    opts.size !== undefined
      ? { sha256, size: opts.size }
      : await client.call("blob.stat", { sha256 }, { idempotent: true });
  if (!info) throw new NotFoundError(`no blob ${sha256}`);
  const window = opts.window ?? DEFAULT_WINDOW;
  const part = `${dest}.part`;
  const fh = await openFile(part, "w");
  const sha = createHash("sha256");
  const md5 = createHash("md5");
  try {
    const chunks = Math.ceil(info.size / CHUNK_BYTES);
    const pending: Promise<Uint8Array>[] = [];
    const request = (i: number): Promise<Uint8Array> => {
      const p = client.call(
        "blob.read",
        { sha256, offset: i * CHUNK_BYTES, length: CHUNK_BYTES },
        { idempotent: true }
      );
      // Requests ahead of the one awaited may fail first, or after the download gave up: either
      // way their rejection must not go unhandled (that ends a Node process).
      p.catch(() => undefined);
      return p;
    };
    for (let i = 0; i < Math.min(window, chunks); i++) pending.push(request(i));
    let written = 0;
    for (let i = 0; i < chunks; i++) {
      if (opts.signal?.aborted) throw opts.signal.reason;
      const data = await pending[i]!;
      delete pending[i];
      if (i + window < chunks) pending[i + window] = request(i + window);
      const expected = Math.min(CHUNK_BYTES, info.size - i * CHUNK_BYTES);
      if (data.length !== expected) throw new IntegrityError(`blob ${sha256} chunk ${i} has ${data.length} bytes`);
      await fh.write(data, 0, data.length, written);
      sha.update(data);
      md5.update(data);
      written += data.length;
      opts.onProgress?.(written, info.size);
    }
    await fh.close();
    const got = sha.digest("hex");
    if (got !== sha256) throw new IntegrityError(`downloaded blob hashes to ${got}, expected ${sha256}`);
    await rename(part, dest);
    return { sha256, md5: md5.digest("hex"), size: info.size };
  } catch (err) {
    await fh.close().catch(() => undefined);
    await rm(part, { force: true });
    throw err;
  }
}

/** Reads a whole (small) blob into memory; for logs and metadata, never for packages. */
export async function readBlobBytes(client: RoleClient<BlobApi>, sha256: string, maxBytes: number): Promise<Buffer> {
  const info = await client.call("blob.stat", { sha256 }, { idempotent: true });
  if (!info) throw new NotFoundError(`no blob ${sha256}`);
  if (info.size > maxBytes) throw new InvalidInputError(`blob ${sha256} is larger than ${maxBytes} bytes`);
  const parts: Uint8Array[] = [];
  for (let off = 0; off < info.size; off += CHUNK_BYTES) {
    parts.push(await client.call("blob.read", { sha256, offset: off, length: CHUNK_BYTES }, { idempotent: true }));
  }
  return Buffer.concat(parts);
}

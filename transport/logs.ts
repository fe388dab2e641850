/**
 * Live build logs on `kiln.log.<jobId>`. The worker publishes each piece of output with its byte
 * offset in the log file, and a last message with `eof`. A reader that joins late fetches the
 * beginning by request (from the worker or the repo role) and uses the offsets to stitch the live
 * part on without gaps or repeats.
 */
import type { NatsConnection, Subscription } from "nats";
import { decode, encode } from "./codec.ts";
import { subjects } from "./subjects.ts";

export interface LogChunk {
  offset: number;
  data: Uint8Array;
  /** Set on the last message: the build ended and the log is complete at `offset`. */
  eof?: boolean;
}

export function publishLogChunk(nc: NatsConnection, jobId: string, chunk: LogChunk): void {
  nc.publish(subjects.log(jobId), encode(chunk));
}

/** Subscribes to a job's live log; `onChunk` is called in publish order. */
export function subscribeLog(nc: NatsConnection, jobId: string, onChunk: (c: LogChunk) => void): Subscription {
  return nc.subscribe(subjects.log(jobId), {
    callback: (err, msg) => {
      if (err) return;
      let chunk: LogChunk;
      try {
        chunk = decode<LogChunk>(msg.data);
      } catch {
        return; // Not MessagePack: someone else published on the subject; ignore it.
      }
      if (!isLogChunk(chunk)) return; // Likewise: not a log chunk.
      try {
        onChunk(chunk);
      } catch {
        // The reader's own failure must not take the NATS connection's read loop down.
      }
    },
  });
}

function isLogChunk(v: unknown): v is LogChunk {
  const c = v as Partial<LogChunk> | null;
  return (
    typeof c === "object" &&
    c !== null &&
    Number.isSafeInteger(c.offset) &&
    (c.offset as number) >= 0 &&
    c.data instanceof Uint8Array &&
    (c.eof === undefined || typeof c.eof === "boolean")
  );
}

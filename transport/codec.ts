/**
 * The one codec of kiln's NATS payloads: MessagePack through msgpackr, as plain maps (no record
 * extension) so that any MessagePack library can read kiln's events.
 */
import { Packr } from "msgpackr";
import { InvalidInputError } from "./errors.ts";

const packr = new Packr({ useRecords: false, moreTypes: false, mapsAsObjects: true, int64AsType: "number" });

/** Encodes a value for the wire. `undefined` fields are dropped, binary stays binary. */
export function encode(value: unknown): Uint8Array {
  return packr.pack(value);
}

/** Decodes a wire payload; malformed bytes become an InvalidInputError, never a crash. */
export function decode<T = unknown>(bytes: Uint8Array): T {
  if (bytes.length === 0) return undefined as T;
  try {
    return packr.unpack(bytes) as T;
  } catch (err) {
    throw new InvalidInputError("payload is not valid MessagePack", { cause: err });
  }
}

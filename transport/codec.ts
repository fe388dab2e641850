/**
 * The one codec of kiln's NATS payloads: MessagePack through msgpackr, as plain maps (no record
 * extension) so that any MessagePack library can read kiln's events.
 */
import { C1, Packr, type Options } from "msgpackr";
import { InvalidInputError } from "./errors.ts";

// `skipValues` drops undefined fields and `encodeUndefinedAsNil` writes any other undefined as nil:
// msgpackr's default is an extension (fixext 1, type 0) that other libraries do not read as nil.
// (`skipValues` is missing from msgpackr's typings.)
const options: Options & { skipValues: unknown[] } = {
  useRecords: false,
  moreTypes: false,
  mapsAsObjects: true,
  int64AsType: "number",
  skipValues: [undefined],
  encodeUndefinedAsNil: true,
};
const packr = new Packr(options);

/** Encodes a value for the wire. `undefined` fields are dropped, binary stays binary. */
export function encode(value: unknown): Uint8Array {
  return packr.pack(value);
}

/** Decodes a wire payload; malformed bytes become an InvalidInputError, never a crash. */
export function decode<T = unknown>(bytes: Uint8Array): T {
  if (bytes.length === 0) return undefined as T;
  let value: unknown;
  try {
    value = packr.unpack(bytes);
  } catch (err) {
    throw new InvalidInputError("payload is not valid MessagePack", { cause: err });
  }
  // msgpackr returns a marker object for the never-used byte 0xc1 instead of failing.
  if (value === C1) throw new InvalidInputError("payload is not valid MessagePack (0xc1)");
  return value as T;
}

import assert from "node:assert/strict";
import { ErrorCode, InvalidInputError, decode, encode } from "../../../transport/index.ts";

describe("transport/codec", () => {
  it("should round trip nested objects, arrays and scalars", () => {
    const value = {
      s: "home:foo:bar — 日本 😀",
      n: 42,
      neg: -7,
      f: 1.5,
      big: 2 ** 53 - 1,
      t: true,
      nil: null,
      list: [1, "two", [3, { four: 4 }], []],
      deep: { a: { b: { c: { d: ["e"] } } } },
      empty: {},
    };
    assert.deepEqual(decode(encode(value)), value);
  });

  it("should keep binary as binary", () => {
    const bytes = new Uint8Array(70_000);
    for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 31) & 0xff;
    const got = decode<{ data: Uint8Array; nested: { b: Uint8Array } }>(
      encode({ data: bytes, nested: { b: new Uint8Array([0, 255]) } })
    );
    assert.ok(got.data instanceof Uint8Array);
    assert.equal(Buffer.compare(Buffer.from(got.data), Buffer.from(bytes)), 0);
    assert.deepEqual([...got.nested.b], [0, 255]);
    // A Buffer is a Uint8Array and travels the same way.
    assert.ok(decode(encode(Buffer.from("abc"))) instanceof Uint8Array);
  });

  it("should drop undefined fields and write other undefined values as nil", () => {
    const bytes = encode({ a: 1, b: undefined, c: [undefined, 2] });
    assert.deepEqual(decode(bytes), { a: 1, c: [null, 2] });
    assert.ok(!("b" in decode<object>(bytes)));
    // Plain MessagePack only: no extension types (0xc7-0xc9, 0xd4-0xd8) for undefined.
    assert.deepEqual([...encode({ a: undefined })], [0x80]);
    assert.deepEqual([...encode([undefined])], [0x91, 0xc0]);
    assert.deepEqual([...encode(undefined)], [0xc0]);
  });

  it("should decode an empty payload as undefined", () => {
    assert.equal(decode(new Uint8Array(0)), undefined);
  });

  it("should write maps as plain MessagePack maps that decode as objects", () => {
    assert.deepEqual(decode(encode({ k: "v" })), { k: "v" });
    // fixmap with one entry, then fixstr "k", fixstr "v": readable by any MessagePack library.
    assert.deepEqual([...encode({ k: "v" })], [0x81, 0xa1, 0x6b, 0xa1, 0x76]);
  });

  it("should turn malformed bytes into InvalidInputError", () => {
    const bad: number[][] = [
      [0xc1], // never used
      [0x92, 0x01], // array of 2 with 1 element
      [0x81], // map without its entry
      [0xa5, 0x61], // str of 5 with 1 byte
      [0xdd, 0xff, 0xff, 0xff, 0xff], // array of 2^32-1
      [0xc4, 0x10, 0x00], // bin 16 with 1 byte
      [0x01, 0x02], // trailing bytes
    ];
    for (const b of bad) {
      assert.throws(
        () => decode(new Uint8Array(b)),
        (err: unknown) => err instanceof InvalidInputError && err.code === ErrorCode.InvalidInput && !err.retryable,
        Buffer.from(b).toString("hex")
      );
    }
  });
});

import assert from "node:assert/strict";
import {
  ErrorCode,
  InternalError,
  KilnError,
  decode,
  encode,
  errorEnvelope,
  errorFromWire,
  errorToWire,
  errors,
  okEnvelope,
  registerErrorClass,
  unwrapEnvelope,
  type KilnErrorOptions,
  type WireError,
} from "../../../transport/index.ts";

const RETRYABLE = new Set<string>([ErrorCode.Timeout, ErrorCode.NoResponders, ErrorCode.Unavailable]);

type Ctor = new (message: string, options?: KilnErrorOptions) => KilnError;
const CLASSES = Object.entries(errors).filter(([name]) => name !== "KilnError") as [string, Ctor][];

/** Wire form through the real codec, as it crosses NATS. */
function overWire(w: WireError): WireError {
  return decode<WireError>(encode(w));
}

describe("transport/errors", () => {
  it("should cover every ErrorCode with a class", () => {
    const codes = new Set(CLASSES.map(([, C]) => new C("x").code));
    assert.deepEqual([...codes].sort(), Object.values(ErrorCode).sort());
  });

  for (const [name, C] of CLASSES) {
    it(`should keep class, code, retryable, message and data of ${name} across the wire`, () => {
      const err = new C(`${name} happened`, { data: { limit: 10, what: "x" } });
      assert.equal(err.name, name);
      assert.equal(err.retryable, RETRYABLE.has(err.code));
      const back = errorFromWire(overWire(errorToWire(err)));
      assert.ok(back instanceof C, `${back.constructor.name} is not ${name}`);
      assert.equal(back.code, err.code);
      assert.equal(back.retryable, err.retryable);
      assert.equal(back.message, `${name} happened`);
      assert.deepEqual(back.data, { limit: 10, what: "x" });
    });
  }

  it("should let the sender decide retryability of a registered code", () => {
    const back = errorFromWire({ code: ErrorCode.Conflict, message: "busy", retryable: true });
    assert.ok(back instanceof errors.ConflictError);
    assert.equal(back.retryable, true);
    const notRetryable = errorFromWire({ code: ErrorCode.Timeout, message: "t", retryable: false });
    assert.ok(notRetryable instanceof errors.TimeoutError);
    assert.equal(notRetryable.retryable, false);
  });

  it("should turn unknown codes into a KilnError that keeps the code", () => {
    const back = errorFromWire(
      overWire({ code: "ERR_SOMETHING_NEW", message: "new", retryable: true, data: { a: 1 } })
    );
    assert.equal(back.constructor, KilnError);
    assert.equal(back.code, "ERR_SOMETHING_NEW");
    assert.equal(back.retryable, true);
    assert.equal(back.message, "new");
    assert.deepEqual(back.data, { a: 1 });
  });

  it("should send non-kiln errors as ERR_INTERNAL with their message", () => {
    assert.deepEqual(errorToWire(new TypeError("boom")), {
      code: ErrorCode.Internal,
      message: "boom",
      retryable: false,
    });
    assert.deepEqual(errorToWire("a string"), { code: ErrorCode.Internal, message: "a string", retryable: false });
    assert.equal(errorToWire(new errors.NotFoundError("gone")).data, undefined);
  });

  it("should rebuild a registered folder error class", () => {
    class QuotaError extends KilnError {
      constructor(message: string, options?: KilnErrorOptions) {
        super("ERR_TEST_QUOTA", false, message, options);
      }
    }
    registerErrorClass("ERR_TEST_QUOTA", QuotaError);
    registerErrorClass("ERR_TEST_QUOTA", QuotaError); // same class again: fine
    const back = errorFromWire(overWire(errorToWire(new QuotaError("over quota", { data: { quota: 5 } }))));
    assert.ok(back instanceof QuotaError);
    assert.equal(back.name, "QuotaError");
    assert.equal(back.code, "ERR_TEST_QUOTA");
    assert.deepEqual(back.data, { quota: 5 });
    class Other extends KilnError {
      constructor(message: string) {
        super("ERR_TEST_QUOTA", false, message);
      }
    }
    assert.throws(() => registerErrorClass("ERR_TEST_QUOTA", Other), /registered twice/);
    assert.throws(() => registerErrorClass(ErrorCode.NotFound, Other), /registered twice/);
  });

  describe("envelope", () => {
    it("should unwrap an ok envelope to its value", () => {
      assert.deepEqual(unwrapEnvelope(decode(encode(okEnvelope({ a: [1] })))), { a: [1] });
      assert.equal(unwrapEnvelope(decode(encode(okEnvelope(null)))), null);
    });

    it("should throw the typed error of an error envelope", () => {
      const env = decode(encode(errorEnvelope(new errors.IntegrityError("bad md5", { data: { md5: "x" } }))));
      assert.throws(
        () => unwrapEnvelope(env),
        (err: unknown) =>
          err instanceof errors.IntegrityError &&
          err.code === ErrorCode.Integrity &&
          err.message === "bad md5" &&
          err.retryable === false &&
          (err.data as { md5: string }).md5 === "x"
      );
    });

    it("should refuse malformed envelopes with an InternalError", () => {
      const malformed: unknown[] = [
        undefined,
        null,
        42,
        "ok",
        [],
        {},
        { value: 1 },
        { ok: false },
        { ok: false, error: null },
        { ok: false, error: "text" },
        { ok: false, error: { message: "no code" } },
        { ok: false, error: { code: 7, message: "numeric code" } },
        { ok: false, error: { code: "ERR_X" } },
      ];
      for (const m of malformed) {
        assert.throws(
          () => unwrapEnvelope(m),
          (err: unknown) => err instanceof InternalError && /malformed/.test(err.message),
          JSON.stringify(m)
        );
      }
    });

    it("should treat a missing retryable flag as not retryable", () => {
      assert.throws(
        () => unwrapEnvelope({ ok: false, error: { code: ErrorCode.Timeout, message: "t" } }),
        (err: unknown) => err instanceof errors.TimeoutError && err.retryable === false
      );
    });
  });
});

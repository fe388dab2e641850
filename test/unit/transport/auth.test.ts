import assert from "node:assert/strict";
import { fromPublic, fromSeed } from "@nats-io/nkeys";
import {
  DEFAULT_MAX_SKEW_MS,
  ErrorCode,
  Identity,
  UnauthenticatedError,
  argsDigest,
  decode,
  encode,
  isUserPublicKey,
  subjects,
  Role,
  verifySignedAuth,
  type RequestWire,
  type SignedAuth,
} from "../../../transport/index.ts";

const SUBJECT = subjects.rpc(Role.Source, "package.put");
const ARGS = {
  project: "home:alice:branches:openSUSE.org:Factory",
  package: "hello.world",
  files: [{ name: "hello.spec", size: 1234, md5: "0123456789abcdef0123456789abcdef" }],
  data: new Uint8Array([0, 1, 2, 254, 255]),
  ratio: 0.1,
  big: 2 ** 40,
  negative: -5,
  flag: true,
  nothing: null,
  text: "日本語 😀",
};

/** Asserts an UnauthenticatedError whose message matches `why`. */
function refused(fn: () => unknown, why: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof UnauthenticatedError, `not an UnauthenticatedError: ${String(err)}`);
    assert.equal(err.code, ErrorCode.Unauthenticated);
    assert.match(err.message, why);
    return true;
  });
}

describe("transport/auth", () => {
  const alice = Identity.create();
  const mallory = Identity.create();

  it("should verify what it signed", () => {
    const auth = alice.sign(SUBJECT, ARGS);
    assert.equal(auth.pubkey, alice.publicKey);
    assert.ok(isUserPublicKey(auth.pubkey));
    assert.match(auth.nonce, /^[0-9a-f]{32}$/);
    assert.equal(auth.digest, argsDigest(ARGS));
    assert.deepEqual(verifySignedAuth(SUBJECT, ARGS, auth), auth);
  });

  it("should verify after the request crossed the wire (digest stable across msgpack re-encoding)", () => {
    const auth = alice.sign(SUBJECT, ARGS);
    const wire = decode<RequestWire>(encode({ args: ARGS, auth } satisfies RequestWire));
    assert.equal(argsDigest(wire.args), auth.digest);
    assert.doesNotThrow(() => verifySignedAuth(SUBJECT, wire.args, wire.auth));
    // And again, as a role that forwards the request would.
    const again = decode<RequestWire>(encode(wire));
    assert.doesNotThrow(() => verifySignedAuth(SUBJECT, again.args, again.auth));
  });

  it("should sign undefined fields the way they travel (dropped)", () => {
    const args = { project: "p", package: undefined };
    const auth = alice.sign(SUBJECT, args);
    const wire = decode<RequestWire>(encode({ args, auth }));
    assert.deepEqual(wire.args, { project: "p" });
    assert.doesNotThrow(() => verifySignedAuth(SUBJECT, wire.args, wire.auth));
  });

  it("should refuse a signature made for another subject", () => {
    const auth = alice.sign(subjects.rpc(Role.Source, "package.get"), ARGS);
    refused(() => verifySignedAuth(SUBJECT, ARGS, auth), /bad request signature/);
  });

  it("should refuse changed arguments", () => {
    const auth = alice.sign(SUBJECT, ARGS);
    refused(() => verifySignedAuth(SUBJECT, { ...ARGS, package: "other" }, auth), /digest does not match/);
    // Changing the digest along with the arguments breaks the signature instead.
    const forged = { ...auth, digest: argsDigest({ ...ARGS, package: "other" }) };
    refused(() => verifySignedAuth(SUBJECT, { ...ARGS, package: "other" }, forged), /bad request signature/);
  });

  it("should refuse a stale or future time", () => {
    const now = Date.now();
    const old = alice.sign(SUBJECT, ARGS, now - DEFAULT_MAX_SKEW_MS - 1000);
    refused(() => verifySignedAuth(SUBJECT, ARGS, old, { now }), /stale/);
    const future = alice.sign(SUBJECT, ARGS, now + DEFAULT_MAX_SKEW_MS + 1000);
    refused(() => verifySignedAuth(SUBJECT, ARGS, future, { now }), /stale/);
    const recent = alice.sign(SUBJECT, ARGS, now - 1000);
    refused(() => verifySignedAuth(SUBJECT, ARGS, recent, { now, maxSkewMs: 500 }), /stale/);
    assert.doesNotThrow(() => verifySignedAuth(SUBJECT, ARGS, recent, { now }));
  });

  it("should refuse a time that is not a finite number, even when correctly signed", () => {
    for (const time of [NaN, Infinity, -Infinity]) {
      const auth = alice.sign(SUBJECT, ARGS, time);
      refused(() => verifySignedAuth(SUBJECT, ARGS, decode(encode(auth))), /malformed/);
    }
  });

  it("should refuse a bad signature", () => {
    const auth = alice.sign(SUBJECT, ARGS);
    const sig = Buffer.from(auth.sig, "base64");
    sig[0] = sig[0]! ^ 1;
    refused(() => verifySignedAuth(SUBJECT, ARGS, { ...auth, sig: sig.toString("base64") }), /bad request signature/);
    refused(() => verifySignedAuth(SUBJECT, ARGS, { ...auth, sig: "" }), /bad request signature/);
    // Someone else's key with alice's signature, and alice's key with someone else's signature.
    refused(() => verifySignedAuth(SUBJECT, ARGS, { ...auth, pubkey: mallory.publicKey }), /bad request signature/);
    const m = mallory.sign(SUBJECT, ARGS);
    refused(() => verifySignedAuth(SUBJECT, ARGS, { ...m, pubkey: alice.publicKey }), /bad request signature/);
    refused(() => verifySignedAuth(SUBJECT, ARGS, { ...auth, pubkey: "Unot-a-key" }), /bad request signature/);
    // A changed nonce or time is covered by the signature.
    refused(() => verifySignedAuth(SUBJECT, ARGS, { ...auth, nonce: "0".repeat(32) }), /bad request signature/);
    refused(() => verifySignedAuth(SUBJECT, ARGS, { ...auth, time: auth.time + 1 }), /bad request signature/);
  });

  it("should refuse missing or malformed auth", () => {
    const auth = alice.sign(SUBJECT, ARGS);
    refused(() => verifySignedAuth(SUBJECT, ARGS, undefined), /not signed/);
    refused(() => verifySignedAuth(SUBJECT, ARGS, null), /not signed/);
    refused(() => verifySignedAuth(SUBJECT, ARGS, "sig"), /not signed/);
    for (const field of ["pubkey", "time", "nonce", "digest", "sig"] as const) {
      const missing: Partial<SignedAuth> = { ...auth };
      delete missing[field];
      refused(() => verifySignedAuth(SUBJECT, ARGS, missing), /malformed/);
    }
    refused(() => verifySignedAuth(SUBJECT, ARGS, { ...auth, time: String(auth.time) }), /malformed/);
    refused(() => verifySignedAuth(SUBJECT, ARGS, { ...auth, nonce: "xyz" }), /nonce is malformed/);
    refused(() => verifySignedAuth(SUBJECT, ARGS, { ...auth, nonce: auth.nonce.toUpperCase() }), /nonce/);
  });

  it("should round trip an identity through its seed", () => {
    const again = Identity.fromSeed(`${alice.seed()}\n`);
    assert.equal(again.publicKey, alice.publicKey);
    assert.doesNotThrow(() => verifySignedAuth(SUBJECT, ARGS, again.sign(SUBJECT, ARGS)));
    assert.throws(() => Identity.fromSeed("not a seed"), UnauthenticatedError);
    assert.ok(!isUserPublicKey(alice.seed()));
    assert.ok(!isUserPublicKey("Uxyz"));
    assert.ok(!isUserPublicKey(""));
  });

  it("should sign exactly as nkeys does (node:crypto ed25519 behind nkeys' key format)", () => {
    const id = Identity.create();
    const auth = id.sign(SUBJECT, ARGS);
    const text = Buffer.from(`kiln-req-v1\n${SUBJECT}\n${auth.time}\n${auth.nonce}\n${auth.digest}`, "utf8");
    const kp = fromSeed(Buffer.from(id.seed(), "utf8"));
    assert.equal(Buffer.from(kp.sign(text)).toString("base64"), auth.sig);
    assert.ok(fromPublic(id.publicKey).verify(text, Buffer.from(auth.sig, "base64")));
    const other = fromSeed(Buffer.from(Identity.create().seed(), "utf8"));
    const forged = { ...auth, sig: Buffer.from(other.sign(text)).toString("base64") };
    refused(() => verifySignedAuth(SUBJECT, ARGS, forged), /bad request signature/);
  });
});

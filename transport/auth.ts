/**
 * Signed requests. A user's identity is an nkey (ed25519) keypair; every state-changing request
 * carries {@link SignedAuth}: the public key, the time, a random nonce, the sha256 of the
 * msgpack-encoded arguments, and an ed25519 signature over
 * `kiln-req-v1\n<subject>\n<time>\n<nonce>\n<digest>`. Binding the subject stops a signature from
 * being replayed against another verb; time and nonce let the verifier refuse stale and replayed
 * requests. Which keys are allowed to do what is the source role's business, not this module's.
 */
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  randomBytes,
  sign as edSign,
  verify as edVerify,
  type KeyObject,
} from "node:crypto";
import { createUser, fromPublic, fromSeed, type KeyPair } from "@nats-io/nkeys";
import { encode } from "./codec.ts";
import { UnauthenticatedError } from "./errors.ts";
import type { RequestSigner } from "./rpc.ts";

export interface SignedAuth {
  /** nkey user public key (`U…`). */
  pubkey: string;
  /** Milliseconds since the epoch, by the signer's clock. */
  time: number;
  /** 16 random bytes, hex. */
  nonce: string;
  /** sha256 hex of the msgpack encoding of the request arguments. */
  digest: string;
  /** base64 ed25519 signature. */
  sig: string;
}

/** How far a request's time may differ from the verifier's clock. @default 5 minutes */
export const DEFAULT_MAX_SKEW_MS = 5 * 60_000;

export function argsDigest(args: unknown): string {
  return createHash("sha256").update(encode(args)).digest("hex");
}

function signedText(subject: string, time: number, nonce: string, digest: string): Uint8Array {
  return Buffer.from(`kiln-req-v1\n${subject}\n${time}\n${nonce}\n${digest}`, "utf8");
}

const BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/** RFC 4648 base32 without padding, as nkeys encode keys. */
function base32Decode(text: string): Buffer {
  const out: number[] = [];
  let bits = 0;
  let value = 0;
  for (const ch of text) {
    const v = BASE32.indexOf(ch);
    if (v < 0) throw new UnauthenticatedError("malformed nkey");
    value = (value << 5) | v;
    bits += 5;
    if (bits >= 8) {
      out.push((value >>> (bits - 8)) & 0xff);
      bits -= 8;
    }
  }
  return Buffer.from(out);
}

// DER wrappers of raw ed25519 keys (RFC 8410), so that node:crypto can use nkeys' key bytes.
const PKCS8_ED25519 = Buffer.from("302e020100300506032b657004220420", "hex");
const SPKI_ED25519 = Buffer.from("302a300506032b6570032100", "hex");

/**
 * The ed25519 keys behind nkeys, for node:crypto: nkeys' own (pure JavaScript) signing takes
 * tens of milliseconds, and every state-changing request is signed and verified. The signatures
 * are the same bytes (ed25519 is deterministic).
 */
function privateKeyOfSeed(seed: string): KeyObject {
  // An nkey seed is 2 prefix bytes, the 32-byte ed25519 seed and a 2-byte checksum.
  const raw = base32Decode(seed).subarray(2, 34);
  return createPrivateKey({ key: Buffer.concat([PKCS8_ED25519, raw]), format: "der", type: "pkcs8" });
}

const publicKeys = new Map<string, KeyObject>();

function publicKeyOf(pubkey: string): KeyObject {
  let k = publicKeys.get(pubkey);
  if (!k) {
    fromPublic(pubkey); // checks prefix and checksum
    // A public nkey is 1 prefix byte, the 32-byte ed25519 key and a 2-byte checksum.
    const raw = base32Decode(pubkey).subarray(1, 33);
    k = createPublicKey({ key: Buffer.concat([SPKI_ED25519, raw]), format: "der", type: "spki" });
    if (publicKeys.size >= 10_000) publicKeys.clear();
    publicKeys.set(pubkey, k);
  }
  return k;
}

/** An identity that can sign: the seed stays in memory only. */
export class Identity implements RequestSigner {
  readonly #kp: KeyPair;
  readonly #key: KeyObject;
  readonly publicKey: string;

  private constructor(kp: KeyPair) {
    this.#kp = kp;
    this.publicKey = kp.getPublicKey();
    this.#key = privateKeyOfSeed(Buffer.from(kp.getSeed()).toString("utf8"));
  }

  static create(): Identity {
    return new Identity(createUser());
  }

  /** From the seed text (`SU…`) as kept in an identity file. */
  static fromSeed(seed: string): Identity {
    let kp: KeyPair;
    try {
      kp = fromSeed(Buffer.from(seed.trim(), "utf8"));
    } catch (err) {
      throw new UnauthenticatedError("identity file does not hold a valid nkey seed", { cause: err });
    }
    return new Identity(kp);
  }

  seed(): string {
    return Buffer.from(this.#kp.getSeed()).toString("utf8");
  }

  sign(subject: string, args: unknown, now: number = Date.now()): SignedAuth {
    const nonce = randomBytes(16).toString("hex");
    const digest = argsDigest(args);
    const sig = edSign(null, signedText(subject, now, nonce, digest), this.#key).toString("base64");
    return { pubkey: this.publicKey, time: now, nonce, digest, sig };
  }
}

/** True when `key` is a syntactically valid nkey user public key. */
export function isUserPublicKey(key: string): boolean {
  if (typeof key !== "string" || !key.startsWith("U")) return false;
  try {
    fromPublic(key);
    return true;
  } catch {
    return false;
  }
}

export interface VerifyOptions {
  now?: number;
  maxSkewMs?: number;
}

/**
 * Checks signature, digest and time of a signed request; nonce replay is the caller's check
 * (it needs memory). Throws UnauthenticatedError naming what is wrong.
 */
export function verifySignedAuth(subject: string, args: unknown, auth: unknown, opts: VerifyOptions = {}): SignedAuth {
  if (typeof auth !== "object" || auth === null) throw new UnauthenticatedError("request is not signed");
  const a = auth as Partial<SignedAuth>;
  if (
    typeof a.pubkey !== "string" ||
    // NaN would pass the staleness check below (every comparison with NaN is false).
    !Number.isFinite(a.time) ||
    typeof a.nonce !== "string" ||
    typeof a.digest !== "string" ||
    typeof a.sig !== "string"
  ) {
    throw new UnauthenticatedError("request signature is malformed");
  }
  if (!/^[0-9a-f]{32}$/.test(a.nonce)) throw new UnauthenticatedError("request nonce is malformed");
  const now = opts.now ?? Date.now();
  const skew = opts.maxSkewMs ?? DEFAULT_MAX_SKEW_MS;
  const time = a.time as number;
  if (Math.abs(now - time) > skew) {
    throw new UnauthenticatedError(`request time is stale (${Math.round((now - time) / 1000)} s off)`);
  }
  if (argsDigest(args) !== a.digest) throw new UnauthenticatedError("request digest does not match its arguments");
  let ok = false;
  try {
    ok = edVerify(
      null,
      signedText(subject, time, a.nonce, a.digest),
      publicKeyOf(a.pubkey),
      Buffer.from(a.sig, "base64")
    );
  } catch {
    ok = false;
  }
  if (!ok) throw new UnauthenticatedError("bad request signature");
  return a as SignedAuth;
}

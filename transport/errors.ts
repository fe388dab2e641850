/**
 * kiln's error vocabulary and the one envelope in which errors cross NATS.
 *
 * Every error kiln raises on purpose is a {@link KilnError}: a stable `code` that scripts and remote
 * callers can rely on, and `retryable`, which tells the one retry loop in {@link ./rpc.ts} whether
 * trying again can help. On the wire an error is `{code, message, retryable, data?}`; the
 * receiving side rebuilds the class registered for that code ({@link errorFromWire}), so callers
 * test `err.code`, never `instanceof` of something that crossed the wire.
 */

export const ErrorCode = {
  Internal: "ERR_INTERNAL",
  InvalidInput: "ERR_INVALID_INPUT",
  NotFound: "ERR_NOT_FOUND",
  Conflict: "ERR_CONFLICT",
  Forbidden: "ERR_FORBIDDEN",
  Unauthenticated: "ERR_UNAUTHENTICATED",
  TooLarge: "ERR_TOO_LARGE",
  Integrity: "ERR_INTEGRITY",
  Timeout: "ERR_TIMEOUT",
  NoResponders: "ERR_NO_RESPONDERS",
  Unavailable: "ERR_UNAVAILABLE",
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** The error half of the reply envelope. */
export interface WireError {
  code: string;
  message: string;
  retryable: boolean;
  data?: Record<string, unknown>;
}

export interface KilnErrorOptions extends ErrorOptions {
  /** Structured detail that travels with the error (names, limits, the offending value). */
  data?: Record<string, unknown>;
}

/** Base of every deliberate kiln error. */
export class KilnError extends Error {
  readonly code: string;
  readonly retryable: boolean;
  readonly data?: Record<string, unknown>;

  constructor(code: string, retryable: boolean, message: string, options?: KilnErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
    this.retryable = retryable;
    if (options?.data) this.data = options.data;
  }
}

/** Something kiln did not expect; a bug or an environment failure. */
export class InternalError extends KilnError {
  constructor(message: string, options?: KilnErrorOptions) {
    super(ErrorCode.Internal, false, message, options);
  }
}

/** The request or a file in it is malformed or breaks a rule; the message names the problem. */
export class InvalidInputError extends KilnError {
  constructor(message: string, options?: KilnErrorOptions) {
    super(ErrorCode.InvalidInput, false, message, options);
  }
}

/** The named project, package, revision, job, worker or file does not exist (or is hidden). */
export class NotFoundError extends KilnError {
  constructor(message: string, options?: KilnErrorOptions) {
    super(ErrorCode.NotFound, false, message, options);
  }
}

/** The request contradicts the current state (already exists, still in use, stale revision). */
export class ConflictError extends KilnError {
  constructor(message: string, options?: KilnErrorOptions) {
    super(ErrorCode.Conflict, false, message, options);
  }
}

/** The caller is known but their role does not allow this. */
export class ForbiddenError extends KilnError {
  constructor(message: string, options?: KilnErrorOptions) {
    super(ErrorCode.Forbidden, false, message, options);
  }
}

/** The request's signature is missing, wrong, stale or replayed, or the key is unknown. */
export class UnauthenticatedError extends KilnError {
  constructor(message: string, options?: KilnErrorOptions) {
    super(ErrorCode.Unauthenticated, false, message, options);
  }
}

/** A size limit was exceeded; `data.limit` says which. */
export class TooLargeError extends KilnError {
  constructor(message: string, options?: KilnErrorOptions) {
    super(ErrorCode.TooLarge, false, message, options);
  }
}

/** Content did not match its checksum. */
export class IntegrityError extends KilnError {
  constructor(message: string, options?: KilnErrorOptions) {
    super(ErrorCode.Integrity, false, message, options);
  }
}

/** No reply in time. Retryable: the responder may just be busy or restarting. */
export class TimeoutError extends KilnError {
  constructor(message: string, options?: KilnErrorOptions) {
    super(ErrorCode.Timeout, true, message, options);
  }
}

/** Nobody serves the subject right now. Retryable: a role may be starting. */
export class NoRespondersError extends KilnError {
  constructor(message: string, options?: KilnErrorOptions) {
    super(ErrorCode.NoResponders, true, message, options);
  }
}

/** The responder exists but cannot serve now (shutting down, not ready). */
export class UnavailableError extends KilnError {
  constructor(message: string, options?: KilnErrorOptions) {
    super(ErrorCode.Unavailable, true, message, options);
  }
}

type ErrorCtor = new (message: string, options?: KilnErrorOptions) => KilnError;

const registry = new Map<string, ErrorCtor>([
  [ErrorCode.Internal, InternalError],
  [ErrorCode.InvalidInput, InvalidInputError],
  [ErrorCode.NotFound, NotFoundError],
  [ErrorCode.Conflict, ConflictError],
  [ErrorCode.Forbidden, ForbiddenError],
  [ErrorCode.Unauthenticated, UnauthenticatedError],
  [ErrorCode.TooLarge, TooLargeError],
  [ErrorCode.Integrity, IntegrityError],
  [ErrorCode.Timeout, TimeoutError],
  [ErrorCode.NoResponders, NoRespondersError],
  [ErrorCode.Unavailable, UnavailableError],
]);

/**
 * Registers a folder's own error class under its code so that it is rebuilt on the receiving
 * side. The class must take `(message, options)` like the ones above.
 */
export function registerErrorClass(code: string, ctor: ErrorCtor): void {
  const existing = registry.get(code);
  if (existing && existing !== ctor) throw new Error(`error code ${code} registered twice`);
  registry.set(code, ctor);
}

/** Turns anything thrown into the wire form. Unknown errors become ERR_INTERNAL. */
export function errorToWire(err: unknown): WireError {
  if (err instanceof KilnError) {
    const wire: WireError = { code: err.code, message: err.message, retryable: err.retryable };
    if (err.data) wire.data = err.data;
    return wire;
  }
  const message = err instanceof Error ? err.message : String(err);
  return { code: ErrorCode.Internal, message, retryable: false };
}

/** Rebuilds a typed error from the wire form; unknown codes keep their code on a KilnError. */
export function errorFromWire(wire: WireError): KilnError {
  const ctor = registry.get(wire.code);
  const opts: KilnErrorOptions = wire.data ? { data: wire.data } : {};
  if (ctor) {
    const e = new ctor(wire.message, opts);
    // The sender decides retryability; a registered class keeps its default unless told otherwise.
    if (e.retryable !== wire.retryable) Object.defineProperty(e, "retryable", { value: wire.retryable });
    return e;
  }
  return new KilnError(wire.code, wire.retryable, wire.message, opts);
}

/** A reply: `{ok:true, value}` or `{ok:false, error}`. */
export type Envelope<T> = { ok: true; value: T } | { ok: false; error: WireError };

export function okEnvelope<T>(value: T): Envelope<T> {
  return { ok: true, value };
}

export function errorEnvelope(err: unknown): Envelope<never> {
  return { ok: false, error: errorToWire(err) };
}

/** Checks the shape of a decoded reply and returns the value or throws the typed error. */
export function unwrapEnvelope<T>(reply: unknown): T {
  if (typeof reply !== "object" || reply === null || !("ok" in reply)) {
    throw new InternalError("malformed reply envelope");
  }
  const env = reply as Envelope<T>;
  if (env.ok === true) return env.value;
  const e = env.error;
  if (!e || typeof e.code !== "string" || typeof e.message !== "string") {
    throw new InternalError("malformed error in reply envelope");
  }
  throw errorFromWire({ code: e.code, message: e.message, retryable: e.retryable === true, data: e.data });
}

/** Collects every error class above for `errors.X` style access. */
export const errors = {
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
} as const;

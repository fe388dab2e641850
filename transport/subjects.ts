/**
 * The NATS subject grammar of kiln. Every subject kiln publishes or subscribes to is built here.
 *
 * ```
 * kiln.rpc.<role>.<noun>.<verb>                   requests to a role (queue group = role)
 * kiln.rpc.sched.<arch>.<noun>.<verb>             requests to the scheduler of one arch
 * kiln.rpc.worker.<workerId>.<noun>.<verb>        requests to one worker
 * kiln.evt.<noun>.<verb>.<project>[.<package>]    events (JetStream stream KILN_EVENTS)
 * kiln.log.<jobId>                                live build log chunks
 * kiln.sys.ping                                   every role and worker answers (status)
 * ```
 *
 * `<noun>.<verb>` is the `type` tag of the request or event (`meta.get`, `source.committed`), so a
 * subject names its message type exactly. Roles are single tokens (`source`, `repo`, …); a later
 * partitioning of a role by project namespace adds a token after the role (`kiln.rpc.source.p1.…`),
 * which is why verbs are always exactly two tokens.
 *
 * Project, package, arch, worker and job names are user data and may contain `.` and `:`; each
 * becomes one subject token through {@link encodeToken}: bytes outside `[A-Za-z0-9_-]` are written
 * as `~HH` (upper-case hex of the UTF-8 byte). `~` is itself escaped, so the encoding is injective
 * and {@link decodeToken} inverts it.
 */

export const SUBJECT_PREFIX = "kiln";
export const EVENT_STREAM = "KILN_EVENTS";

const SAFE = /^[A-Za-z0-9_-]$/;

/** A UTF-16 surrogate not part of a pair: UTF-8 cannot encode it (it would become U+FFFD). */
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;

/** Encodes one name as a single subject token, injectively (see the module doc). */
export function encodeToken(name: string): string {
  if (name.length === 0) throw new RangeError("a subject token cannot be empty");
  // Lone surrogates would all encode as U+FFFD, so two names would share one token.
  if (LONE_SURROGATE.test(name)) throw new RangeError("a subject token cannot hold a lone UTF-16 surrogate");
  let out = "";
  for (const ch of name) {
    if (SAFE.test(ch)) {
      out += ch;
      continue;
    }
    for (const byte of Buffer.from(ch, "utf8")) out += "~" + byte.toString(16).toUpperCase().padStart(2, "0");
  }
  return out;
}

/** Inverse of {@link encodeToken}. Throws on a token that encodeToken cannot have produced. */
export function decodeToken(token: string): string {
  if (token.length === 0) throw new RangeError("a subject token cannot be empty");
  const bytes: number[] = [];
  for (let i = 0; i < token.length; i++) {
    const ch = token[i]!;
    if (ch === "~") {
      const hex = token.slice(i + 1, i + 3);
      if (!/^[0-9A-F]{2}$/.test(hex)) throw new RangeError(`bad escape in subject token: ${token}`);
      bytes.push(parseInt(hex, 16));
      i += 2;
    } else if (SAFE.test(ch)) {
      bytes.push(ch.charCodeAt(0));
    } else {
      throw new RangeError(`unexpected character in subject token: ${token}`);
    }
  }
  const name = Buffer.from(bytes).toString("utf8");
  // Only the canonical form is accepted (`~41` is not `A`, bytes must be valid UTF-8), so that one
  // name has exactly one subject.
  if (encodeToken(name) !== token) throw new RangeError(`non-canonical subject token: ${token}`);
  return name;
}

/** A message type tag is `noun.verb`, both lower-case words that may contain `-`. */
const TYPE_TAG = /^[a-z][a-z0-9-]*\.[a-z][a-z0-9-]*$/;

function checkType(type: string): string {
  if (!TYPE_TAG.test(type)) throw new RangeError(`not a noun.verb message type: ${type}`);
  return type;
}

/** Roles that serve requests through a queue group of their own name. */
export const Role = {
  Source: "source",
  Repo: "repo",
  Dispatcher: "dispatcher",
  Publisher: "publisher",
  Service: "service",
} as const;
export type Role = (typeof Role)[keyof typeof Role];

export const subjects = {
  /** `kiln.rpc.<role>.<noun>.<verb>` */
  rpc(role: Role, type: string): string {
    return `${SUBJECT_PREFIX}.rpc.${role}.${checkType(type)}`;
  },
  /** Wildcard a role subscribes to. */
  rpcAll(role: Role): string {
    return `${SUBJECT_PREFIX}.rpc.${role}.>`;
  },
  /** `kiln.rpc.sched.<arch>.<noun>.<verb>` */
  sched(arch: string, type: string): string {
    return `${SUBJECT_PREFIX}.rpc.sched.${encodeToken(arch)}.${checkType(type)}`;
  },
  schedAll(arch: string): string {
    return `${SUBJECT_PREFIX}.rpc.sched.${encodeToken(arch)}.>`;
  },
  /** `kiln.rpc.worker.<workerId>.<noun>.<verb>` */
  worker(workerId: string, type: string): string {
    return `${SUBJECT_PREFIX}.rpc.worker.${encodeToken(workerId)}.${checkType(type)}`;
  },
  workerAll(workerId: string): string {
    return `${SUBJECT_PREFIX}.rpc.worker.${encodeToken(workerId)}.>`;
  },
  /** `kiln.evt.<noun>.<verb>.<project>[.<package>]` */
  event(type: string, project: string, pkg?: string): string {
    const base = `${SUBJECT_PREFIX}.evt.${checkType(type)}.${encodeToken(project)}`;
    return pkg === undefined ? base : `${base}.${encodeToken(pkg)}`;
  },
  /** Filter for events, `*` standing for any value of a part left undefined. */
  eventFilter(filter: { type?: string; project?: string } = {}): string {
    const type = filter.type ? checkType(filter.type) : "*.*";
    if (filter.project === undefined) return `${SUBJECT_PREFIX}.evt.${type}.>`;
    return `${SUBJECT_PREFIX}.evt.${type}.${encodeToken(filter.project)}.>`;
  },
  /** All events, the subject space of the event stream. */
  eventsAll(): string {
    return `${SUBJECT_PREFIX}.evt.>`;
  },
  /** `kiln.log.<jobId>` */
  log(jobId: string): string {
    return `${SUBJECT_PREFIX}.log.${encodeToken(jobId)}`;
  },
  /** `kiln.sys.ping` */
  ping(): string {
    return `${SUBJECT_PREFIX}.sys.ping`;
  },
} as const;

/** What a subject says, for a subscriber of a wildcard. */
export type ParsedSubject =
  | { kind: "rpc"; role: Role; type: string }
  | { kind: "sched"; arch: string; type: string }
  | { kind: "worker"; workerId: string; type: string }
  | { kind: "event"; type: string; project: string; package?: string }
  | { kind: "log"; jobId: string }
  | { kind: "ping" };

const ROLES = new Set<string>(Object.values(Role));

/** Parses a kiln subject. Throws RangeError on anything the builders above cannot produce. */
export function parseSubject(subject: string): ParsedSubject {
  const t = subject.split(".");
  const bad = (): never => {
    throw new RangeError(`not a kiln subject: ${subject}`);
  };
  if (t[0] !== SUBJECT_PREFIX) return bad();
  const typeAt = (i: number): string => {
    const type = `${t[i]}.${t[i + 1]}`;
    return TYPE_TAG.test(type) ? type : bad();
  };
  switch (t[1]) {
    case "rpc":
      if (t[2] === "sched" && t.length === 6) return { kind: "sched", arch: decodeToken(t[3]!), type: typeAt(4) };
      if (t[2] === "worker" && t.length === 6) return { kind: "worker", workerId: decodeToken(t[3]!), type: typeAt(4) };
      if (t.length === 5 && ROLES.has(t[2]!)) return { kind: "rpc", role: t[2] as Role, type: typeAt(3) };
      return bad();
    case "evt":
      if (t.length === 5) return { kind: "event", type: typeAt(2), project: decodeToken(t[4]!) };
      if (t.length === 6)
        return { kind: "event", type: typeAt(2), project: decodeToken(t[4]!), package: decodeToken(t[5]!) };
      return bad();
    case "log":
      if (t.length === 3) return { kind: "log", jobId: decodeToken(t[2]!) };
      return bad();
    case "sys":
      if (t.length === 3 && t[2] === "ping") return { kind: "ping" };
      return bad();
    default:
      return bad();
  }
}

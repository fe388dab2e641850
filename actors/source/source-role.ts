/**
 * The source role: projects, packages, revisions, build configs, users and access control —
 * where every user change enters kiln.
 *
 * Actors: SourceServer (root) → Project(p) → Package(p, k). The root authenticates every request
 * (signature, time, nonce, registered key; unsigned requests are anonymous), answers server-wide
 * requests and routes the rest with the caller attached; a Project serialises changes to its
 * meta and config; a Package serialises its commits. Every handler asks the Guard (guard.ts,
 * rules in access.ts) before it reads or changes anything.
 *
 * Blob verbs bypass the actors: content is immutable and addressed by hash. Reads are served to
 * whoever names a sha256, which only a caller allowed to list the files learns. Uploads must be
 * signed by a user who may commit somewhere (an admin, a maintainer of some project or package)
 * or by kiln's roles (service output). Because the store is shared by all projects, a commit may
 * only refer (by md5) to content the committer uploaded themselves recently or can already read
 * in some package: otherwise naming the md5 of a hidden file would hand out its content. Content
 * nothing refers to is collected once it is older than a grace period (at start and
 * periodically), so uploads that are never committed do not fill the disk.
 */
import path from "node:path";
import { dispatch, spawn, stop, type Ref } from "nact";
import { DeliverPolicy } from "nats";
import {
  BLOB_VERBS,
  EVENT_STREAM,
  ForbiddenError,
  InvalidInputError,
  Role,
  UnauthenticatedError,
  blobHandler,
  bridgeActor,
  decode,
  ensureEventStream,
  errorEnvelope,
  parseSubject,
  publishEvent,
  subjects,
  type BlobInfo,
  type BridgedRequest,
  type EventBase,
  type RequestHandler,
  type SignedAuth,
} from "../../transport/index.ts";
import { BlobStore, Outbox, RoleStore } from "../../storage/index.ts";
import { Children, answer, assertNever, validated, type Validators } from "../common/actor-kit.ts";
import { acquireLease, answerPings, pingInfo, type RoleContext, type RunningRole } from "../common/runtime.ts";
import {
  archField,
  arr,
  bool,
  int,
  md5,
  obj,
  oneOf,
  optInt,
  optStr,
  packageField,
  projectField,
  repositoryField,
  str,
  type Raw,
} from "../common/validate.ts";
import { AccessNeed, canReadSources, mayRunServices, type Principal } from "./access.ts";
import { Guard } from "./guard.ts";
import { MAX_META_XML_BYTES } from "./meta-xml.ts";
import type { CommitEntry, PassedRequest, SourceApi, SourceEvent, SourceRequest } from "./protocol.ts";
import { ConfigCache, packageBuildInfo } from "./recipe.ts";
import { DEFAULT_SOURCE_LIMITS, SourceState, type SourceLimits } from "./source-state.ts";
import { MAX_SERVICE_OUTPUT_BYTES, PROJECT_PACKAGE, SourceServices } from "./source-services.ts";
import { ServiceRunKind } from "../service/service-xml.ts";
import { ANONYMOUS_CALLER, Identities } from "./identities.ts";

const comment = (o: Raw): { comment?: string } => {
  const c = optStr(o, "comment", { max: 64 * 1024, allowEmpty: true });
  return c === undefined ? {} : { comment: c };
};
const xml = (o: Raw): string => str(o, "xml", { max: MAX_META_XML_BYTES });
const blobVerb = (): never => {
  throw new InvalidInputError("blob verbs are served directly");
};
const commitEntry = (v: unknown): CommitEntry => {
  const f = obj(v, "file entry");
  return { name: str(f, "name", { max: 1024 }), md5: md5(f, "md5"), size: int(f, "size", { min: 0 }) };
};
const passed = (v: unknown): PassedRequest => {
  const o = obj(v, "'as'");
  const out: PassedRequest = { subject: str(o, "subject", { max: 1024 }), args: o.args };
  if (o.auth !== undefined) out.auth = o.auth as SignedAuth;
  return out;
};

const validators: Validators<SourceApi> = {
  "project.list": () => ({}),
  "project.get-meta": (raw) => ({ project: projectField(obj(raw)) }),
  "project.put-meta": (raw) => ({
    project: projectField(obj(raw)),
    xml: xml(obj(raw)),
    force: bool(obj(raw), "force", false),
    ...comment(obj(raw)),
  }),
  "project.meta-history": (raw) => ({ project: projectField(obj(raw)) }),
  "project.get-config": (raw) => {
    const o = obj(raw);
    const rev = optInt(o, "rev", { min: 0 });
    return { project: projectField(o), ...(rev === undefined ? {} : { rev }) };
  },
  "project.put-config": (raw) => {
    const o = obj(raw);
    return {
      project: projectField(o),
      text: str(o, "text", { max: 64 * 1024 * 1024, allowEmpty: true }),
      ...comment(o),
    };
  },
  "project.delete": (raw) => ({
    project: projectField(obj(raw)),
    force: bool(obj(raw), "force", false),
    ...comment(obj(raw)),
  }),
  "project.build-config": (raw) => ({ project: projectField(obj(raw)), repository: repositoryField(obj(raw)) }),
  "project.buildinfo": (raw) => ({
    project: projectField(obj(raw)),
    repository: repositoryField(obj(raw)),
    arch: archField(obj(raw)),
  }),
  "package.list": (raw) => ({ project: projectField(obj(raw)) }),
  "package.get-meta": (raw) => ({ project: projectField(obj(raw)), package: packageField(obj(raw)) }),
  "package.put-meta": (raw) => ({
    project: projectField(obj(raw)),
    package: packageField(obj(raw)),
    xml: xml(obj(raw)),
    ...comment(obj(raw)),
  }),
  "package.meta-history": (raw) => ({ project: projectField(obj(raw)), package: packageField(obj(raw)) }),
  "package.commit": (raw) => {
    const o = obj(raw);
    const files = arr(o, "files", commitEntry, { max: 1_000_000 });
    return { project: projectField(o), package: packageField(o), files, ...comment(o) };
  },
  "package.get": (raw) => {
    const o = obj(raw);
    const rev = optInt(o, "rev", { min: 0 });
    return { project: projectField(o), package: packageField(o), ...(rev === undefined ? {} : { rev }) };
  },
  "package.history": (raw) => ({ project: projectField(obj(raw)), package: packageField(obj(raw)) }),
  "package.delete": (raw) => ({
    project: projectField(obj(raw)),
    package: packageField(obj(raw)),
    ...comment(obj(raw)),
  }),
  "package.buildinfo": (raw) => ({
    project: projectField(obj(raw)),
    package: packageField(obj(raw)),
    repository: repositoryField(obj(raw)),
    arch: archField(obj(raw)),
  }),
  "package.service-run": (raw) => {
    const o = obj(raw);
    return {
      project: projectField(o),
      package: packageField(o),
      ...(o.kind !== undefined ? { kind: oneOf(o, "kind", Object.values(ServiceRunKind)) } : {}),
    };
  },
  "package.service-status": (raw) => ({ project: projectField(obj(raw)), package: packageField(obj(raw)) }),
  "package.service-job": (raw) => {
    const o = obj(raw);
    return { project: projectField(o), package: packageField(o), runId: int(o, "runId", { min: 1 }) };
  },
  "package.service-result": (raw) => {
    const o = obj(raw);
    const error = optStr(o, "error", { max: 64 * 1024, allowEmpty: true });
    return {
      project: projectField(o),
      package: packageField(o),
      runId: int(o, "runId", { min: 1 }),
      ok: bool(o, "ok", false),
      files: arr(o, "files", commitEntry, { max: 1_000_000 }),
      output: str(o, "output", { max: 2 * MAX_SERVICE_OUTPUT_BYTES, allowEmpty: true }),
      ...(error !== undefined ? { error } : {}),
    };
  },
  "service.pending": () => ({}),
  "user.add": (raw) => {
    const o = obj(raw);
    return {
      name: str(o, "name", { max: 200 }),
      pubkey: str(o, "pubkey", { max: 200 }),
      admin: bool(o, "admin", false),
      service: bool(o, "service", false),
    };
  },
  "user.list": () => ({}),
  "user.remove": (raw) => ({ name: str(obj(raw), "name", { max: 200 }) }),
  "user.whoami": () => ({}),
  "group.set": (raw) => {
    const o = obj(raw);
    return {
      name: str(o, "name", { max: 200 }),
      members: arr(
        o,
        "members",
        (v) => {
          if (typeof v !== "string" || v.length > 200) throw new InvalidInputError("'members' must hold user names");
          return v;
        },
        { max: 10_000 }
      ),
    };
  },
  "group.list": () => ({}),
  "group.remove": (raw) => ({ name: str(obj(raw), "name", { max: 200 }) }),
  "access.check": (raw) => {
    const o = obj(raw);
    const out: SourceApi["access.check"]["req"] = {
      project: projectField(o),
      need: oneOf(o, "need", Object.values(AccessNeed)),
    };
    if (o.package !== undefined) out.package = packageField(o);
    if (o.repository !== undefined) out.repository = repositoryField(o);
    if (o.arch !== undefined) out.arch = archField(o);
    if (o.as !== undefined) out.as = passed(o.as);
    return out;
  },
  "access.filter": (raw) => {
    const o = obj(raw);
    const out: SourceApi["access.filter"]["req"] = {
      targets: arr(
        o,
        "targets",
        (v) => {
          const t = obj(v);
          return {
            project: projectField(t),
            ...(t.package !== undefined ? { package: packageField(t) } : {}),
            // binarydownload is decided per repository/arch.
            ...(t.repository !== undefined ? { repository: repositoryField(t) } : {}),
            ...(t.arch !== undefined ? { arch: archField(t) } : {}),
          };
        },
        { max: 10_000 }
      ),
      need: oneOf(o, "need", Object.values(AccessNeed)),
    };
    if (o.strict !== undefined) out.strict = bool(o, "strict", false);
    if (o.as !== undefined) out.as = passed(o.as);
    return out;
  },
  "events.read": (raw) => {
    const o = obj(raw);
    const out: SourceApi["events.read"]["req"] = {};
    const after = optInt(o, "after", { min: 0 });
    if (after !== undefined) out.after = after;
    if (o.project !== undefined) out.project = projectField(o);
    const max = optInt(o, "max", { min: 1, max: 1000 });
    if (max !== undefined) out.max = max;
    const waitMs = optInt(o, "waitMs", { min: 0, max: 30_000 });
    if (waitMs !== undefined) out.waitMs = waitMs;
    return out;
  },
  "blob.stat": blobVerb,
  "blob.read": blobVerb,
  "upload.begin": blobVerb,
  "upload.chunk": blobVerb,
  "upload.commit": blobVerb,
  "upload.abort": blobVerb,
  "upload.put": blobVerb,
};

/** What each change is called in refusals. */
const ACTIONS: Partial<Record<SourceRequest["type"], string>> = {
  "project.put-config": "change the config of",
  "project.delete": "delete",
  "package.put-meta": "change the meta of",
  "package.commit": "commit to",
  "package.delete": "delete",
  "package.get": "read the sources of",
  "package.history": "read the history of",
  "package.buildinfo": "read the build info of",
  "project.buildinfo": "read the build info of",
  "package.service-run": "run the services of",
  "package.service-status": "read the service runs of",
};

export interface SourceRoleOptions {
  limits?: Partial<SourceLimits>;
  /**
   * Identities of kiln's own roles in this process (or on this node), registered as service users
   * at start: they read hidden projects and sources, and change nothing.
   */
  serviceUsers?: { name: string; pubkey: string }[];
  /** An upload without a chunk for this long is discarded. @default 10 minutes */
  uploadIdleMs?: number;
  /** How long an uploader may refer to content they uploaded, in a commit. @default 1 hour */
  uploadGrantMs?: number;
  /**
   * Stored content that no revision refers to is removed once it is this old (since it was
   * uploaded last); at least `uploadGrantMs`. @default 1 day
   */
  blobGraceMs?: number;
  /** How often unreferenced content is collected (also once at start). @default 1 hour */
  blobGcIntervalMs?: number;
}

type Sweep = { type: "children.sweep" };

/** Content a user uploaded, which their commits may refer to for a while. */
class UploadGrants {
  readonly #ttlMs: number;
  readonly #byUser = new Map<string, Map<string, number>>();
  readonly #uploads = new Map<string, { user: string; time: number }>();

  constructor(ttlMs: number) {
    this.#ttlMs = ttlMs;
  }

  started(uploadId: string, user: string): void {
    this.#uploads.set(uploadId, { user, time: Date.now() });
  }

  /** The upload ended; when it stored content, its uploader may use it. */
  ended(uploadId: string, info?: BlobInfo): void {
    const u = this.#uploads.get(uploadId);
    this.#uploads.delete(uploadId);
    if (u && info) this.granted(u.user, info);
  }

  /** `user` stored this content and may use it. */
  granted(user: string, info: BlobInfo): void {
    let m = this.#byUser.get(user);
    if (!m) this.#byUser.set(user, (m = new Map()));
    m.set(info.md5, Date.now() + this.#ttlMs);
  }

  has(user: string, md5: string): boolean {
    const exp = this.#byUser.get(user)?.get(md5);
    return exp !== undefined && exp > Date.now();
  }

  sweep(idleMs: number): void {
    const now = Date.now();
    for (const [id, u] of this.#uploads) if (now - u.time > 2 * idleMs + this.#ttlMs) this.#uploads.delete(id);
    for (const [user, m] of this.#byUser) {
      for (const [md5sum, exp] of m) if (exp <= now) m.delete(md5sum);
      if (m.size === 0) this.#byUser.delete(user);
    }
  }
}

export async function startSourceRole(ctx: RoleContext, opts: SourceRoleOptions = {}): Promise<RunningRole> {
  const log = ctx.log.child({ role: "source" });
  const lease = await acquireLease(ctx, "source");
  const dir = path.join(ctx.dataDir, "source");
  const store = RoleStore.open({ path: path.join(dir, "db"), log });
  const limits: SourceLimits = { ...DEFAULT_SOURCE_LIMITS, ...opts.limits };
  const uploadIdleMs = opts.uploadIdleMs ?? 10 * 60_000;
  const blobs = new BlobStore({
    dir: path.join(dir, "blobs"),
    store,
    log,
    maxBlobBytes: limits.maxFileBytes,
    uploadIdleMs,
  });
  const jsm = await ctx.nc.jetstreamManager();
  const js = ctx.nc.jetstream();
  await ensureEventStream(jsm, { replicas: ctx.replicas });
  const outbox = new Outbox<SourceEvent>(store, (e) => publishEvent(js, e), log);
  await outbox.flush();
  const state = new SourceState({ store, blobs, outbox, limits });
  const services = new SourceServices({ store, blobs, outbox, state });
  const identities = new Identities(store, log);
  for (const u of opts.serviceUsers ?? []) await identities.ensureService(u.name, u.pubkey);
  /** Who sent the request another role passed on (authenticated here, nonce included). */
  const passedCaller = (as: PassedRequest | undefined): Principal =>
    as
      ? identities.callerOf({ subject: as.subject, args: as.args, ...(as.auth ? { auth: as.auth } : {}) })
      : ANONYMOUS_CALLER;
  const guard = new Guard(state);
  const grants = new UploadGrants(opts.uploadGrantMs ?? 3600_000);
  const configs = new ConfigCache();
  const startedAt = Date.now();

  /** Whether stored content with this md5 counts as present in a commit by `caller`. */
  const usable =
    (caller: Principal) =>
    (md5sum: string): boolean => {
      if (caller.admin || caller.service || grants.has(caller.user, md5sum)) return true;
      return state.referencesOf(md5sum).some((ref) => {
        const prj = state.project(ref.project);
        const pk = state.package(ref.project, ref.package);
        return prj !== undefined && pk !== undefined && canReadSources(caller, prj.meta, pk.meta);
      });
    };
  const visibleTo =
    (caller: Principal) =>
    (p: string): boolean =>
      guard.visibleProject(caller, p) !== undefined;

  const handlePackage = async (msg: SourceRequest): Promise<void> => {
    const caller = msg.caller;
    const action = ACTIONS[msg.type];
    switch (msg.type) {
      case "package.get-meta":
        return answer(msg.replyTo, () => {
          const p = guard.check(caller, msg.args, AccessNeed.See).package!;
          return { xml: p.xml, meta: p.meta };
        });
      case "package.put-meta":
        return answer(msg.replyTo, () => {
          guard.check(caller, msg.args, AccessNeed.Write, action);
          const a = msg.args;
          return state.putPackageMeta(a.project, a.package, a.xml, caller.user, a.comment ?? "");
        });
      case "package.meta-history":
        return answer(msg.replyTo, () => {
          guard.check(caller, msg.args, AccessNeed.See);
          return state.metaHistory(msg.args.project, msg.args.package);
        });
      case "package.commit":
        return answer(msg.replyTo, () => {
          guard.check(caller, msg.args, AccessNeed.Write, action);
          const a = msg.args;
          state.requireUnlocked(a.project, a.package);
          return state.commit(
            a.project,
            a.package,
            a.files,
            caller.user,
            a.comment ?? "",
            usable(caller),
            services.commitHooks(a.project, a.package, caller.user)
          );
        });
      case "package.get":
        return answer(msg.replyTo, () => {
          guard.check(caller, msg.args, AccessNeed.Sources, action);
          return {
            ...state.revision(msg.args.project, msg.args.package, msg.args.rev),
            project: msg.args.project,
            package: msg.args.package,
          };
        });
      case "package.history":
        return answer(msg.replyTo, () => {
          guard.check(caller, msg.args, AccessNeed.Sources, action);
          return state.history(msg.args.project, msg.args.package).map(({ files: _f, ...r }) => r);
        });
      case "package.delete":
        return answer(msg.replyTo, async () => {
          guard.check(caller, msg.args, AccessNeed.Write, action);
          const a = msg.args;
          await state.deletePackage(a.project, a.package, caller.user, a.comment ?? "");
          return null;
        });
      case "package.buildinfo":
        return answer(msg.replyTo, () => {
          const a = msg.args;
          const { project: prj, package: pk } = guard.check(caller, a, AccessNeed.Sources, action);
          return packageBuildInfo(state, configs, prj, pk!, a.repository, a.arch, services);
        });
      case "package.service-run":
        return answer(msg.replyTo, () => {
          guard.check(caller, msg.args, AccessNeed.Write, action);
          const a = msg.args;
          state.requireUnlocked(a.project, a.package);
          return services.requestRun(a.project, a.package, a.kind ?? ServiceRunKind.Server, caller.user);
        });
      case "package.service-status":
        return answer(msg.replyTo, () => {
          guard.check(caller, msg.args, AccessNeed.Sources, action);
          return services.status(msg.args.project, msg.args.package);
        });
      case "package.service-job":
        return answer(msg.replyTo, () => {
          requireServiceRunner(caller, "fetch service runs");
          guard.check(caller, msg.args, AccessNeed.Sources);
          return services.job(msg.args.project, msg.args.package, msg.args.runId);
        });
      case "package.service-result":
        return answer(msg.replyTo, () => {
          requireServiceRunner(caller, "deliver service results");
          guard.check(caller, msg.args, AccessNeed.Sources);
          const { project: p, package: k, ...r } = msg.args;
          return services.deliver(p, k, r);
        });
      default:
        return answer(msg.replyTo, () => {
          throw new InvalidInputError(`${msg.type} is not a package request`);
        });
    }
  };

  const packageActor = (parent: Ref<unknown>, name: string): Ref<SourceRequest> =>
    spawn(
      parent,
      async (_s: undefined, msg: SourceRequest) => {
        await handlePackage(msg);
        return undefined;
      },
      name,
      { onCrash: (_m, err, c) => (log.error({ err }, "package actor crashed"), c.resume) }
    );

  const handleProject = async (msg: SourceRequest, packages: Children<SourceRequest>): Promise<void> => {
    const caller = msg.caller;
    const action = ACTIONS[msg.type];
    switch (msg.type) {
      case "project.get-meta":
        return answer(msg.replyTo, () => {
          const p = guard.check(caller, msg.args, AccessNeed.See).project;
          return { xml: p.xml, meta: p.meta };
        });
      case "project.put-meta":
        return answer(msg.replyTo, () => {
          guard.checkPutProject(caller, msg.args.project);
          const a = msg.args;
          return state.putProjectMeta(a.project, a.xml, caller, {
            visible: visibleTo(caller),
            force: a.force ?? false,
            comment: a.comment ?? "",
          });
        });
      case "project.meta-history":
        return answer(msg.replyTo, () => {
          guard.check(caller, msg.args, AccessNeed.See);
          return state.metaHistory(msg.args.project);
        });
      case "project.get-config":
        return answer(msg.replyTo, () => {
          guard.check(caller, msg.args, AccessNeed.See);
          return state.config(msg.args.project, msg.args.rev);
        });
      case "project.put-config":
        return answer(msg.replyTo, () => {
          guard.check(caller, msg.args, AccessNeed.Write, action);
          return state.putConfig(msg.args.project, msg.args.text, caller.user, msg.args.comment ?? "");
        });
      case "project.delete":
        return answer(msg.replyTo, async () => {
          guard.check(caller, msg.args, AccessNeed.Write, action);
          const a = msg.args;
          await state.deleteProject(a.project, caller.user, {
            force: a.force ?? false,
            visible: visibleTo(caller),
            comment: a.comment ?? "",
          });
          return null;
        });
      case "project.build-config":
        return answer(msg.replyTo, () => {
          guard.check(caller, msg.args, AccessNeed.See);
          return state.buildConfig(msg.args.project, msg.args.repository, visibleTo(caller));
        });
      case "project.buildinfo":
        return answer(msg.replyTo, async () => {
          const prj = guard.check(caller, msg.args, AccessNeed.See).project;
          const out = [];
          for (const p of state.listPackages(prj.name)) {
            // Packages whose sources the caller may not read are left out, not refused: the
            // rest of the project is theirs to see.
            if (!canReadSources(caller, prj.meta, p.meta)) continue;
            // The project's own sources (project-wide services), not a package to build.
            if (p.name === PROJECT_PACKAGE) continue;
            out.push(await packageBuildInfo(state, configs, prj, p, msg.args.repository, msg.args.arch, services));
          }
          return out;
        });
      case "package.list":
        return answer(msg.replyTo, () => {
          guard.check(caller, msg.args, AccessNeed.See);
          return state.listPackages(msg.args.project).map((p) => p.name);
        });
      case "package.get-meta":
      case "package.put-meta":
      case "package.meta-history":
      case "package.commit":
      case "package.get":
      case "package.history":
      case "package.delete":
      case "package.buildinfo":
      case "package.service-run":
      case "package.service-status":
      case "package.service-job":
      case "package.service-result":
        dispatch(packages.get(msg.args.package), msg);
        return;
      case "project.list":
      case "user.add":
      case "user.list":
      case "user.remove":
      case "user.whoami":
      case "group.set":
      case "group.list":
      case "group.remove":
      case "access.check":
      case "access.filter":
      case "events.read":
      case "service.pending":
      case "blob.stat":
      case "blob.read":
      case "upload.begin":
      case "upload.chunk":
      case "upload.commit":
      case "upload.abort":
      case "upload.put":
        return answer(msg.replyTo, () => {
          throw new InvalidInputError(`${msg.type} is not a project request`);
        });
      default:
        assertNever(msg);
    }
  };

  const projectActor = (parent: Ref<unknown>, name: string): Ref<SourceRequest | Sweep> => {
    let packages: Children<SourceRequest> | undefined;
    return spawn(
      parent,
      async (_s: undefined, msg: SourceRequest | Sweep, actx) => {
        packages ??= new Children<SourceRequest>((n) => packageActor(actx.self, n));
        if (msg.type === "children.sweep") packages.sweep(stop);
        else await handleProject(msg, packages);
        return undefined;
      },
      name,
      { onCrash: (_m, err, c) => (log.error({ err }, "project actor crashed"), c.resume) }
    );
  };

  const requireRegistered = (caller: Principal, what: string): void => {
    if (caller.anonymous) throw new UnauthenticatedError(`${what} needs a signed request from a registered user`);
  };
  const requireServiceRunner = (caller: Principal, what: string): void => {
    requireRegistered(caller, what);
    if (!mayRunServices(caller)) {
      throw new ForbiddenError(
        `user '${caller.user}' may not ${what}: only kiln's roles (service users) and admins may`
      );
    }
  };
  const requireAdmin = (caller: Principal, what: string): void => {
    requireRegistered(caller, what);
    if (!caller.admin) throw new ForbiddenError(`user '${caller.user}' may not ${what}: only admins may`);
  };

  /** Events the caller may see, read from the stream with a short-lived ordered consumer. */
  const readEvents = async (
    caller: Principal,
    a: SourceApi["events.read"]["req"]
  ): Promise<SourceApi["events.read"]["res"]> => {
    const last = (await jsm.streams.info(EVENT_STREAM)).state.last_seq;
    const start = a.after !== undefined ? a.after + 1 : last + 1;
    if (start > last && a.waitMs === 0) return { events: [], next: start };
    const consumer = await js.consumers.get(EVENT_STREAM, {
      filterSubjects: subjects.eventsAll(),
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: start,
    });
    const events: SourceApi["events.read"]["res"]["events"] = [];
    let next = start;
    const seen = new Map<string, boolean>();
    const msgs = await consumer.fetch({ max_messages: a.max ?? 100, expires: Math.max(1000, a.waitMs ?? 5000) });
    for await (const m of msgs) {
      next = m.seq + 1;
      let ev: EventBase & Record<string, unknown>;
      try {
        ev = decode<EventBase & Record<string, unknown>>(m.data);
      } catch {
        continue;
      }
      if (typeof ev?.project !== "string" || (a.project !== undefined && ev.project !== a.project)) continue;
      let ok = seen.get(ev.project);
      if (ok === undefined) seen.set(ev.project, (ok = guard.eventVisible(caller, ev.project)));
      if (ok) events.push({ seq: m.seq, event: ev });
      // Caught up with something to show: answer now rather than at the end of the wait.
      if (m.info.pending === 0 && events.length > 0) break;
    }
    await consumer.delete().catch(() => undefined);
    return { events, next };
  };

  /** Requests the root answers itself; false for those routed to a Project. */
  const handleRoot = (req: SourceRequest): boolean => {
    const caller = req.caller;
    switch (req.type) {
      case "project.list":
        void answer(req.replyTo, () =>
          state
            .listProjects()
            .filter((p) => guard.visibleProject(caller, p.name))
            .map((p) => ({ name: p.name, title: p.meta.title }))
        );
        return true;
      case "user.add":
        void answer(req.replyTo, () => {
          requireAdmin(caller, "add users");
          const a = req.args;
          return identities
            .add(a.name, a.pubkey, { admin: a.admin ?? false, service: a.service ?? false })
            .then((u) => ({ ...u, service: u.service === true }));
        });
        return true;
      case "user.list":
        void answer(req.replyTo, () => {
          requireRegistered(caller, "listing users");
          return identities.list().map((u) => ({ ...u, service: u.service === true }));
        });
        return true;
      case "user.remove":
        void answer(req.replyTo, async () => {
          requireAdmin(caller, "remove users");
          await identities.remove(req.args.name);
          return null;
        });
        return true;
      case "user.whoami":
        void answer(req.replyTo, () => ({
          user: caller.user,
          admin: caller.admin,
          service: caller.service,
          anonymous: caller.anonymous,
          groups: [...caller.groups].sort(),
        }));
        return true;
      case "group.set":
        void answer(req.replyTo, () => {
          requireAdmin(caller, "change groups");
          return identities.setGroup(req.args.name, req.args.members);
        });
        return true;
      case "group.list":
        void answer(req.replyTo, () => {
          requireRegistered(caller, "listing groups");
          return identities.groups();
        });
        return true;
      case "group.remove":
        void answer(req.replyTo, async () => {
          requireAdmin(caller, "change groups");
          await identities.removeGroup(req.args.name);
          return null;
        });
        return true;
      case "access.check":
        void answer(req.replyTo, () => {
          const a = req.args;
          const inner = passedCaller(a.as);
          let action: string | undefined;
          if (a.as) {
            try {
              const parsed = parseSubject(a.as.subject);
              if ("type" in parsed) action = a.need === AccessNeed.Write ? parsed.type : undefined;
            } catch {
              action = undefined;
            }
          }
          guard.check(
            inner,
            {
              project: a.project,
              ...(a.package !== undefined ? { package: a.package } : {}),
              ...(a.repository !== undefined ? { repository: a.repository } : {}),
              ...(a.arch !== undefined ? { arch: a.arch } : {}),
            },
            a.need,
            action && `${action} for`
          );
          return { user: inner.user };
        });
        return true;
      case "access.filter":
        void answer(req.replyTo, () => {
          const a = req.args;
          const inner = passedCaller(a.as);
          // Jobs may outlive their package or project: an admin still sees (and may abort) them.
          const allowed = a.targets.map((t) => {
            if (inner.admin) return true;
            try {
              guard.check(inner, t, a.need);
              return true;
            } catch (e) {
              if (a.strict) throw e;
              return false;
            }
          });
          return { user: inner.user, allowed };
        });
        return true;
      case "events.read":
        void answer(req.replyTo, () => readEvents(caller, req.args));
        return true;
      case "service.pending":
        void answer(req.replyTo, () => {
          requireServiceRunner(caller, "list service runs");
          return services.pending();
        });
        return true;
      default:
        return false;
    }
  };

  let projects: Children<SourceRequest | Sweep> | undefined;
  const root = spawn(
    ctx.system,
    (_s: undefined, msg: BridgedRequest | Sweep, actx) => {
      projects ??= new Children<SourceRequest | Sweep>((n) => projectActor(actx.self, n));
      if (msg.type === "children.sweep") {
        for (const k of projects.keys()) dispatch(projects.get(k), msg);
        projects.sweep(stop);
        return undefined;
      }
      const m = msg as BridgedRequest;
      // Authenticated on the arguments as they arrived: the signature covers those bytes, not
      // the validated form.
      let caller: Principal;
      try {
        caller = identities.callerOf({
          subject: m.subject,
          args: m.args,
          ...(m.auth ? { auth: m.auth } : {}),
          type: m.type,
        });
      } catch (err) {
        dispatch(m.replyTo, errorEnvelope(err));
        return undefined;
      }
      const valid = validated(validators, m);
      if (!valid) return undefined;
      const req = { ...valid, caller } as SourceRequest;
      if (handleRoot(req)) return undefined;
      dispatch(projects.get((req.args as { project: string }).project), req);
      return undefined;
    },
    "source"
  );

  const blobs0 = blobHandler(blobs, blobs);
  const blobsWithAuth: RequestHandler = async (args, meta) => {
    const id = (args as { uploadId?: unknown } | null)?.uploadId;
    switch (meta.type) {
      case "upload.begin":
      case "upload.put": {
        const caller = identities.callerOf({
          subject: meta.subject,
          args,
          ...(meta.auth ? { auth: meta.auth } : {}),
          type: meta.type,
        });
        if (caller.anonymous) {
          throw new UnauthenticatedError("uploads must be signed by a registered user (kiln --identity FILE)");
        }
        if (!mayRunServices(caller) && !state.maySomewhereCommit(caller)) {
          throw new ForbiddenError(
            `user '${caller.user}' may not upload: uploads are for commits, which need an admin or a maintainer of some project or package (home:${caller.user} may be created by its user)`,
            { data: { user: caller.user, need: "upload" } }
          );
        }
        if (meta.type === "upload.put") {
          const info = (await blobs0(args, meta)) as BlobInfo;
          grants.granted(caller.user, info);
          return info;
        }
        const r = (await blobs0(args, meta)) as { uploadId: string };
        grants.started(r.uploadId, caller.user);
        return r;
      }
      case "upload.commit": {
        try {
          const info = (await blobs0(args, meta)) as BlobInfo;
          if (typeof id === "string") grants.ended(id, info);
          return info;
        } catch (err) {
          if (typeof id === "string") grants.ended(id);
          throw err;
        }
      }
      case "upload.abort":
        if (typeof id === "string") grants.ended(id);
        return blobs0(args, meta);
      default:
        return blobs0(args, meta);
    }
  };

  const sweep = setInterval(() => {
    dispatch(root, { type: "children.sweep" });
    grants.sweep(uploadIdleMs);
  }, 60_000);
  const graceMs = Math.max(opts.blobGraceMs ?? 24 * 3600_000, opts.uploadGrantMs ?? 3600_000);
  let collecting: Promise<void> | undefined;
  const collect = (): void => {
    if (collecting) return;
    collecting = blobs
      .collect({ graceMs, referenced: (info) => state.referencesOf(info.md5).length > 0 })
      .then((r) => {
        if (r.removed > 0) log.info({ removed: r.removed, bytes: r.bytes }, "unreferenced content collected");
      })
      .catch((err: unknown) => log.warn({ err }, "collecting unreferenced content failed"))
      .finally(() => (collecting = undefined));
  };
  collect();
  const gc = setInterval(collect, opts.blobGcIntervalMs ?? 3600_000);
  const sub = bridgeActor(ctx.nc, root as unknown as Ref<BridgedRequest>, {
    subject: subjects.rpcAll(Role.Source),
    queue: Role.Source,
    prefixTokens: 3,
    log,
    direct: { types: BLOB_VERBS, handler: blobsWithAuth },
    queryTimeoutMs: 60_000,
  });
  const stopPing = answerPings(ctx.nc, () => pingInfo("source", ctx.nodeId, startedAt));
  log.info({ limits }, "source role started");
  return {
    role: "source",
    async stop(): Promise<void> {
      clearInterval(sweep);
      clearInterval(gc);
      stopPing();
      await sub.drain();
      identities.close();
      await collecting;
      await blobs.close();
      await store.close();
      await lease.release();
      log.info({}, "source role stopped");
    },
  };
}

/**
 * The source role: projects, packages, revisions and build configs — where every user change
 * enters kiln.
 *
 * Actors: SourceServer (root) → Project(p) → Package(p, k). The root answers server-wide reads
 * and routes the rest; a Project serialises changes to its meta and config; a Package serialises
 * its commits. Blob verbs (content uploads and downloads) bypass the actors: content is immutable
 * and addressed by hash.
 */
import path from "node:path";
import { dispatch, spawn, stop, type Ref } from "nact";
import {
  BLOB_VERBS,
  ForbiddenError,
  InvalidInputError,
  Role,
  blobHandler,
  bridgeActor,
  ensureEventStream,
  publishEvent,
  subjects,
  type BridgedRequest,
} from "../../transport/index.ts";
import { BlobStore, Outbox, RoleStore } from "../../storage/index.ts";
import { Children, answer, assertNever, validated, type Validators } from "../common/actor-kit.ts";
import { acquireLease, answerPings, pingInfo, type RoleContext, type RunningRole } from "../common/runtime.ts";
import { arr, bool, int, md5, obj, optInt, optStr, str, type Raw } from "../common/validate.ts";
import { validateArch, validatePackageName, validateProjectName, validateRepositoryName } from "../common/names.ts";
import { MAX_META_XML_BYTES } from "./meta-xml.ts";
import type { CommitEntry, SourceApi, SourceEvent, SourceRequest } from "./protocol.ts";
import { ConfigCache, packageBuildInfo } from "./recipe.ts";
import { DEFAULT_SOURCE_LIMITS, SourceState, type SourceLimits } from "./source-state.ts";
import { Identities } from "./identities.ts";

const project = (o: Raw): string => {
  const p = str(o, "project", { max: 200 });
  validateProjectName(p);
  return p;
};
const pkg = (o: Raw): string => {
  const k = str(o, "package", { max: 200 });
  validatePackageName(k);
  return k;
};
const repository = (o: Raw): string => {
  const r = str(o, "repository", { max: 200 });
  validateRepositoryName(r);
  return r;
};
const arch = (o: Raw): string => {
  const a = str(o, "arch", { max: 50 });
  validateArch(a);
  return a;
};
const comment = (o: Raw): { comment?: string } => {
  const c = optStr(o, "comment", { max: 64 * 1024, allowEmpty: true });
  return c === undefined ? {} : { comment: c };
};
const xml = (o: Raw): string => str(o, "xml", { max: MAX_META_XML_BYTES });
const blobVerb = (): never => {
  throw new InvalidInputError("blob verbs are served directly");
};

const validators: Validators<SourceApi> = {
  "project.list": () => ({}),
  "project.get-meta": (raw) => ({ project: project(obj(raw)) }),
  "project.put-meta": (raw) => ({ project: project(obj(raw)), xml: xml(obj(raw)), ...comment(obj(raw)) }),
  "project.get-config": (raw) => {
    const o = obj(raw);
    const rev = optInt(o, "rev", { min: 0 });
    return { project: project(o), ...(rev === undefined ? {} : { rev }) };
  },
  "project.put-config": (raw) => {
    const o = obj(raw);
    return { project: project(o), text: str(o, "text", { max: 4 * 1024 * 1024, allowEmpty: true }), ...comment(o) };
  },
  "project.delete": (raw) => ({
    project: project(obj(raw)),
    force: bool(obj(raw), "force", false),
    ...comment(obj(raw)),
  }),
  "project.build-config": (raw) => ({ project: project(obj(raw)), repository: repository(obj(raw)) }),
  "project.buildinfo": (raw) => ({
    project: project(obj(raw)),
    repository: repository(obj(raw)),
    arch: arch(obj(raw)),
  }),
  "package.list": (raw) => ({ project: project(obj(raw)) }),
  "package.get-meta": (raw) => ({ project: project(obj(raw)), package: pkg(obj(raw)) }),
  "package.put-meta": (raw) => ({
    project: project(obj(raw)),
    package: pkg(obj(raw)),
    xml: xml(obj(raw)),
    ...comment(obj(raw)),
  }),
  "package.commit": (raw) => {
    const o = obj(raw);
    const files = arr(
      o,
      "files",
      (v): CommitEntry => {
        const f = obj(v, "file entry");
        return { name: str(f, "name", { max: 1024 }), md5: md5(f, "md5"), size: int(f, "size", { min: 0 }) };
      },
      { max: 100_000 }
    );
    return { project: project(o), package: pkg(o), files, ...comment(o) };
  },
  "package.get": (raw) => {
    const o = obj(raw);
    const rev = optInt(o, "rev", { min: 0 });
    return { project: project(o), package: pkg(o), ...(rev === undefined ? {} : { rev }) };
  },
  "package.history": (raw) => ({ project: project(obj(raw)), package: pkg(obj(raw)) }),
  "package.delete": (raw) => ({ project: project(obj(raw)), package: pkg(obj(raw)), ...comment(obj(raw)) }),
  "package.buildinfo": (raw) => ({
    project: project(obj(raw)),
    package: pkg(obj(raw)),
    repository: repository(obj(raw)),
    arch: arch(obj(raw)),
  }),
  "user.add": (raw) => {
    const o = obj(raw);
    return {
      name: str(o, "name", { max: 200 }),
      pubkey: str(o, "pubkey", { max: 200 }),
      admin: bool(o, "admin", false),
    };
  },
  "user.list": () => ({}),
  "user.remove": (raw) => ({ name: str(obj(raw), "name", { max: 200 }) }),
  "user.whoami": () => ({}),
  "blob.stat": blobVerb,
  "blob.read": blobVerb,
  "upload.begin": blobVerb,
  "upload.chunk": blobVerb,
  "upload.commit": blobVerb,
  "upload.abort": blobVerb,
};

export interface SourceRoleOptions {
  limits?: Partial<SourceLimits>;
}

type Sweep = { type: "children.sweep" };

export async function startSourceRole(ctx: RoleContext, opts: SourceRoleOptions = {}): Promise<RunningRole> {
  const log = ctx.log.child({ role: "source" });
  const lease = await acquireLease(ctx, "source");
  const dir = path.join(ctx.dataDir, "source");
  const store = RoleStore.open({ path: path.join(dir, "db"), log });
  const limits: SourceLimits = { ...DEFAULT_SOURCE_LIMITS, ...opts.limits };
  const blobs = new BlobStore({ dir: path.join(dir, "blobs"), store, log, maxBlobBytes: limits.maxFileBytes });
  const js = ctx.nc.jetstream();
  await ensureEventStream(await ctx.nc.jetstreamManager(), { replicas: ctx.replicas });
  const outbox = new Outbox<SourceEvent>(store, (e) => publishEvent(js, e), log);
  await outbox.flush();
  const state = new SourceState({ store, blobs, outbox, limits });
  const identities = new Identities(store, log);
  const configs = new ConfigCache();
  const startedAt = Date.now();

  const handlePackage = async (msg: SourceRequest): Promise<void> => {
    const who = (): string => identities.userOf(msg);
    switch (msg.type) {
      case "package.get-meta":
        return answer(msg.replyTo, () => {
          const p = state.requirePackage(msg.args.project, msg.args.package);
          return { xml: p.xml, meta: p.meta };
        });
      case "package.put-meta":
        return answer(msg.replyTo, () => state.putPackageMeta(msg.args.project, msg.args.package, msg.args.xml, who()));
      case "package.commit":
        return answer(msg.replyTo, () =>
          state.commit(msg.args.project, msg.args.package, msg.args.files, who(), msg.args.comment ?? "")
        );
      case "package.get":
        return answer(msg.replyTo, () => ({
          ...state.revision(msg.args.project, msg.args.package, msg.args.rev),
          project: msg.args.project,
          package: msg.args.package,
        }));
      case "package.history":
        return answer(msg.replyTo, () =>
          state.history(msg.args.project, msg.args.package).map(({ files: _f, ...r }) => r)
        );
      case "package.delete":
        return answer(msg.replyTo, () =>
          state.deletePackage(msg.args.project, msg.args.package, who()).then(() => null)
        );
      case "package.buildinfo":
        return answer(msg.replyTo, () => {
          const a = msg.args;
          const prj = state.requireProject(a.project);
          return packageBuildInfo(
            state,
            configs,
            prj,
            state.requirePackage(a.project, a.package),
            a.repository,
            a.arch
          );
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
    const who = (): string => identities.userOf(msg);
    switch (msg.type) {
      case "project.get-meta":
        return answer(msg.replyTo, () => {
          const p = state.requireProject(msg.args.project);
          return { xml: p.xml, meta: p.meta };
        });
      case "project.put-meta":
        return answer(msg.replyTo, () => state.putProjectMeta(msg.args.project, msg.args.xml, who()));
      case "project.get-config":
        return answer(msg.replyTo, () => state.config(msg.args.project, msg.args.rev));
      case "project.put-config":
        return answer(msg.replyTo, () =>
          state.putConfig(msg.args.project, msg.args.text, who(), msg.args.comment ?? "")
        );
      case "project.delete":
        return answer(msg.replyTo, () =>
          state.deleteProject(msg.args.project, msg.args.force ?? false, who()).then(() => null)
        );
      case "project.build-config":
        return answer(msg.replyTo, () => state.buildConfig(msg.args.project, msg.args.repository));
      case "project.buildinfo":
        return answer(msg.replyTo, async () => {
          const prj = state.requireProject(msg.args.project);
          const out = [];
          for (const p of state.listPackages(prj.name)) {
            out.push(await packageBuildInfo(state, configs, prj, p, msg.args.repository, msg.args.arch));
          }
          return out;
        });
      case "package.list":
        return answer(msg.replyTo, () => {
          state.requireProject(msg.args.project);
          return state.listPackages(msg.args.project).map((p) => p.name);
        });
      case "package.get-meta":
      case "package.put-meta":
      case "package.commit":
      case "package.get":
      case "package.history":
      case "package.delete":
      case "package.buildinfo":
        dispatch(packages.get(msg.args.package), msg);
        return;
      case "project.list":
      case "user.add":
      case "user.list":
      case "user.remove":
      case "user.whoami":
      case "blob.stat":
      case "blob.read":
      case "upload.begin":
      case "upload.chunk":
      case "upload.commit":
      case "upload.abort":
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
      const req = validated(validators, msg as BridgedRequest);
      if (!req) return undefined;
      switch (req.type) {
        case "project.list":
          void answer(req.replyTo, () => state.listProjects().map((p) => ({ name: p.name, title: p.meta.title })));
          return undefined;
        case "user.add":
          void answer(req.replyTo, () => {
            const caller = identities.callerOf(req);
            if (!caller.admin) throw new ForbiddenError("only admins may add users");
            return identities.add(req.args.name, req.args.pubkey, req.args.admin ?? false);
          });
          return undefined;
        case "user.list":
          void answer(req.replyTo, () => {
            identities.callerOf(req);
            return identities.list();
          });
          return undefined;
        case "user.remove":
          void answer(req.replyTo, () => {
            if (!identities.callerOf(req).admin) throw new ForbiddenError("only admins may remove users");
            return identities.remove(req.args.name).then(() => null);
          });
          return undefined;
        case "user.whoami":
          void answer(req.replyTo, () => {
            const c = identities.callerOf(req);
            return { user: c.user, admin: c.admin, anonymous: c.anonymous };
          });
          return undefined;
        default:
          break;
      }
      dispatch(projects.get((req.args as { project: string }).project), req);
      return undefined;
    },
    "source"
  );
  const sweep = setInterval(() => dispatch(root, { type: "children.sweep" }), 60_000);
  const sub = bridgeActor(ctx.nc, root as unknown as Ref<BridgedRequest>, {
    subject: subjects.rpcAll(Role.Source),
    queue: Role.Source,
    prefixTokens: 3,
    log,
    direct: { types: BLOB_VERBS, handler: blobHandler(blobs, blobs) },
    queryTimeoutMs: 60_000,
  });
  const stopPing = answerPings(ctx.nc, () => pingInfo("source", ctx.nodeId, startedAt));
  log.info({}, "source role started");
  return {
    role: "source",
    async stop(): Promise<void> {
      clearInterval(sweep);
      stopPing();
      await sub.drain();
      identities.close();
      await blobs.close();
      await store.close();
      await lease.release();
      log.info({}, "source role stopped");
    },
  };
}

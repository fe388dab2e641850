/**
 * The source role's access decisions applied to its records: each request handler asks the Guard
 * before it reads or changes anything, and gets the records back or the error its caller should
 * see.
 *
 * Refusals, in this order:
 * - a change without a signature → ERR_UNAUTHENTICATED (before anything about the target is
 *   looked at, so it tells nothing about hidden projects);
 * - a project that does not exist or is hidden from the caller → ERR_NOT_FOUND with the same
 *   message in both cases;
 * - anything else the caller's role does not allow → ERR_FORBIDDEN naming the user, the action
 *   and the project or package.
 */
import { ForbiddenError, NotFoundError, UnauthenticatedError } from "../../transport/index.ts";
import { quoteForMessage, validatePackageName, validateProjectName } from "../common/names.ts";
import {
  AccessNeed,
  canDownloadBinaries,
  canReadSources,
  canSee,
  canWritePackage,
  canWriteProject,
  mayCreateProject,
  type Principal,
} from "./access.ts";
import type { PackageRecord, ProjectRecord } from "./protocol.ts";
import type { SourceState } from "./source-state.ts";

/** What a request acts on. */
export interface AccessTarget {
  project: string;
  package?: string;
  repository?: string;
  arch?: string;
}

const NEED_TEXT: Record<AccessNeed, string> = {
  see: "see",
  sources: "read the sources of",
  binaries: "download the binaries of",
  write: "change",
};

const who = (p: Principal): string => `user '${p.user}'`;

export class Guard {
  readonly #state: SourceState;

  constructor(state: SourceState) {
    this.#state = state;
  }

  /** The project if it exists and the caller may see it. */
  visibleProject(caller: Principal, name: string): ProjectRecord | undefined {
    const rec = this.#state.project(name);
    return rec && canSee(caller, rec.meta) ? rec : undefined;
  }

  /** Whether an event about `project` may be shown: a deleted project's only to admins and roles. */
  eventVisible(caller: Principal, project: string): boolean {
    const rec = this.#state.project(project);
    if (!rec) return caller.admin || caller.service;
    return canSee(caller, rec.meta);
  }

  /** Refuses unsigned changes; call first for every change. */
  requireSigned(caller: Principal, action: string): void {
    if (caller.anonymous) {
      throw new UnauthenticatedError(
        `${action} changes kiln's state and must be signed by a registered user (kiln --identity FILE)`
      );
    }
  }

  /**
   * Checks `need` on a project (and package, when given) and returns their records. For
   * `write`, a package that does not exist yet needs the right to change its project (it is
   * being created); for the other needs it must exist.
   */
  check(
    caller: Principal,
    target: AccessTarget,
    need: AccessNeed,
    action?: string
  ): { project: ProjectRecord; package?: PackageRecord } {
    validateProjectName(target.project);
    if (target.package !== undefined) validatePackageName(target.package);
    if (need === AccessNeed.Write) this.requireSigned(caller, action ?? "this request");
    const prj = this.visibleProject(caller, target.project);
    if (!prj) throw new NotFoundError(`project '${target.project}' does not exist`);
    const pkg = target.package === undefined ? undefined : this.#state.package(target.project, target.package);
    // A change may create the package; binaries may outlive their deleted package.
    if (target.package !== undefined && !pkg && need !== AccessNeed.Write && need !== AccessNeed.Binaries) {
      throw new NotFoundError(`package '${target.package}' does not exist in project '${target.project}'`);
    }
    const what =
      target.package === undefined ? `project '${prj.name}'` : `package '${target.project}/${target.package}'`;
    const refuse = (needs: string): never => {
      throw new ForbiddenError(`${who(caller)} may not ${action ?? NEED_TEXT[need]} ${what}: ${needs}`, {
        data: {
          user: caller.user,
          need,
          project: target.project,
          ...(target.package ? { package: target.package } : {}),
        },
      });
    };
    switch (need) {
      case AccessNeed.See:
        break;
      case AccessNeed.Sources:
        if (!canReadSources(caller, prj.meta, pkg?.meta))
          refuse("its sources are hidden (sourceaccess) from non-members");
        break;
      case AccessNeed.Binaries:
        if (!canDownloadBinaries(caller, prj.meta, pkg?.meta, target.repository, target.arch)) {
          refuse("binary downloads are disabled (binarydownload) for non-members");
        }
        break;
      case AccessNeed.Write:
        if (target.package === undefined || !pkg) {
          if (!canWriteProject(caller, prj.meta))
            refuse(`that needs an admin or a maintainer of project '${prj.name}'`);
        } else if (!canWritePackage(caller, prj.meta, pkg.meta)) {
          refuse(`that needs an admin or a maintainer of project '${prj.name}' or of the package`);
        }
        break;
      default: {
        const never: never = need;
        throw new NotFoundError(`unknown access need ${quoteForMessage(String(never))}`);
      }
    }
    return pkg ? { project: prj, package: pkg } : { project: prj };
  }

  /**
   * Changing a project's meta: an existing project needs `write`; a new one, the right to create
   * it (see access.ts). Returns the existing record, if any.
   */
  checkPutProject(caller: Principal, name: string): ProjectRecord | undefined {
    validateProjectName(name);
    this.requireSigned(caller, "project.put-meta");
    const existing = this.#state.project(name);
    if (existing && canSee(caller, existing.meta)) {
      return this.check(caller, { project: name }, AccessNeed.Write, "change the meta of").project;
    }
    // A project hidden from the caller is answered as if it did not exist: creating it is refused
    // below unless the caller could create it, and then it is a conflict they may learn of.
    const verdict = mayCreateProject(caller, name, (p) => this.visibleProject(caller, p)?.meta);
    if (!verdict.allowed) {
      throw new ForbiddenError(`${who(caller)} may not create project '${name}': that needs ${verdict.needs}`, {
        data: { user: caller.user, need: "create", project: name },
      });
    }
    if (existing) throw new ForbiddenError(`${who(caller)} may not change project '${name}'`);
    return undefined;
  }
}

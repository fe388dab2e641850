/**
 * Access checks for roles other than the source role. A role that serves something about a
 * project (results, logs, binaries) hands its caller's request — subject, raw arguments and
 * signature, exactly as received — to the source role's `access.check` before answering. The
 * source role authenticates that request as if it had received it (signature, time, nonce,
 * registered key) and decides with the same rules as for its own requests, so every role refuses
 * the same callers with the same errors, and a signed request still cannot be replayed.
 *
 * ```ts
 * const gate = new AccessGate(ctx.rpc);
 * await gate.require(bridged, { project, repository, arch, package: pkg }, AccessNeed.Binaries);
 * ```
 */
import { Role, RoleClient, subjects, type RpcClient, type SignedAuth } from "../../transport/index.ts";
import type { AccessNeed } from "./access.ts";
import type { SourceApi } from "./protocol.ts";

/** The part of a bridged request the source role needs to authenticate it. */
export interface CallerRequest {
  subject: string;
  args: unknown;
  /** The arguments as decoded from the wire, before validation: the signature covers these. */
  rawArgs?: unknown;
  auth?: SignedAuth;
}

export interface AccessGateTarget {
  project: string;
  package?: string;
  repository?: string;
  arch?: string;
}

export class AccessGate {
  readonly #source: RoleClient<SourceApi>;

  constructor(rpc: RpcClient) {
    this.#source = new RoleClient<SourceApi>(rpc, (t) => subjects.rpc(Role.Source, t));
  }

  /**
   * Resolves with the caller's user name when they may; rejects with the error they should get
   * (ERR_NOT_FOUND, ERR_FORBIDDEN, ERR_UNAUTHENTICATED) otherwise.
   */
  async require(req: CallerRequest, target: AccessGateTarget, need: AccessNeed): Promise<string> {
    const r = await this.#source.call(
      "access.check",
      {
        project: target.project,
        // A multibuild flavour (`pkg:flavor`) has the flags of its package.
        ...(target.package !== undefined ? { package: target.package.split(":")[0]! } : {}),
        ...(target.repository !== undefined ? { repository: target.repository } : {}),
        ...(target.arch !== undefined ? { arch: target.arch } : {}),
        need,
        as: { subject: req.subject, args: req.rawArgs ?? req.args, ...(req.auth ? { auth: req.auth } : {}) },
      },
      // Not repeated after a timeout: the first attempt may have used the caller's nonce.
      { idempotent: false }
    );
    return r.user;
  }

  /**
   * Which of the targets (project, optionally package, and the repository/arch `binarydownload`
   * is decided for) the caller may access as `need` says:
   * `allowed[i]` answers `targets[i]`. An admin passes for targets deleted meanwhile. `strict`
   * throws the reason for the first refused target instead.
   */
  async filter(
    req: CallerRequest,
    targets: readonly AccessGateTarget[],
    need: AccessNeed,
    opts: { strict?: boolean } = {}
  ): Promise<boolean[]> {
    if (targets.length === 0) return [];
    const r = await this.#source.call(
      "access.filter",
      {
        targets: [...targets],
        need,
        ...(opts.strict ? { strict: true } : {}),
        as: { subject: req.subject, args: req.rawArgs ?? req.args, ...(req.auth ? { auth: req.auth } : {}) },
      },
      { idempotent: false }
    );
    return r.allowed;
  }

  /** The projects (of those given) the caller may access as `need` says. */
  async visibleProjects(req: CallerRequest, projects: Iterable<string>, need: AccessNeed): Promise<Set<string>> {
    const unique = [...new Set(projects)];
    const allowed = await this.filter(
      req,
      unique.map((project) => ({ project })),
      need
    );
    return new Set(unique.filter((_, i) => allowed[i]));
  }
}

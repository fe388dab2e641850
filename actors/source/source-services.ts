/**
 * Source services, as far as the source role keeps them (OBS's srcserver side of "new style"
 * services): which commits start a service run, the runs' records, and the files the runs made.
 *
 * - A commit of a package whose `_service` (or its project's, `_project/_service`) has services
 *   the server runs starts a run in the commit's own transaction: the revision's expansion is
 *   marked running (schedulers show the package blocked, "service in progress") and
 *   `service.requested` goes out with `source.committed`. A `_service` that does not parse
 *   refuses the commit, as OBS's API does.
 * - The service role fetches the run (`package.service-job`), runs it in a sandbox and delivers
 *   the outcome (`package.service-result`). Only the package's current run is accepted: a newer
 *   commit or `kiln service run` supersedes the older run, whose result is dropped.
 * - A server run's files are stored as the revision's expansion: `_service:<name>:<file>` files
 *   linked to the user's revision, not a revision of their own. The build gets the revision's
 *   files plus these, and its srcmd5 is theirs together (OBS's xsrcmd5). A failed run stores its
 *   error instead: the package is broken with it.
 * - A manual (or disabled) run's files are committed as ordinary files of a new revision by the
 *   user who asked for it, which is what `osc service manualrun` and a commit amount to.
 *
 * Service users (kiln's roles) may deliver results and nothing else beyond reading; which files
 * they deliver, for which run and revision, is checked here.
 */
import type { BlobStore, Outbox, RoleStore } from "../../storage/index.ts";
import { keys } from "../../storage/index.ts";
import { ConflictError, InvalidInputError, NotFoundError, TooLargeError, makeEvent } from "../../transport/index.ts";
import type { SourceFile } from "../common/model.ts";
import { quoteForMessage, validateFileName } from "../common/names.ts";
import {
  MAX_SERVICE_XML_BYTES,
  ServiceRunKind,
  parseServiceXml,
  servicesFor,
  validateServiceName,
  type ServiceSpec,
} from "../service/service-xml.ts";
import {
  ServiceState,
  type CommitEntry,
  type ServiceExpansion,
  type ServiceJob,
  type ServiceRunRecord,
  type ServiceStatusView,
  type SourceEvent,
} from "./protocol.ts";
import type { CommitHooks, SourceState } from "./source-state.ts";
import { computeSrcmd5 } from "./srcmd5.ts";

/** The package whose `_service` holds the project-wide services (OBS). */
export const PROJECT_PACKAGE = "_project";
const SERVICE_FILE = "_service";
/** Most output kept with a run for `kiln service status` (its end); replies fit one NATS message. */
export const MAX_SERVICE_OUTPUT_BYTES = 256 * 1024;

export interface SourceServicesDeps {
  store: RoleStore;
  blobs: BlobStore;
  outbox: Outbox<SourceEvent>;
  state: SourceState;
}

const byName = (a: { name: string }, b: { name: string }): number => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

export class SourceServices {
  readonly #store: RoleStore;
  readonly #blobs: BlobStore;
  readonly #outbox: Outbox<SourceEvent>;
  readonly #state: SourceState;
  /** Parsed `_service` files by content; they are immutable. */
  readonly #parsed = new Map<string, ServiceSpec[]>();

  constructor(deps: SourceServicesDeps) {
    this.#store = deps.store;
    this.#blobs = deps.blobs;
    this.#outbox = deps.outbox;
    this.#state = deps.state;
  }

  // ---- reading ---------------------------------------------------------------------------

  run(project: string, pkg: string): ServiceRunRecord | undefined {
    return this.#store.get<ServiceRunRecord>(keys.serviceRun(project, pkg));
  }

  expansion(project: string, pkg: string, rev: number): ServiceExpansion | undefined {
    return this.#store.get<ServiceExpansion>(keys.serviceExpansion(project, pkg, rev));
  }

  async #parse(file: SourceFile): Promise<ServiceSpec[]> {
    const cached = this.#parsed.get(file.sha256);
    if (cached) return cached;
    if (file.size > MAX_SERVICE_XML_BYTES) {
      throw new TooLargeError(`_service: the document is larger than ${MAX_SERVICE_XML_BYTES} bytes`, {
        data: { limit: "service-xml-bytes", max: MAX_SERVICE_XML_BYTES },
      });
    }
    const specs = parseServiceXml(await this.#state.readText(file));
    if (this.#parsed.size > 1024) this.#parsed.clear();
    this.#parsed.set(file.sha256, specs);
    return specs;
  }

  /** The project-wide services: `_project/_service` of the current revision. */
  async projectServices(project: string): Promise<ServiceSpec[]> {
    const p = this.#state.package(project, PROJECT_PACKAGE);
    if (!p || p.rev === 0) return [];
    const f = this.#state.revision(project, PROJECT_PACKAGE).files.find((x) => x.name === SERVICE_FILE);
    if (!f) return [];
    try {
      return await this.#parse(f);
    } catch {
      // Checked when it was committed; an old one that no longer parses adds nothing.
      return [];
    }
  }

  /** A package's services and the project's, appended (OBS), each marked with its origin. */
  async servicesOf(
    project: string,
    pkg: string,
    files: readonly SourceFile[]
  ): Promise<(ServiceSpec & { origin: "package" | "project" })[]> {
    const own = files.find((f) => f.name === SERVICE_FILE);
    const mine = own ? await this.#parse(own).catch(() => []) : [];
    const prj = pkg === PROJECT_PACKAGE ? [] : await this.projectServices(project);
    return [
      ...mine.map((s) => ({ ...s, origin: "package" as const })),
      ...prj.map((s) => ({ ...s, origin: "project" as const })),
    ];
  }

  // ---- commits ---------------------------------------------------------------------------

  /**
   * What a commit of `pkg` does about services: refuses a `_service` that does not parse, and
   * starts a run of the server's services when there are any. `finishing` is the manual run
   * whose output this commit is; it ends in the same transaction.
   */
  commitHooks(project: string, pkg: string, user: string, finishing?: ServiceRunRecord): CommitHooks {
    return {
      prepare: async (files) => {
        const own = files.find((f) => f.name === SERVICE_FILE);
        if (own) await this.#parse(own);
        const servers =
          pkg === PROJECT_PACKAGE ? [] : servicesFor(ServiceRunKind.Server, await this.servicesOf(project, pkg, files));
        return (revision) => {
          const prev = this.run(project, pkg);
          const now = Date.now();
          const next = Math.max(prev?.runId ?? 0, finishing?.runId ?? 0) + 1;
          if (finishing) {
            void this.#store.db.put(keys.serviceRun(project, pkg), {
              ...finishing,
              state: ServiceState.Succeeded,
              ended: now,
              committedRev: revision.rev,
            } satisfies ServiceRunRecord);
            this.#finished(project, pkg, finishing, user, true);
          } else if (prev?.state === ServiceState.Running) {
            this.#cancel(project, pkg, prev, `cancelled: revision ${revision.rev} was committed`);
          }
          if (servers.length > 0) this.#start(project, pkg, revision.rev, ServiceRunKind.Server, user, now, next);
        };
      },
    };
  }

  /** Call inside a transaction: run `runId`, of `kind` on `rev`, starts. */
  #start(
    project: string,
    pkg: string,
    rev: number,
    kind: ServiceRunKind,
    user: string,
    now: number,
    runId: number
  ): void {
    void this.#store.db.put(keys.serviceRun(project, pkg), {
      runId,
      kind,
      rev,
      state: ServiceState.Running,
      user,
      requested: now,
    } satisfies ServiceRunRecord);
    if (kind === ServiceRunKind.Server) {
      const old = this.#lastGood(project, pkg, rev);
      void this.#store.db.put(keys.serviceExpansion(project, pkg, rev), {
        rev,
        runId,
        state: ServiceState.Running,
        files: [],
        ...(old?.length ? { old } : {}),
        time: now,
      } satisfies ServiceExpansion);
    }
    this.#outbox.add(
      makeEvent<SourceEvent>({ type: "service.requested", project, package: pkg, user, rev, runId, kind })
    );
  }

  /** Service files of the newest successful run up to `rev` (kept across a re-run as `old`). */
  #lastGood(project: string, pkg: string, rev: number): SourceFile[] | undefined {
    for (const { value } of this.#store.scan<ServiceExpansion>(keys.serviceExpansionsOf(project, pkg), {
      reverse: true,
    })) {
      if (value.rev > rev) continue;
      if (value.state === ServiceState.Succeeded) return value.files;
      if (value.old) return value.old;
    }
    return undefined;
  }

  #cancel(project: string, pkg: string, run: ServiceRunRecord, error: string): void {
    void this.#store.db.put(keys.serviceRun(project, pkg), {
      ...run,
      state: ServiceState.Failed,
      ended: Date.now(),
      error,
    } satisfies ServiceRunRecord);
    const exp = this.expansion(project, pkg, run.rev);
    if (run.kind === ServiceRunKind.Server && exp?.runId === run.runId) {
      void this.#store.db.put(keys.serviceExpansion(project, pkg, run.rev), {
        ...exp,
        state: ServiceState.Failed,
        error,
      });
    }
    this.#finished(project, pkg, run, run.user, false, error);
  }

  #finished(project: string, pkg: string, run: ServiceRunRecord, user: string, ok: boolean, error?: string): void {
    this.#outbox.add(
      makeEvent<SourceEvent>({
        type: "service.finished",
        project,
        package: pkg,
        user,
        rev: run.rev,
        runId: run.runId,
        kind: run.kind,
        ok,
        ...(error !== undefined ? { error } : {}),
      })
    );
  }

  // ---- runs --------------------------------------------------------------------------------

  /** `kiln service run`: a new run of the package's current revision. */
  async requestRun(
    project: string,
    pkg: string,
    kind: ServiceRunKind,
    user: string
  ): Promise<{ runId: number; rev: number }> {
    this.#state.requirePackage(project, pkg);
    if (pkg === PROJECT_PACKAGE) {
      throw new InvalidInputError(`the services of '${PROJECT_PACKAGE}' run for each package of the project`);
    }
    const rev = this.#state.revision(project, pkg);
    const list = servicesFor(kind, await this.servicesOf(project, pkg, rev.files));
    if (rev.rev === 0 || list.length === 0) {
      const which = kind === ServiceRunKind.Server ? "services the server runs" : `services of mode '${kind}'`;
      throw new NotFoundError(`package '${project}/${pkg}' has no ${which} (no _service, or none that apply)`);
    }
    const running = this.run(project, pkg);
    if (kind !== ServiceRunKind.Server && running?.state === ServiceState.Running) {
      // Cancelling it would leave the revision without its service files until the next run.
      throw new ConflictError(
        `service run ${running.runId} of '${project}/${pkg}' has not ended yet; wait for it (kiln service wait)`
      );
    }
    let runId = 0;
    await this.#store.transact(() => {
      const prev = this.run(project, pkg);
      if (prev?.state === ServiceState.Running) this.#cancel(project, pkg, prev, "cancelled: a new run was asked for");
      runId = (prev?.runId ?? 0) + 1;
      this.#start(project, pkg, rev.rev, kind, user, Date.now(), runId);
    });
    await this.#outbox.flush();
    return { runId, rev: rev.rev };
  }

  /** The run for the service role, or null when `runId` is not the current run any more. */
  async job(project: string, pkg: string, runId: number): Promise<ServiceJob | null> {
    const run = this.run(project, pkg);
    if (!run || run.runId !== runId || run.state !== ServiceState.Running) return null;
    const rev = this.#state.revision(project, pkg, run.rev);
    return {
      project,
      package: pkg,
      rev: run.rev,
      runId,
      kind: run.kind,
      files: rev.files,
      services: servicesFor(run.kind, await this.servicesOf(project, pkg, rev.files)).map(({ origin: _o, ...s }) => s),
      old: run.kind === ServiceRunKind.Server ? (this.expansion(project, pkg, run.rev)?.old ?? []) : [],
    };
  }

  /** Runs asked for and not ended, for a service role that (re)starts. */
  pending(): { project: string; package: string; runId: number }[] {
    const out: { project: string; package: string; runId: number }[] = [];
    for (const { key, value } of this.#store.scan<ServiceRunRecord>(keys.serviceRunsAll())) {
      if (value.state === ServiceState.Running) {
        out.push({ project: String(key[1]), package: String(key[2]), runId: value.runId });
      }
    }
    return out;
  }

  /** Resolves delivered files to stored content (uploaded by the service role before). */
  async #resolve(entries: readonly CommitEntry[]): Promise<SourceFile[]> {
    const out: SourceFile[] = [];
    for (const e of entries) {
      const sha = this.#blobs.byMd5(e.md5);
      const info = sha ? await this.#blobs.stat(sha) : undefined;
      if (!sha || !info || info.size !== e.size) {
        throw new InvalidInputError(`service file ${quoteForMessage(e.name)}: content ${e.md5} was not uploaded`);
      }
      out.push({ name: e.name, md5: e.md5, sha256: sha, size: e.size });
    }
    return out;
  }

  #checkCounts(names: readonly string[], total: number): void {
    const seen = new Set<string>();
    for (const n of names) {
      if (seen.has(n)) throw new InvalidInputError(`service file ${quoteForMessage(n)} is delivered twice`);
      seen.add(n);
    }
    const max = this.#state.limits.maxFiles;
    if (total > max) {
      throw new TooLargeError(`the sources with the services' files would hold ${total} files, more than ${max}`, {
        data: { limit: "max-files", max, size: total },
      });
    }
  }

  /**
   * The service role's outcome of run `runId`. Returns whether it was accepted (false for a run
   * that is not current) and, for a manual run, the revision its files became.
   */
  async deliver(
    project: string,
    pkg: string,
    r: { runId: number; ok: boolean; files: CommitEntry[]; error?: string; output: string }
  ): Promise<{ accepted: boolean; rev?: number }> {
    const run = this.run(project, pkg);
    if (!run || run.runId !== r.runId || run.state !== ServiceState.Running) return { accepted: false };
    const bytes = Buffer.from(r.output, "utf8");
    const output = bytes.subarray(Math.max(0, bytes.length - MAX_SERVICE_OUTPUT_BYTES)).toString("utf8");
    const now = Date.now();
    if (!r.ok) {
      // One line: it is shown in result tables.
      const error = (r.error ?? "").split("\n")[0]!.trim().slice(0, 4096) || "the service run failed";
      await this.#store.transact(() => {
        void this.#store.db.put(keys.serviceRun(project, pkg), {
          ...run,
          state: ServiceState.Failed,
          ended: now,
          error,
          output,
        } satisfies ServiceRunRecord);
        const exp = this.expansion(project, pkg, run.rev);
        if (run.kind === ServiceRunKind.Server && exp) {
          void this.#store.db.put(keys.serviceExpansion(project, pkg, run.rev), {
            ...exp,
            state: ServiceState.Failed,
            files: [],
            error,
            time: now,
          } satisfies ServiceExpansion);
        }
        this.#finished(project, pkg, run, run.user, false, error);
      });
      await this.#outbox.flush();
      return { accepted: true };
    }
    const limits = this.#state.limits;
    for (const f of r.files) {
      if (f.size > limits.maxFileBytes) {
        throw new TooLargeError(
          `service file ${quoteForMessage(f.name)} is ${f.size} bytes, more than the limit of ${limits.maxFileBytes}`,
          { data: { limit: "max-file-size", max: limits.maxFileBytes, size: f.size } }
        );
      }
    }
    const rev = this.#state.revision(project, pkg, run.rev);
    if (run.kind !== ServiceRunKind.Server) return this.#commitManual(project, pkg, run, r.files, output);

    for (const f of r.files) {
      validateFileName(f.name, { allowServicePrefix: true });
      const m = /^_service:([^:]+):(.+)$/s.exec(f.name);
      if (!m)
        throw new InvalidInputError(`service file ${quoteForMessage(f.name)} is not named _service:<service>:<file>`);
      validateServiceName(m[1]!);
      validateFileName(m[2]!);
    }
    this.#checkCounts(
      r.files.map((f) => f.name),
      rev.files.length + r.files.length
    );
    const files = (await this.#resolve(r.files)).sort(byName);
    const xsrcmd5 = computeSrcmd5([...rev.files, ...files]);
    await this.#store.transact(() => {
      void this.#store.db.put(keys.serviceExpansion(project, pkg, run.rev), {
        rev: run.rev,
        runId: run.runId,
        state: ServiceState.Succeeded,
        files,
        xsrcmd5,
        time: now,
      } satisfies ServiceExpansion);
      void this.#store.db.put(keys.serviceRun(project, pkg), {
        ...run,
        state: ServiceState.Succeeded,
        ended: now,
        output,
      } satisfies ServiceRunRecord);
      for (const f of files) void this.#store.db.put(keys.sourceRef(f.md5, project, pkg), 1);
      this.#finished(project, pkg, run, run.user, true);
    });
    await this.#outbox.flush();
    return { accepted: true };
  }

  /** A manual run's files replace or join the current files as a new revision by its user. */
  async #commitManual(
    project: string,
    pkg: string,
    run: ServiceRunRecord,
    delivered: CommitEntry[],
    output: string
  ): Promise<{ accepted: boolean; rev?: number }> {
    for (const f of delivered) validateFileName(f.name);
    const current = this.#state.revision(project, pkg);
    const merged = new Map<string, CommitEntry>(current.files.map((f) => [f.name, f]));
    for (const f of delivered) merged.set(f.name, f);
    this.#checkCounts(
      delivered.map((f) => f.name),
      merged.size
    );
    await this.#resolve(delivered);
    const withOutput = { ...run, output };
    const r = await this.#state.commit(
      project,
      pkg,
      [...merged.values()].map((f) => ({ name: f.name, md5: f.md5, size: f.size })),
      run.user,
      `service run ${run.runId} (${run.kind})`,
      () => true,
      this.commitHooks(project, pkg, run.user, withOutput)
    );
    if ("missing" in r) throw new InvalidInputError(`the files of service run ${run.runId} are not all stored`);
    if (r.revision.rev === current.rev) {
      // Nothing changed: no revision was made, so the run ends here.
      await this.#store.transact(() => {
        void this.#store.db.put(keys.serviceRun(project, pkg), {
          ...withOutput,
          state: ServiceState.Succeeded,
          ended: Date.now(),
          committedRev: current.rev,
        } satisfies ServiceRunRecord);
        this.#finished(project, pkg, run, run.user, true);
      });
      await this.#outbox.flush();
    }
    return { accepted: true, rev: r.revision.rev };
  }

  /** `kiln service status`. */
  async status(project: string, pkg: string): Promise<ServiceStatusView> {
    const rec = this.#state.requirePackage(project, pkg);
    const rev = this.#state.revision(project, pkg);
    const run = this.run(project, pkg);
    const expansion = rec.rev > 0 ? this.expansion(project, pkg, rec.rev) : undefined;
    return {
      project,
      package: pkg,
      rev: rec.rev,
      services: await this.servicesOf(project, pkg, rev.files),
      ...(run ? { run } : {}),
      ...(expansion ? { expansion } : {}),
    };
  }
}

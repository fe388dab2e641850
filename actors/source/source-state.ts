/**
 * The source role's state and every change to it. Actors serialise the calls (one Project actor
 * per project, one Package actor per package); the functions here validate, write one LMDB
 * transaction per change together with its event (outbox), and never leave a half-done change:
 * every check comes before the first write.
 */
import type { BlobStore, Outbox, RoleStore } from "../../storage/index.ts";
import { keys, type Key } from "../../storage/index.ts";
import { ConflictError, InvalidInputError, NotFoundError, TooLargeError, makeEvent } from "../../transport/index.ts";
import { concatBuildConfig } from "../common/prjconf.ts";
import { validateFileName, validatePackageName, validateProjectName, validateRepositoryName } from "../common/names.ts";
import type { SourceFile } from "../common/model.ts";
import {
  canWritePackage,
  canWriteProject,
  isHidden,
  lockedByOwnFlag,
  sourcesHidden,
  type Principal,
} from "./access.ts";
import {
  expandRepositoryPath,
  findPathLoop,
  normaliseProjectMeta,
  parsePackageMeta,
  parseProjectMeta,
  renderPackageMeta,
  renderProjectMeta,
  type Flags,
  type PackageMeta,
  type ProjectMeta,
  type RepositoryMeta,
} from "./meta-xml.ts";
import { computeSrcmd5 } from "./srcmd5.ts";
import type {
  BuildConfigView,
  CommitEntry,
  ConfigRevision,
  MetaRevision,
  PackageRecord,
  ProjectRecord,
  Revision,
  SourceEvent,
} from "./protocol.ts";

/** Size limits of what the source role stores; `kiln up`/`kiln serve` set them with flags. */
export interface SourceLimits {
  /** Largest single file. @default 4 GiB */
  maxFileBytes: number;
  /** Most files in one package revision. @default 10,000 */
  maxFiles: number;
  /** Largest project config. @default 1 MiB */
  maxConfigBytes: number;
}

export const DEFAULT_SOURCE_LIMITS: SourceLimits = {
  maxFileBytes: 4 * 1024 ** 3,
  maxFiles: 10_000,
  maxConfigBytes: 1024 * 1024,
};

export interface SourceStateDeps {
  store: RoleStore;
  blobs: BlobStore;
  outbox: Outbox<SourceEvent>;
  limits: SourceLimits;
}

/** What a commit does besides making the revision (source services: source-services.ts). */
export interface CommitHooks {
  /**
   * Called with the new revision's files before anything is written; may refuse the commit by
   * throwing. Returns what to write in the revision's transaction (synchronous LMDB puts and
   * outbox events only).
   */
  prepare(files: readonly SourceFile[]): Promise<(revision: Revision) => void>;
}

/**
 * Names for a refusal: those in projects the caller may see, quoted; the rest only counted, so a
 * refusal does not reveal hidden projects (`kind` is the singular and plural of what is counted).
 */
function listNames(
  items: readonly { name: string; project: string }[],
  visible: (project: string) => boolean,
  kind: readonly [string, string]
): string {
  const shown = items.filter((i) => visible(i.project)).map((i) => `'${i.name}'`);
  const hidden = items.length - shown.length;
  if (hidden > 0) shown.push(`${hidden} ${hidden === 1 ? kind[0] : kind[1]} you cannot see`);
  return shown.join(", ");
}

function lockedError(what: string): ConflictError {
  return new ConflictError(
    `${what} is locked: nothing in it may change until a maintainer unlocks it (a meta change that only removes the <enable/> entries of its <lock>)`,
    { data: { locked: true } }
  );
}

/**
 * Whether `next` differs from `prev` only in its `lock` flag and is no longer locked: the one change
 * OBS allows to a locked project or package (its `unlock` command).
 */
function onlyUnlocks<M extends { flags: Flags }>(prev: M, next: M, render: (m: M) => string): boolean {
  if (lockedByOwnFlag(next)) return false;
  const flags: Flags = { ...next.flags };
  if (prev.flags.lock) flags.lock = prev.flags.lock;
  else delete flags.lock;
  return render({ ...next, flags }) === render(prev);
}

export class SourceState {
  readonly #store: RoleStore;
  readonly #blobs: BlobStore;
  readonly #outbox: Outbox<SourceEvent>;
  readonly limits: SourceLimits;
  /** Counts changes of who maintains what, so answers derived from the metas can be cached. */
  #metaGeneration = 0;
  readonly #maintainers = new Map<string, { generation: number; answer: boolean }>();

  constructor(deps: SourceStateDeps) {
    this.#store = deps.store;
    this.#blobs = deps.blobs;
    this.#outbox = deps.outbox;
    this.limits = deps.limits;
  }

  // ---- reading ---------------------------------------------------------------------------

  project(name: string): ProjectRecord | undefined {
    return this.#store.get<ProjectRecord>(keys.project(name));
  }

  requireProject(name: string): ProjectRecord {
    validateProjectName(name);
    const p = this.project(name);
    if (!p) throw new NotFoundError(`project '${name}' does not exist`);
    return p;
  }

  package(project: string, name: string): PackageRecord | undefined {
    return this.#store.get<PackageRecord>(keys.package(project, name));
  }

  requirePackage(project: string, name: string): PackageRecord {
    this.requireProject(project);
    validatePackageName(name);
    const p = this.package(project, name);
    if (!p) throw new NotFoundError(`package '${name}' does not exist in project '${project}'`);
    return p;
  }

  /**
   * Refuses a change to a locked project or package (OBS: nobody may modify it, admins neither,
   * until it is unlocked). Call after the access checks, which must not tell an outsider that a
   * hidden project is locked.
   */
  requireUnlocked(project: string, pkg?: string): void {
    const prj = this.project(project);
    if (prj && lockedByOwnFlag(prj.meta)) throw lockedError(`project '${project}'`);
    const pk = pkg === undefined ? undefined : this.package(project, pkg);
    if (pk && lockedByOwnFlag(pk.meta)) throw lockedError(`package '${project}/${pkg}'`);
  }

  /**
   * Whether the caller may commit to some package: an admin, or a maintainer (in person or by a
   * group) of some project or package. Uploads are for commits, so only they may upload. The
   * answer is cached until a meta changes.
   */
  maySomewhereCommit(caller: Principal): boolean {
    if (caller.admin) return true;
    if (caller.anonymous || caller.service) return false;
    const key = `${caller.user}\u0000${[...caller.groups].sort().join("\u0000")}`;
    const cached = this.#maintainers.get(key);
    if (cached && cached.generation === this.#metaGeneration) return cached.answer;
    const generation = this.#metaGeneration;
    let answer = false;
    for (const prj of this.listProjects()) {
      if (canWriteProject(caller, prj.meta)) answer = true;
      else answer = this.listPackages(prj.name).some((pkg) => canWritePackage(caller, prj.meta, pkg.meta));
      if (answer) break;
    }
    if (this.#maintainers.size > 10_000) this.#maintainers.clear();
    this.#maintainers.set(key, { generation, answer });
    return answer;
  }

  listProjects(): ProjectRecord[] {
    return [...this.#store.scan<ProjectRecord>(keys.projectsAll())].map((e) => e.value);
  }

  listPackages(project: string): PackageRecord[] {
    return [...this.#store.scan<PackageRecord>(keys.packagesOf(project))].map((e) => e.value);
  }

  revision(project: string, pkg: string, rev?: number): Revision {
    const p = this.requirePackage(project, pkg);
    const r = rev ?? p.rev;
    if (r === 0) return { rev: 0, srcmd5: computeSrcmd5([]), user: "", comment: "", time: p.created, files: [] };
    const found = this.#store.get<Revision>(keys.revision(project, pkg, r));
    if (!found) throw new NotFoundError(`package '${project}/${pkg}' has no revision ${r}`);
    return found;
  }

  history(project: string, pkg: string): Revision[] {
    this.requirePackage(project, pkg);
    return [...this.#store.scan<Revision>(keys.revisionsOf(project, pkg))].map((e) => e.value);
  }

  /** The changes of a project's meta (or a package's, given `pkg`), oldest first. */
  metaHistory(project: string, pkg?: string): MetaRevision[] {
    if (pkg === undefined) this.requireProject(project);
    else this.requirePackage(project, pkg);
    const prefix = pkg === undefined ? keys.projectMetaRevisionsOf(project) : keys.packageMetaRevisionsOf(project, pkg);
    return [...this.#store.scan<MetaRevision>(prefix)].map((e) => e.value);
  }

  /** Appends a meta change to a history; call inside transact. */
  #addMetaRevision(prefix: Key, key: (rev: number) => Key, change: Omit<MetaRevision, "rev">): void {
    const last = [...this.#store.scan<MetaRevision>(prefix, { reverse: true, limit: 1 })][0]?.value.rev ?? 0;
    void this.#store.db.put(key(last + 1), { rev: last + 1, ...change });
  }

  config(project: string, rev?: number): ConfigRevision {
    const p = this.requireProject(project);
    const r = rev ?? p.configRev;
    if (r === 0) return { rev: 0, text: "", user: "", comment: "", time: p.created };
    const c = this.#store.get<ConfigRevision>(keys.projectConfig(project, r));
    if (!c) throw new NotFoundError(`project '${project}' has no config revision ${r}`);
    return c;
  }

  /** The repository path of P/R expanded as OBS does ({@link expandRepositoryPath}). */
  expandedPath(project: string, repository: string): { project: string; repository: string }[] {
    return expandRepositoryPath((p) => this.project(p)?.meta.repositories, project, repository);
  }

  /**
   * The build config of P/R: the configs along R's expanded path, base first, concatenated as
   * OBS's source server does. A project `visible` says the caller may not see contributes
   * nothing, as if it had no config.
   */
  buildConfig(
    project: string,
    repository: string,
    visible: (project: string) => boolean = () => true
  ): BuildConfigView {
    const p = this.requireProject(project);
    if (!p.meta.repositories.some((r) => r.name === repository)) {
      throw new NotFoundError(`project '${project}' has no repository '${repository}'`);
    }
    const path = this.expandedPath(project, repository);
    const layers = [...path].reverse().map((e) => ({
      ...e,
      text: this.project(e.project) && visible(e.project) ? this.config(e.project).text : "",
    }));
    return { project, repository, text: concatBuildConfig(layers), layers, path };
  }

  // ---- projects --------------------------------------------------------------------------

  /**
   * Creates or replaces a project's meta and records the change, with `comment`, in the meta's
   * history. `visible` says which other projects the caller may see: a path to one they may not is
   * refused as if it did not exist. `force` removes repositories others build against. When a
   * user who is not an admin creates a project, they become its maintainer (else they could not
   * change it afterwards).
   */
  async putProjectMeta(
    name: string,
    xml: string,
    caller: Principal,
    opts: { visible?: (project: string) => boolean; force?: boolean; comment?: string } = {}
  ): Promise<{ xml: string; created: boolean }> {
    const visible = opts.visible ?? (() => true);
    validateProjectName(name);
    let meta = parseProjectMeta(xml, name);
    const prev = this.project(name);
    if (prev && lockedByOwnFlag(prev.meta) && renderProjectMeta(meta) !== prev.xml) {
      if (!onlyUnlocks(prev.meta, meta, renderProjectMeta)) throw lockedError(`project '${name}'`);
    }
    if (!prev && !caller.admin && !meta.persons.some((e) => e.userid === caller.user && e.role === "maintainer")) {
      meta = normaliseProjectMeta({ ...meta, persons: [...meta.persons, { userid: caller.user, role: "maintainer" }] });
    }
    this.#checkPaths(meta, visible);
    if (prev) this.#checkHiding(prev, meta);
    if (prev && !opts.force) this.#checkRemovedRepositories(prev, meta, visible);
    const rendered = renderProjectMeta(meta);
    if (prev && prev.xml === rendered) return { xml: rendered, created: false };
    const now = Date.now();
    const rec: ProjectRecord = {
      name,
      meta,
      xml: rendered,
      created: prev?.created ?? now,
      updated: now,
      configRev: prev?.configRev ?? 0,
    };
    const repos = (m: ProjectMeta | undefined): { name: string; archs: string[] }[] =>
      (m?.repositories ?? []).map((r) => ({ name: r.name, archs: r.archs }));
    await this.#store.transact(() => {
      void this.#store.db.put(keys.project(name), rec);
      this.#metaGeneration++;
      this.#addMetaRevision(keys.projectMetaRevisionsOf(name), (rev) => keys.projectMetaRevision(name, rev), {
        xml: rendered,
        user: caller.user,
        comment: opts.comment ?? "",
        time: now,
      });
      this.#outbox.add(
        makeEvent<SourceEvent>({
          type: "project.meta-changed",
          project: name,
          user: caller.user,
          repositories: repos(meta),
          previous: repos(prev?.meta),
          created: !prev,
        })
      );
    });
    await this.#outbox.flush();
    return { xml: rendered, created: !prev };
  }

  #checkPaths(meta: ProjectMeta, visible: (project: string) => boolean): void {
    const known = (p: string): ProjectRecord | undefined => {
      const rec = this.project(p);
      return rec && visible(p) ? rec : undefined;
    };
    for (const repo of meta.repositories) {
      for (const e of repo.paths) {
        if (e.project === meta.name) {
          if (!meta.repositories.some((r) => r.name === e.repository)) {
            throw new InvalidInputError(
              `repository '${repo.name}' has a path to '${e.project}/${e.repository}', which does not exist`
            );
          }
          continue;
        }
        const target = known(e.project);
        if (!target)
          throw new InvalidInputError(
            `repository '${repo.name}' has a path to project '${e.project}', which does not exist`
          );
        if (!target.meta.repositories.some((r) => r.name === e.repository)) {
          throw new InvalidInputError(
            `repository '${repo.name}' has a path to '${e.project}/${e.repository}', which does not exist`
          );
        }
      }
    }
    const lookup = (p: string): RepositoryMeta[] | undefined =>
      p === meta.name ? meta.repositories : known(p)?.meta.repositories;
    for (const repo of meta.repositories) {
      const loop = findPathLoop(lookup, meta.name, repo.name);
      if (loop) throw new InvalidInputError(`repository '${repo.name}': ${loop}`);
    }
  }

  /**
   * OBS refuses to remove a repository that other projects' repositories build against (their
   * paths would name nothing); `force` removes it anyway and leaves those paths dangling, as
   * deleting a whole project with `--force` does.
   */
  #checkRemovedRepositories(prev: ProjectRecord, meta: ProjectMeta, visible: (project: string) => boolean): void {
    const kept = new Set(meta.repositories.map((r) => r.name));
    const removed = prev.meta.repositories.filter((r) => !kept.has(r.name)).map((r) => r.name);
    if (removed.length === 0) return;
    const gone = new Set(removed);
    const users = this.dependentsOf(prev.name).filter((u) => gone.has(u.target));
    if (users.length === 0) return;
    const used = [...new Set(users.map((u) => u.target))];
    const what = `${used.length === 1 ? "repository" : "repositories"} ${used.map((r) => `'${r}'`).join(", ")}`;
    throw new ConflictError(
      `project '${prev.name}': cannot remove ${what}, used by ${listNames(
        users.map((u) => ({ name: `${u.project}/${u.repository}`, project: u.project })),
        visible,
        ["repository of a project", "repositories of projects"]
      )}; change with --force to break them`,
      { data: { project: prev.name, repositories: used } }
    );
  }

  /**
   * OBS allows hiding only at creation: what was public may already have been read, so hiding it
   * later would only pretend. A project cannot turn `access` off, and sources that were readable
   * (a package with revisions) cannot be hidden by `sourceaccess`.
   */
  #checkHiding(prev: ProjectRecord, meta: ProjectMeta): void {
    if (!isHidden(prev.meta) && isHidden(meta)) {
      throw new ConflictError(
        `project '${prev.name}': 'access' can only be disabled when the project is created (it may already have been seen)`
      );
    }
    for (const pkg of this.listPackages(prev.name)) {
      if (pkg.rev > 0 && !sourcesHidden(prev.meta, pkg.meta) && sourcesHidden(meta, pkg.meta)) {
        throw new ConflictError(
          `project '${prev.name}': 'sourceaccess' would hide the sources of package '${pkg.name}', which were readable; sources can only be hidden before the first commit`
        );
      }
    }
  }

  async putConfig(project: string, text: string, user: string, comment: string): Promise<{ rev: number }> {
    const p = this.requireProject(project);
    this.requireUnlocked(project);
    const bytes = Buffer.byteLength(text);
    if (bytes > this.limits.maxConfigBytes) {
      throw new TooLargeError(
        `project config of '${project}' is ${bytes} bytes, more than the limit of ${this.limits.maxConfigBytes}`,
        { data: { limit: "max-config-size", max: this.limits.maxConfigBytes, size: bytes } }
      );
    }
    if (text.includes("\u0000")) throw new InvalidInputError("project config contains a NUL character");
    if (p.configRev > 0 && this.config(project).text === text) return { rev: p.configRev };
    const rev = p.configRev + 1;
    await this.#store.transact(() => {
      void this.#store.db.put(keys.projectConfig(project, rev), { rev, text, user, comment, time: Date.now() });
      void this.#store.db.put(keys.project(project), { ...p, configRev: rev, updated: Date.now() });
      this.#outbox.add(makeEvent<SourceEvent>({ type: "project.config-changed", project, user, rev }));
    });
    await this.#outbox.flush();
    return { rev };
  }

  /**
   * The repositories of other projects that build against `project`: each with the repository of
   * `project` (`target`) its path names.
   */
  dependentsOf(project: string): { project: string; repository: string; target: string }[] {
    const out: { project: string; repository: string; target: string }[] = [];
    for (const p of this.listProjects()) {
      if (p.name === project) continue;
      for (const r of p.meta.repositories) {
        const targets = new Set(r.paths.filter((e) => e.project === project).map((e) => e.repository));
        for (const target of targets) out.push({ project: p.name, repository: r.name, target });
      }
    }
    return out;
  }

  /**
   * Deletes a project with its packages and configs. Refused while other projects build against
   * it, unless `force`; the refusal names only the projects `visible` says the caller may see.
   */
  async deleteProject(
    project: string,
    user: string,
    opts: { force?: boolean; visible?: (project: string) => boolean; comment?: string } = {}
  ): Promise<void> {
    const visible = opts.visible ?? (() => true);
    const prj = this.requireProject(project);
    this.requireUnlocked(project);
    const users = [...new Set(this.dependentsOf(project).map((u) => u.project))];
    if (users.length && !opts.force) {
      const names = listNames(
        users.map((u) => ({ name: u, project: u })),
        visible,
        ["project", "projects"]
      );
      throw new ConflictError(`project '${project}' is used by ${names}; delete with --force to break them`);
    }
    const packages = this.listPackages(project);
    await this.#store.transact(() => {
      for (const pkg of packages) this.#removePackage(project, pkg.name);
      for (const k of this.#store.scanKeys(keys.projectConfigsOf(project))) void this.#store.db.remove(k);
      for (const k of this.#store.scanKeys(keys.projectMetaRevisionsOf(project))) void this.#store.db.remove(k);
      void this.#store.db.remove(keys.project(project));
      this.#metaGeneration++;
      this.#outbox.add(
        makeEvent<SourceEvent>({
          type: "project.deleted",
          project,
          user,
          repositories: prj.meta.repositories.map((r) => ({ name: r.name, archs: r.archs })),
          packages: packages.map((p) => p.name),
          comment: opts.comment ?? "",
        })
      );
    });
    await this.#outbox.flush();
  }

  // ---- packages --------------------------------------------------------------------------

  /** Creates or replaces a package's meta and records the change, with `comment`, in its history. */
  async putPackageMeta(
    project: string,
    name: string,
    xml: string,
    user: string,
    comment = ""
  ): Promise<{ xml: string; created: boolean }> {
    const prj = this.requireProject(project);
    validatePackageName(name);
    const meta = parsePackageMeta(xml, { project, name });
    const rendered = renderPackageMeta(meta);
    const prev = this.package(project, name);
    if (prev && prev.xml === rendered) return { xml: rendered, created: false };
    if (lockedByOwnFlag(prj.meta)) throw lockedError(`project '${project}'`);
    if (prev && lockedByOwnFlag(prev.meta) && !onlyUnlocks(prev.meta, meta, renderPackageMeta)) {
      throw lockedError(`package '${project}/${name}'`);
    }
    if (prev && prev.rev > 0 && !sourcesHidden(prj.meta, prev.meta) && sourcesHidden(prj.meta, meta)) {
      throw new ConflictError(
        `package '${project}/${name}': 'sourceaccess' can only be disabled before the first commit (its sources may already have been read)`
      );
    }
    const now = Date.now();
    const rec: PackageRecord = prev
      ? { ...prev, meta, xml: rendered, updated: now }
      : { project, name, meta, xml: rendered, rev: 0, srcmd5: computeSrcmd5([]), created: now, updated: now };
    await this.#store.transact(() => {
      void this.#store.db.put(keys.package(project, name), rec);
      this.#metaGeneration++;
      this.#addMetaRevision(
        keys.packageMetaRevisionsOf(project, name),
        (rev) => keys.packageMetaRevision(project, name, rev),
        { xml: rendered, user, comment, time: now }
      );
      this.#outbox.add(
        makeEvent<SourceEvent>({ type: "package.meta-changed", project, package: name, user, created: !prev })
      );
    });
    await this.#outbox.flush();
    return { xml: rendered, created: !prev };
  }

  /** A package record, created with a default meta when it does not exist yet (first commit). */
  #packageOrNew(project: string, name: string): PackageRecord {
    const existing = this.package(project, name);
    if (existing) return existing;
    const xml = `<package name="${name}" project="${project}"><title/><description/></package>`;
    const meta = parsePackageMeta(xml, { project, name });
    const now = Date.now();
    return {
      project,
      name,
      meta,
      xml: renderPackageMeta(meta),
      rev: 0,
      srcmd5: computeSrcmd5([]),
      created: now,
      updated: now,
    };
  }

  /** The packages whose revisions hold content with this md5 (they may be deleted since). */
  referencesOf(md5: string): { project: string; package: string }[] {
    return [...this.#store.scanKeys(keys.sourceRefsOf(md5))].map((k) => ({
      project: String(k[2]),
      package: String(k[3]),
    }));
  }

  /**
   * osc's commit: the complete file list with md5s. Files the caller cannot use are answered
   * back as missing; when none is missing a new revision is made (or none, when nothing
   * changed). `usable(md5)` says whether stored content counts as present for this caller: the
   * store is shared by every project, and naming an md5 must not hand out content that the
   * caller has neither uploaded nor may read (see SourceRole).
   */
  async commit(
    project: string,
    pkg: string,
    entries: CommitEntry[],
    user: string,
    comment: string,
    usable: (md5: string) => boolean = () => true,
    hooks?: CommitHooks
  ): Promise<{ missing: CommitEntry[] } | { revision: Revision }> {
    this.requireProject(project);
    validatePackageName(pkg);
    if (entries.length > this.limits.maxFiles) {
      throw new TooLargeError(
        `a package may hold at most ${this.limits.maxFiles} files (the commit lists ${entries.length})`,
        { data: { limit: "max-files", max: this.limits.maxFiles, size: entries.length } }
      );
    }
    const names = new Set<string>();
    for (const e of entries) {
      validateFileName(e.name);
      if (names.has(e.name)) throw new InvalidInputError(`file '${e.name}' is listed twice`);
      names.add(e.name);
      if (e.size > this.limits.maxFileBytes) {
        throw new TooLargeError(
          `file '${e.name}' is ${e.size} bytes, more than the limit of ${this.limits.maxFileBytes}`,
          { data: { limit: "max-file-size", max: this.limits.maxFileBytes, size: e.size } }
        );
      }
    }
    const files: SourceFile[] = [];
    const missing: CommitEntry[] = [];
    for (const e of entries) {
      const sha = usable(e.md5) ? this.#blobs.byMd5(e.md5) : undefined;
      const info = sha ? await this.#blobs.stat(sha) : undefined;
      if (!sha || !info) missing.push(e);
      else if (info.size !== e.size) {
        throw new InvalidInputError(
          `file '${e.name}' claims md5 ${e.md5} with ${e.size} bytes, but that content has ${info.size}`
        );
      } else files.push({ name: e.name, md5: e.md5, sha256: sha, size: info.size });
    }
    if (missing.length) return { missing };
    files.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const srcmd5 = computeSrcmd5(files);
    const rec = this.#packageOrNew(project, pkg);
    if (rec.rev > 0 && rec.srcmd5 === srcmd5) return { revision: this.revision(project, pkg) };
    const also = await hooks?.prepare(files);
    const rev = rec.rev + 1;
    const revision: Revision = { rev, srcmd5, user, comment, time: Date.now(), files };
    const created = this.package(project, pkg) === undefined;
    const gone = await this.#store.transact(() => {
      // Garbage collection may have removed unreferenced content since it was looked up; it
      // removes in its own write transaction, so checking here decides it either way.
      const collected = files.filter((f) => this.#store.get(keys.blob(f.sha256)) === undefined);
      if (collected.length) return collected;
      void this.#store.db.put(keys.revision(project, pkg, rev), revision);
      void this.#store.db.put(keys.package(project, pkg), { ...rec, rev, srcmd5, updated: revision.time });
      for (const f of files) void this.#store.db.put(keys.sourceRef(f.md5, project, pkg), 1);
      this.#outbox.add(
        makeEvent<SourceEvent>({
          type: "source.committed",
          project,
          package: pkg,
          user,
          rev,
          srcmd5,
          files: files.length,
          created,
        })
      );
      also?.(revision);
      return [];
    });
    if (gone.length) {
      const names = new Set(gone.map((f) => f.name));
      return { missing: entries.filter((e) => names.has(e.name)) };
    }
    await this.#outbox.flush();
    return { revision };
  }

  async deletePackage(project: string, pkg: string, user: string, comment = ""): Promise<void> {
    this.requirePackage(project, pkg);
    this.requireUnlocked(project, pkg);
    await this.#store.transact(() => {
      this.#removePackage(project, pkg);
      this.#outbox.add(makeEvent<SourceEvent>({ type: "package.deleted", project, package: pkg, user, comment }));
    });
    await this.#outbox.flush();
  }

  /** Removes a package's record, revisions and content references; call inside transact. */
  #removePackage(project: string, pkg: string): void {
    const md5s = new Set<string>();
    for (const { key, value } of this.#store.scan<Revision>(keys.revisionsOf(project, pkg))) {
      for (const f of value.files) md5s.add(f.md5);
      void this.#store.db.remove(key);
    }
    // Service files are content of the package too (source-services.ts).
    for (const { key, value } of this.#store.scan<{ files: SourceFile[] }>(keys.serviceExpansionsOf(project, pkg))) {
      for (const f of value.files) md5s.add(f.md5);
      void this.#store.db.remove(key);
    }
    void this.#store.db.remove(keys.serviceRun(project, pkg));
    for (const m of md5s) void this.#store.db.remove(keys.sourceRef(m, project, pkg));
    for (const k of this.#store.scanKeys(keys.packageMetaRevisionsOf(project, pkg))) void this.#store.db.remove(k);
    void this.#store.db.remove(keys.package(project, pkg));
    this.#metaGeneration++;
  }

  /** Reads a small stored file (spec, _constraints) as text. */
  async readText(file: SourceFile, maxBytes = 4 * 1024 * 1024): Promise<string> {
    if (file.size > maxBytes)
      throw new InvalidInputError(`file '${file.name}' is too large to parse (${file.size} bytes)`);
    const data = await this.#blobs.read(file.sha256, 0, file.size);
    return Buffer.from(data).toString("utf8");
  }

  validateRepository(name: string): void {
    validateRepositoryName(name);
  }

  meta(): {
    project: (p: string) => ProjectMeta | undefined;
    package: (p: string, k: string) => PackageMeta | undefined;
  } {
    return { project: (p) => this.project(p)?.meta, package: (p, k) => this.package(p, k)?.meta };
  }
}

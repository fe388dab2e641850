/**
 * The source role's state and every change to it. Actors serialise the calls (one Project actor
 * per project, one Package actor per package); the functions here validate, write one LMDB
 * transaction per change together with its event (outbox), and never leave a half-done change:
 * every check comes before the first write.
 */
import type { BlobStore, Outbox, RoleStore } from "../../storage/index.ts";
import { keys } from "../../storage/index.ts";
import { ConflictError, InvalidInputError, NotFoundError, makeEvent } from "../../transport/index.ts";
import { validateFileName, validatePackageName, validateProjectName, validateRepositoryName } from "../common/names.ts";
import type { SourceFile } from "../common/model.ts";
import {
  findPathLoop,
  parsePackageMeta,
  parseProjectMeta,
  renderPackageMeta,
  renderProjectMeta,
  type PackageMeta,
  type ProjectMeta,
  type RepositoryMeta,
} from "./meta-xml.ts";
import { computeSrcmd5 } from "./srcmd5.ts";
import type {
  BuildConfigView,
  CommitEntry,
  ConfigRevision,
  PackageRecord,
  ProjectRecord,
  Revision,
  SourceEvent,
} from "./protocol.ts";

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

export class SourceState {
  readonly #store: RoleStore;
  readonly #blobs: BlobStore;
  readonly #outbox: Outbox<SourceEvent>;
  readonly limits: SourceLimits;

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

  config(project: string, rev?: number): ConfigRevision {
    const p = this.requireProject(project);
    const r = rev ?? p.configRev;
    if (r === 0) return { rev: 0, text: "", user: "", comment: "", time: p.created };
    const c = this.#store.get<ConfigRevision>(keys.projectConfig(project, r));
    if (!c) throw new NotFoundError(`project '${project}' has no config revision ${r}`);
    return c;
  }

  /**
   * The repository path of P/R expanded as OBS does: R itself, then each path entry followed by
   * its own expanded path, each repository once.
   */
  expandedPath(project: string, repository: string): { project: string; repository: string }[] {
    const out: { project: string; repository: string }[] = [];
    const seen = new Set<string>();
    const visit = (p: string, r: string): void => {
      const k = `${p}\u0000${r}`;
      if (seen.has(k)) return;
      seen.add(k);
      out.push({ project: p, repository: r });
      const repo = this.project(p)?.meta.repositories.find((x) => x.name === r);
      for (const e of repo?.paths ?? []) visit(e.project, e.repository);
    };
    visit(project, repository);
    return out;
  }

  buildConfig(project: string, repository: string): BuildConfigView {
    const p = this.requireProject(project);
    if (!p.meta.repositories.some((r) => r.name === repository)) {
      throw new NotFoundError(`project '${project}' has no repository '${repository}'`);
    }
    const path = this.expandedPath(project, repository);
    // Base first: the configs of the end of the path come before the project's own.
    const layers = [...path]
      .reverse()
      .map((e) => ({ ...e, text: this.project(e.project) ? this.config(e.project).text : "" }));
    const text = layers.map((l) => `%define _repository ${l.repository}\n${l.text}`).join("\n");
    return { project, repository, text, layers, path };
  }

  // ---- projects --------------------------------------------------------------------------

  async putProjectMeta(name: string, xml: string, user: string): Promise<{ xml: string; created: boolean }> {
    validateProjectName(name);
    const meta = parseProjectMeta(xml, name);
    this.#checkPaths(meta);
    const rendered = renderProjectMeta(meta);
    const prev = this.project(name);
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
    await this.#store.transact(() => {
      void this.#store.db.put(keys.project(name), rec);
      this.#outbox.add(
        makeEvent<SourceEvent>({
          type: "project.meta-changed",
          project: name,
          user,
          repositories: meta.repositories.map((r) => ({ name: r.name, archs: r.archs })),
        })
      );
    });
    await this.#outbox.flush();
    return { xml: rendered, created: !prev };
  }

  #checkPaths(meta: ProjectMeta): void {
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
        const target = this.project(e.project);
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
      p === meta.name ? meta.repositories : this.project(p)?.meta.repositories;
    for (const repo of meta.repositories) {
      const loop = findPathLoop(lookup, meta.name, repo.name);
      if (loop) throw new InvalidInputError(`repository '${repo.name}': ${loop}`);
    }
  }

  async putConfig(project: string, text: string, user: string, comment: string): Promise<{ rev: number }> {
    const p = this.requireProject(project);
    if (Buffer.byteLength(text) > this.limits.maxConfigBytes) {
      throw new InvalidInputError(`project config is larger than ${this.limits.maxConfigBytes} bytes`);
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

  /** Projects whose repositories build against `project`. */
  dependentsOf(project: string): string[] {
    return this.listProjects()
      .filter((p) => p.name !== project && p.meta.repositories.some((r) => r.paths.some((e) => e.project === project)))
      .map((p) => p.name);
  }

  async deleteProject(project: string, force: boolean, user: string): Promise<void> {
    this.requireProject(project);
    const users = this.dependentsOf(project);
    if (users.length && !force) {
      throw new ConflictError(
        `project '${project}' is used by ${users.map((u) => `'${u}'`).join(", ")}; delete with --force to break them`
      );
    }
    await this.#store.transact(() => {
      for (const k of this.#store.scanKeys(keys.packagesOf(project))) void this.#store.db.remove(k);
      for (const pkg of this.listPackages(project)) {
        for (const k of this.#store.scanKeys(keys.revisionsOf(project, pkg.name))) void this.#store.db.remove(k);
      }
      for (const k of this.#store.scanKeys(keys.projectConfigsOf(project))) void this.#store.db.remove(k);
      void this.#store.db.remove(keys.project(project));
      this.#outbox.add(makeEvent<SourceEvent>({ type: "project.deleted", project, user }));
    });
    await this.#outbox.flush();
  }

  // ---- packages --------------------------------------------------------------------------

  async putPackageMeta(
    project: string,
    name: string,
    xml: string,
    user: string
  ): Promise<{ xml: string; created: boolean }> {
    this.requireProject(project);
    validatePackageName(name);
    const meta = parsePackageMeta(xml, { project, name });
    const rendered = renderPackageMeta(meta);
    const prev = this.package(project, name);
    if (prev && prev.xml === rendered) return { xml: rendered, created: false };
    const now = Date.now();
    const rec: PackageRecord = prev
      ? { ...prev, meta, xml: rendered, updated: now }
      : { project, name, meta, xml: rendered, rev: 0, srcmd5: computeSrcmd5([]), created: now, updated: now };
    await this.#store.transact(() => {
      void this.#store.db.put(keys.package(project, name), rec);
      this.#outbox.add(makeEvent<SourceEvent>({ type: "package.meta-changed", project, package: name, user }));
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

  /**
   * osc's commit: the complete file list with md5s. Files the store lacks are answered back; when
   * none is missing a new revision is made (or none, when nothing changed).
   */
  async commit(
    project: string,
    pkg: string,
    entries: CommitEntry[],
    user: string,
    comment: string
  ): Promise<{ missing: CommitEntry[] } | { revision: Revision }> {
    this.requireProject(project);
    validatePackageName(pkg);
    if (entries.length > this.limits.maxFiles) {
      throw new InvalidInputError(`a package may hold at most ${this.limits.maxFiles} files (got ${entries.length})`);
    }
    const names = new Set<string>();
    for (const e of entries) {
      validateFileName(e.name);
      if (names.has(e.name)) throw new InvalidInputError(`file '${e.name}' is listed twice`);
      names.add(e.name);
      if (e.size > this.limits.maxFileBytes) {
        throw new InvalidInputError(
          `file '${e.name}' is ${e.size} bytes, more than the limit of ${this.limits.maxFileBytes}`
        );
      }
    }
    const files: SourceFile[] = [];
    const missing: CommitEntry[] = [];
    for (const e of entries) {
      const sha = this.#blobs.byMd5(e.md5);
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
    const rev = rec.rev + 1;
    const revision: Revision = { rev, srcmd5, user, comment, time: Date.now(), files };
    await this.#store.transact(() => {
      void this.#store.db.put(keys.revision(project, pkg, rev), revision);
      void this.#store.db.put(keys.package(project, pkg), { ...rec, rev, srcmd5, updated: revision.time });
      this.#outbox.add(makeEvent<SourceEvent>({ type: "source.committed", project, package: pkg, user, rev, srcmd5 }));
    });
    await this.#outbox.flush();
    return { revision };
  }

  async deletePackage(project: string, pkg: string, user: string): Promise<void> {
    this.requirePackage(project, pkg);
    await this.#store.transact(() => {
      for (const k of this.#store.scanKeys(keys.revisionsOf(project, pkg))) void this.#store.db.remove(k);
      void this.#store.db.remove(keys.package(project, pkg));
      this.#outbox.add(makeEvent<SourceEvent>({ type: "package.deleted", project, package: pkg, user }));
    });
    await this.#outbox.flush();
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

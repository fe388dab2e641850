/**
 * Source commands: `meta`, `commit`, `checkout`, `ls`, `history`, `rdelete`, `identity`, `user`.
 */
import { createHash } from "node:crypto";
import {
  createReadStream,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { spawnSync } from "node:child_process";
import os from "node:os";
import path from "node:path";
import type { Command } from "commander";
import type { CommitEntry } from "../../actors/index.ts";
import { ConflictError, InvalidInputError, downloadBlob, uploadFile } from "../../transport/index.ts";
import { connectClients, type Clients } from "../client.ts";
import type { CommandEnv } from "../main.ts";
import { count, formatBytes, print, printJson, progress, progressDone, table } from "../output.ts";
import { writeNewIdentity } from "./identity.ts";

/** Files uploaded at once by `kiln commit`. */
const UPLOAD_CONCURRENCY = 8;

/** Runs `fn` with connected clients and closes them afterwards. */
export async function withClients<T>(cenv: CommandEnv, fn: (c: Clients) => Promise<T>): Promise<T> {
  const c = await connectClients(cenv.settings(), cenv.log());
  try {
    return await fn(c);
  } finally {
    await c.close();
  }
}

function md5File(file: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = createHash("md5");
    createReadStream(file)
      .on("data", (d) => h.update(d))
      .on("end", () => resolve(h.digest("hex")))
      .on("error", reject);
  });
}

/** The files a commit sends: regular files at the top of DIR, except dot files and service output. */
export async function scanCommitDir(dir: string): Promise<{ entries: CommitEntry[]; paths: Map<string, string> }> {
  if (!existsSync(dir) || !lstatSync(dir).isDirectory()) throw new InvalidInputError(`${dir} is not a directory`);
  const entries: CommitEntry[] = [];
  const paths = new Map<string, string>();
  for (const name of readdirSync(dir).sort()) {
    if (name.startsWith(".") || name.startsWith("_service:")) continue;
    const p = path.join(dir, name);
    const st = lstatSync(p);
    if (st.isDirectory()) throw new InvalidInputError(`${p} is a directory; packages hold only files`);
    if (!st.isFile()) throw new InvalidInputError(`${p} is not a regular file`);
    entries.push({ name, md5: await md5File(p), size: st.size });
    paths.set(name, p);
  }
  return { entries, paths };
}

/**
 * Lets the user edit `initial` in `$VISUAL`/`$EDITOR`, in a file of a fresh private directory (a
 * predictable name in /tmp could be planted or read by others). The caller removes it once the
 * edit is stored, and keeps it when it is not, so the edit is not lost.
 */
function editText(initial: string, suffix: string): { text: string; file: string; remove(): void } {
  const editor = process.env.VISUAL ?? process.env.EDITOR ?? "vi";
  const dir = mkdtempSync(path.join(os.tmpdir(), "kiln-edit-"));
  const file = path.join(dir, `edit${suffix}`);
  writeFileSync(file, initial, { mode: 0o600 });
  const r = spawnSync(editor, [file], { stdio: "inherit", shell: false });
  if (r.status !== 0) {
    const why = r.error ? r.error.message : `exited with ${r.status ?? r.signal}`;
    throw new InvalidInputError(`editor ${editor} ${why}; the text is kept in ${file}`);
  }
  return { text: readFileSync(file, "utf8"), file, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export function registerSourceCommands(program: Command, cenv: CommandEnv): void {
  const meta = program.command("meta").description("show or change project/package meta and project config");
  const metaAction =
    (kind: "prj" | "pkg" | "prjconf") =>
    async (
      project: string,
      pkg: string | undefined,
      o: { file?: string; edit?: boolean; message?: string; force?: boolean }
    ): Promise<void> => {
      if (kind === "pkg" && !pkg) throw new InvalidInputError("meta pkg needs PROJECT PACKAGE");
      await withClients(cenv, async (c) => {
        const get = async (): Promise<string> => {
          if (kind === "prj") return (await c.source.call("project.get-meta", { project })).xml;
          if (kind === "pkg") return (await c.source.call("package.get-meta", { project, package: pkg! })).xml;
          return (await c.source.call("project.get-config", { project })).text;
        };
        const put = async (text: string): Promise<string> => {
          const comment = o.message ? { comment: o.message } : {};
          if (kind === "prj") {
            const force = o.force ? { force: true } : {};
            return (await c.source.call("project.put-meta", { project, xml: text, ...comment, ...force })).xml;
          }
          if (kind === "pkg")
            return (await c.source.call("package.put-meta", { project, package: pkg!, xml: text, ...comment })).xml;
          const r = await c.source.call("project.put-config", { project, text, ...comment });
          return `config revision ${r.rev}\n`;
        };
        let text: string | undefined;
        let edited: ReturnType<typeof editText> | undefined;
        if (o.file !== undefined) text = o.file === "-" ? readFileSync(0, "utf8") : readFileSync(o.file, "utf8");
        else if (o.edit) {
          let current = "";
          try {
            current = await get();
          } catch (err) {
            if ((err as { code?: string }).code !== "ERR_NOT_FOUND") throw err;
            current =
              kind === "prj"
                ? `<project name="${project}">\n  <title></title>\n  <description></description>\n</project>\n`
                : kind === "pkg"
                  ? `<package name="${pkg}" project="${project}">\n  <title></title>\n  <description></description>\n</package>\n`
                  : "";
          }
          edited = editText(current, kind === "prjconf" ? ".txt" : ".xml");
          text = edited.text;
          if (text === current) {
            edited.remove();
            return print("no change");
          }
        }
        if (text === undefined) {
          const out = await get();
          if (cenv.json()) return printJson(kind === "prjconf" ? { text: out } : { xml: out });
          return print(out);
        }
        let stored: string;
        try {
          stored = await put(text);
        } catch (err) {
          if (edited) {
            process.stderr.write(
              `kiln: the change was not stored; your edit is kept in ${edited.file} (send it again with -F ${edited.file})\n`
            );
          }
          throw err;
        }
        edited?.remove();
        if (cenv.json()) return printJson({ stored });
        process.stdout.write(stored.endsWith("\n") ? stored : stored + "\n");
      });
    };
  for (const [kind, desc] of [
    ["prj", "project _meta"],
    ["pkg", "package _meta"],
    ["prjconf", "project build config (_config)"],
  ] as const) {
    const cmd = meta
      .command(kind === "pkg" ? `${kind} <project> <package>` : `${kind} <project>`)
      .description(`print, set (-F FILE, - for stdin) or edit (-e) the ${desc}`)
      .option("-F, --file <file>", "read the new content from FILE")
      .option("-e, --edit", "edit in $EDITOR")
      .option(
        "-m, --message <text>",
        kind === "prjconf" ? "comment for the config revision" : "comment for the change, kept in the meta's history"
      );
    if (kind === "prj") {
      cmd.option("--force", "remove repositories even when other projects build against them");
    }
    cmd.action(kind === "pkg" ? metaAction(kind) : (p: string, o: object) => metaAction(kind)(p, undefined, o));
  }

  program
    .command("commit <project> <package> <dir>")
    .description("commit the files of DIR as a new revision (uploads only what the server lacks)")
    .option("-m, --message <text>", "commit message", "")
    .action(async (project: string, pkg: string, dir: string, o: { message: string }) => {
      const { entries, paths } = await scanCommitDir(dir);
      await withClients(cenv, async (c) => {
        let uploaded = 0;
        let uploadedBytes = 0;
        for (let attempt = 0; attempt < 3; attempt++) {
          const r = await c.source.call(
            "package.commit",
            { project, package: pkg, files: entries, comment: o.message },
            { timeoutMs: 60_000 }
          );
          if ("revision" in r) {
            const rev = r.revision;
            if (cenv.json()) return printJson({ ...rev, uploadedFiles: uploaded, uploadedBytes });
            return print(
              `committed revision ${rev.rev} of ${project}/${pkg} (srcmd5 ${rev.srcmd5}, ${count(rev.files.length, "file")}, uploaded ${count(uploaded, "file")} / ${formatBytes(uploadedBytes)})`
            );
          }
          // Small files go several at a time (each is a few round trips); a large one streams
          // alone with its own window of chunks.
          const queue = [...r.missing];
          const total = queue.reduce((n, m) => n + m.size, 0);
          let sent = 0;
          const worker = async (): Promise<void> => {
            for (let m = queue.shift(); m; m = queue.shift()) {
              const file = paths.get(m.name)!;
              let done = 0;
              await uploadFile(
                c.source,
                file,
                { md5: m.md5, size: m.size },
                {
                  onProgress: (d) => {
                    sent += d - done;
                    done = d;
                    progress(
                      `uploading ${uploaded + 1}/${r.missing.length} files: ${formatBytes(sent)} / ${formatBytes(total)} (${m.name})`
                    );
                  },
                }
              );
              uploaded++;
              uploadedBytes += m.size;
            }
          };
          await Promise.all(Array.from({ length: Math.min(UPLOAD_CONCURRENCY, queue.length) }, worker));
          progressDone();
        }
        throw new ConflictError("the server kept asking for files after they were uploaded");
      });
    });

  program
    .command("checkout <project> <package> [dir]")
    .description("download a revision of a package into DIR (default ./PACKAGE)")
    .option("-r, --rev <rev>", "revision (default latest)", (v) => Number(v))
    .action(async (project: string, pkg: string, dir: string | undefined, o: { rev?: number }) => {
      const target = dir ?? pkg;
      await withClients(cenv, async (c) => {
        const rev = await c.source.call("package.get", {
          project,
          package: pkg,
          ...(o.rev !== undefined ? { rev: o.rev } : {}),
        });
        mkdirSync(target, { recursive: true });
        for (const f of rev.files) {
          await downloadBlob(c.source, f.sha256, path.join(target, f.name), {
            onProgress: (d, t) => progress(`${f.name}: ${formatBytes(d)} / ${formatBytes(t)}`),
          });
          progressDone();
        }
        if (cenv.json()) return printJson({ dir: target, rev: rev.rev, srcmd5: rev.srcmd5, files: rev.files });
        print(
          `checked out revision ${rev.rev} of ${project}/${pkg} into ${target} (${count(rev.files.length, "file")})`
        );
      });
    });

  program
    .command("ls [project] [package]")
    .description("list projects, the packages of a project, or the files of a package")
    .action(async (project: string | undefined, pkg: string | undefined) => {
      await withClients(cenv, async (c) => {
        if (!project) {
          const list = await c.source.call("project.list", {});
          return cenv.json() ? printJson(list) : print(list.map((p) => p.name).join("\n"));
        }
        if (!pkg) {
          const list = await c.source.call("package.list", { project });
          return cenv.json() ? printJson(list) : print(list.join("\n"));
        }
        const rev = await c.source.call("package.get", { project, package: pkg });
        if (cenv.json()) return printJson(rev);
        print(
          table(
            ["NAME", "SIZE", "MD5"],
            rev.files.map((f) => [f.name, f.size, f.md5])
          )
        );
      });
    });

  program
    .command("history <project> [package]")
    .description("list the revisions of a package, or with --meta the changes of a project's or package's meta")
    .option("--meta", "the meta's history (who changed it, when, and the -m comment)")
    .action(async (project: string, pkg: string | undefined, o: { meta?: boolean }) => {
      await withClients(cenv, async (c) => {
        if (o.meta) {
          const changes = pkg
            ? await c.source.call("package.meta-history", { project, package: pkg })
            : await c.source.call("project.meta-history", { project });
          if (cenv.json()) return printJson(changes);
          return print(
            table(
              ["REV", "USER", "TIME", "COMMENT"],
              changes.map((r) => [r.rev, r.user, new Date(r.time).toISOString(), r.comment.split("\n")[0] ?? ""])
            )
          );
        }
        if (!pkg) throw new InvalidInputError("history needs PROJECT PACKAGE (or --meta for a project's meta)");
        const revs = await c.source.call("package.history", { project, package: pkg });
        if (cenv.json()) return printJson(revs);
        print(
          table(
            ["REV", "SRCMD5", "USER", "TIME", "COMMENT"],
            revs.map((r) => [r.rev, r.srcmd5, r.user, new Date(r.time).toISOString(), r.comment.split("\n")[0] ?? ""])
          )
        );
      });
    });

  program
    .command("rdelete <project> [package]")
    .description("delete a package, or a whole project")
    .option("--force", "delete a project even when other projects build against it")
    .option("-m, --message <text>", "why: recorded in the deletion event (kiln events)")
    .action(async (project: string, pkg: string | undefined, o: { force?: boolean; message?: string }) => {
      await withClients(cenv, async (c) => {
        const comment = o.message ? { comment: o.message } : {};
        if (pkg) await c.source.call("package.delete", { project, package: pkg, ...comment });
        else await c.source.call("project.delete", { project, force: o.force === true, ...comment });
        if (cenv.json()) return printJson({ deleted: pkg ? `${project}/${pkg}` : project });
        print(`deleted ${pkg ? `package ${project}/${pkg}` : `project ${project}`}`);
      });
    });

  const identity = program.command("identity").description("manage identities (nkey keypairs) that sign requests");
  identity
    .command("new")
    .description("create a new identity file and print its public key (register it with `kiln user add`)")
    .requiredOption("--out <file>", "where to write the identity (created with mode 0600)")
    .action((o: { out: string }) => {
      const id = writeNewIdentity(o.out, "created by kiln identity new");
      if (cenv.json()) return printJson({ file: o.out, pubkey: id.publicKey });
      print(id.publicKey);
    });

  const user = program.command("user").description("manage users (admins only)");
  user
    .command("add <name>")
    .description("register a user with their public key")
    .requiredOption("--pubkey <key>", "the user's public key (from `kiln identity new`)")
    .option("--admin", "make the user an admin (may do everything)")
    .option(
      "--service",
      "make the user a service: kiln's own roles on another host (reads everything, changes nothing)"
    )
    .action(async (name: string, o: { pubkey: string; admin?: boolean; service?: boolean }) => {
      await withClients(cenv, async (c) => {
        const u = await c.source.call("user.add", {
          name,
          pubkey: o.pubkey,
          admin: o.admin === true,
          ...(o.service ? { service: true } : {}),
        });
        if (cenv.json()) return printJson(u);
        print(`added user ${u.name}${u.admin ? " (admin)" : u.service ? " (service)" : ""}`);
      });
    });
  user
    .command("list")
    .description("list users")
    .action(async () => {
      await withClients(cenv, async (c) => {
        const list = await c.source.call("user.list", {});
        if (cenv.json()) return printJson(list);
        print(
          table(
            ["NAME", "KIND", "PUBKEY"],
            list.map((u) => [u.name, u.admin ? "admin" : u.service ? "service" : "user", u.pubkey])
          )
        );
      });
    });
  user
    .command("remove <name>")
    .description("remove a user")
    .action(async (name: string) => {
      await withClients(cenv, async (c) => {
        await c.source.call("user.remove", { name });
        if (cenv.json()) return printJson({ removed: name });
        print(`removed user ${name}`);
      });
    });
  user
    .command("whoami")
    .description("show who this machine's identity is")
    .action(async () => {
      await withClients(cenv, async (c) => {
        const w = await c.source.call("user.whoami", {});
        if (cenv.json()) return printJson(w);
        if (w.anonymous) return print("anonymous (no identity)");
        const kind = w.admin ? " (admin)" : w.service ? " (service)" : "";
        print(`${w.user}${kind}${w.groups.length ? `, groups: ${w.groups.join(", ")}` : ""}`);
      });
    });

  const group = program
    .command("group")
    .description("manage groups: a <group groupid=… role=…/> in a meta gives its members that role");
  group
    .command("set <name> [members...]")
    .description("create or replace a group with these members (admins only)")
    .action(async (name: string, members: string[]) => {
      await withClients(cenv, async (c) => {
        const g = await c.source.call("group.set", { name, members });
        if (cenv.json()) return printJson(g);
        print(`group ${g.name}: ${g.members.join(", ") || "(no members)"}`);
      });
    });
  group
    .command("list")
    .description("list groups and their members")
    .action(async () => {
      await withClients(cenv, async (c) => {
        const list = await c.source.call("group.list", {});
        if (cenv.json()) return printJson(list);
        print(
          table(
            ["GROUP", "MEMBERS"],
            list.map((g) => [g.name, g.members.join(" ")])
          )
        );
      });
    });
  group
    .command("remove <name>")
    .description("remove a group (admins only)")
    .action(async (name: string) => {
      await withClients(cenv, async (c) => {
        await c.source.call("group.remove", { name });
        if (cenv.json()) return printJson({ removed: name });
        print(`removed group ${name}`);
      });
    });
}

/**
 * Prints the events the caller may see, as JSON lines, until `signal` aborts. They come from the
 * source role (`events.read`), which leaves out hidden projects' events; raw NATS subscribers of
 * `kiln.evt.>` are limited by the NATS server's authorization instead (ops/nats/).
 */
export async function followEvents(
  c: Clients,
  opts: { project?: string; from?: number; signal?: AbortSignal },
  out: (line: string) => void
): Promise<void> {
  let after = opts.from !== undefined ? opts.from - 1 : undefined;
  while (!opts.signal?.aborted) {
    const r = await c.source.call(
      "events.read",
      { ...(after !== undefined ? { after } : {}), ...(opts.project ? { project: opts.project } : {}), waitMs: 5000 },
      { timeoutMs: 15_000, idempotent: true, ...(opts.signal ? { signal: opts.signal } : {}) }
    );
    for (const e of r.events) out(JSON.stringify({ seq: e.seq, ...e.event }));
    after = r.next - 1;
  }
}

/**
 * The sandbox's own /etc: just enough for bash, rpm and rpmbuild, written fresh for each run. The
 * host's /etc is never bound (under a root worker its root-owned files would be the sandbox's).
 */
import { rmSync, statSync } from "node:fs";
import { chmod, copyFile, mkdir, mkdtemp, readdir, readlink, rename, rm, symlink, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { SANDBOX_USER } from "./plan.ts";
import { processAlive } from "./process-tree.ts";

/** Options of {@link minimalEtc}. */
export interface EtcOptions {
  hostname: string;
  /** Also resolv.conf and a mount point for the host's CA certificates. */
  network: boolean;
  /**
   * Also an empty `alternatives/`, where the sandbox shows the host's links into `/usr` (Debian's
   * `/usr/bin/awk` is a link to `/etc/alternatives/awk`): for a sandbox whose `/usr` is the host's.
   */
  alternatives?: boolean;
  /** With `alternatives`: the links to write into it (otherwise it stays empty, for bwrap to fill). */
  alternativeLinks?: readonly (readonly [string, string])[];
}

let hostAlternatives: Promise<[string, string][]> | undefined;

/**
 * The host's `/etc/alternatives` links that point into `/usr` (manual pages left out), read once
 * per process: they change only when packages are installed on the host.
 */
export function readHostAlternatives(): Promise<[string, string][]> {
  hostAlternatives ??= (async () => {
    const links: [string, string][] = [];
    for (const name of await readdir("/etc/alternatives").catch(() => [] as string[])) {
      const target = await readlink(path.join("/etc/alternatives", name)).catch(() => "");
      if (target.startsWith("/usr/") && !target.includes("\0") && !/\.(gz|xz)$/.test(name)) links.push([name, target]);
    }
    return links;
  })();
  return hostAlternatives;
}

/** File name → content of the constructed /etc (symlinks as `{ link }`). */
export function minimalEtc(opts: EtcOptions): Record<string, string | { link: string }> {
  const u = SANDBOX_USER;
  const files: Record<string, string | { link: string }> = {
    passwd: [
      "root:x:0:0:root:/root:/bin/sh",
      `${u.name}:x:${u.uid}:${u.gid}:Autobuild:${u.home}:/bin/bash`,
      "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin",
      "",
    ].join("\n"),
    group: ["root:x:0:", `${u.name}:x:${u.gid}:`, "nogroup:x:65534:", ""].join("\n"),
    hosts: `127.0.0.1\tlocalhost ${opts.hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\n`,
    hostname: `${opts.hostname}\n`,
    "nsswitch.conf": "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\nnetworks: files\n",
    "ld.so.conf": "include /etc/ld.so.conf.d/*.conf\n",
    shells: "/bin/sh\n/bin/bash\n/usr/bin/sh\n/usr/bin/bash\n",
    localtime: { link: "/usr/share/zoneinfo/UTC" },
    "os-release": { link: "../usr/lib/os-release" },
    mtab: { link: "/proc/self/mounts" },
  };
  return files;
}

/**
 * Writes the constructed /etc into `dir` (which must not exist yet). The host's ld.so.cache is
 * copied because the host's /usr is the base; with network, so is its resolv.conf.
 */
export async function writeMinimalEtc(dir: string, opts: EtcOptions): Promise<void> {
  // Explicit modes (not subject to the worker's umask): the sandbox's uid reads these as "other".
  // The files are independent, so they are written in parallel (this is on every build's path).
  await mkdir(dir);
  await chmod(dir, 0o755);
  const writes = Object.entries(minimalEtc(opts)).map(async ([name, content]) => {
    const p = path.join(dir, name);
    if (typeof content === "string") {
      await writeFile(p, content);
      await chmod(p, 0o644);
    } else {
      await symlink(content.link, p);
    }
  });
  const copies = [["/etc/ld.so.cache", "ld.so.cache"], ...(opts.network ? [["/etc/resolv.conf", "resolv.conf"]] : [])];
  for (const [from, to] of copies) {
    const p = path.join(dir, to!);
    writes.push(
      copyFile(from!, p).then(
        () => chmod(p, 0o644),
        () => undefined
      )
    );
  }
  // With links given they are written here (a prepared /etc, once per process); otherwise bwrap
  // makes them for each run (plan.ts) and /etc only needs the mount point.
  if (opts.alternatives) {
    const alt = path.join(dir, "alternatives");
    writes.push(
      (async () => {
        await mkdir(alt);
        await chmod(alt, 0o755);
        await Promise.all((opts.alternativeLinks ?? []).map(([name, target]) => symlink(target, path.join(alt, name))));
      })()
    );
  }
  if (opts.network) {
    writes.push(
      (async () => {
        await mkdir(path.join(dir, "ssl", "certs"), { recursive: true });
        await chmod(path.join(dir, "ssl"), 0o755);
        await chmod(path.join(dir, "ssl", "certs"), 0o755);
      })()
    );
  }
  await Promise.all(writes);
}

/** The prepared /etc directories of this process, by what they are made of. */
const prepared = new Map<string, Promise<string>>();
let preparedRoot: Promise<string> | undefined;

/** This process's directory of prepared /etc trees, removed at exit; those of dead processes go. */
function preparedRootDir(): Promise<string> {
  preparedRoot ??= (async () => {
    const tmp = os.tmpdir();
    for (const name of await readdir(tmp).catch(() => [] as string[])) {
      const m = /^kiln-etc-(\d+)-/.exec(name);
      if (m && Number(m[1]) !== process.pid && !processAlive(Number(m[1]))) {
        await rm(path.join(tmp, name), { recursive: true, force: true }).catch(() => undefined);
      }
    }
    const root = await mkdtemp(path.join(tmp, `kiln-etc-${process.pid}-`));
    process.once("exit", () => rmSync(root, { recursive: true, force: true }));
    return root;
  })();
  return preparedRoot;
}

/**
 * A constructed /etc for runs without network, written once per process and bound read-only into
 * every run: writing it for each run cost ~10 ms of file-system work on every build's path. With
 * `alternatives`, the host's links are in it, so bwrap need not make hundreds of them per run. Keyed
 * by the host's ld.so.cache too, so that an update of the host's libraries is seen; made again if
 * something (a tmp cleaner) removed it.
 */
export async function preparedEtc(opts: Omit<EtcOptions, "network" | "alternativeLinks">): Promise<string> {
  // Synchronous: two stats on every build's path, each cheaper than a thread-pool round trip.
  const cache = statSync("/etc/ld.so.cache", { throwIfNoEntry: false });
  const key = JSON.stringify([opts.hostname, opts.alternatives ?? false, cache?.mtimeMs, cache?.size]);
  const known = prepared.get(key);
  if (known) {
    const dir = await known.catch(() => undefined);
    if (dir !== undefined && statSync(dir, { throwIfNoEntry: false })?.isDirectory()) return dir;
    prepared.delete(key);
  }
  const made = (async () => {
    const root = await preparedRootDir();
    const dir = path.join(root, `etc-${prepared.size}-${Date.now()}`);
    // Written aside and renamed: a run never binds a half-written /etc.
    const tmp = `${dir}.tmp`;
    await rm(tmp, { recursive: true, force: true });
    const links = opts.alternatives ? await readHostAlternatives() : [];
    await writeMinimalEtc(tmp, { ...opts, network: false, alternativeLinks: links });
    await rename(tmp, dir);
    return dir;
  })();
  prepared.set(key, made);
  made.catch(() => prepared.delete(key));
  return made;
}

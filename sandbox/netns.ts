/**
 * A network namespace of a run's own, for source services: outbound connections work (downloads,
 * git), but the host's loopback, where kiln's NATS server and HTTP servers listen, is not there,
 * and neither are the host's other addresses.
 *
 * pasta (Debian package passt) connects the namespace: it copies the host's outbound addresses
 * and routes into it and makes each connection from inside with an ordinary socket of the host.
 * It is told to forward no port in either direction except the host loopback TCP ports an
 * operator names (`-T`), and not to map the gateway address to the host (`--no-map-gw`).
 * Connections to any other address of the host (a second interface, a container bridge) are
 * refused inside by unreachable routes, made before pasta starts. The copied outbound address is
 * local inside, so it reaches nothing of the host either.
 *
 * As root the namespace is a named one (`ip netns add`), which pasta joins by name and the run's
 * wrapper by `nsenter`; pasta keeps uid 0 (`--runas 0`: the tap device may be root's only), but
 * drops to the capabilities it needs and confines itself (seccomp, an empty root). It ends by
 * itself when the namespace's name is deleted. Otherwise (kiln without root) a small holder
 * process owns a user and network namespace, pasta joins both by its pid, and the wrapper joins
 * them too instead of making a user namespace of its own.
 */
import { readFileSync, readdirSync } from "node:fs";
import { isIP } from "node:net";
import os from "node:os";
import path from "node:path";
import { execa, type ResultPromise } from "execa";
import type { Logger } from "pino";
import { InvalidInputError } from "../transport/index.ts";
import { SandboxSetupError, SandboxUnavailableError } from "./errors.ts";
import { processAlive } from "./process-tree.ts";

/** A network namespace of the run's own, with outbound connectivity (see the module comment). */
export interface IsolatedNetwork {
  type: "isolated";
  /**
   * TCP ports of the host's loopback that connections to these ports on the namespace's own
   * loopback reach (an operator's explicit choice, e.g. a local mirror); nothing else of it does.
   */
  hostLoopbackPorts: readonly number[];
}

/**
 * Where DNS queries go inside when the host's resolver listens on its loopback (systemd-resolved,
 * a container runtime's resolver): pasta forwards UDP port 53 of this address to it.
 */
export const DNS_FORWARD_ADDRESS = "169.254.1.1";

/** The named namespaces' prefix (`kiln-svc-<pid of kiln>-<n>`), for finding stale ones. */
export const NETNS_PREFIX = "kiln-svc-";

const NETNS_DIR = "/run/netns";
const HOST_PATH = "/usr/sbin:/usr/bin:/sbin:/bin";
const SETUP_TIMEOUT_MS = 30_000;

/** Programs an isolated network needs on the host. */
export const NETNS_TOOLS = ["pasta", "ip", "nsenter", "unshare"] as const;

/** Checks and normalizes port numbers (1–65535, each once, ascending). */
export function validatePorts(ports: readonly unknown[]): number[] {
  for (const p of ports) {
    if (typeof p !== "number" || !Number.isInteger(p) || p < 1 || p > 65535) {
      throw new InvalidInputError(`a host loopback port must be a whole number from 1 to 65535, got ${String(p)}`, {
        data: { port: p },
      });
    }
  }
  return [...new Set(ports as number[])].sort((a, b) => a - b);
}

/** pasta's options (before the target): no forwarding but the named ports, no gateway mapping. */
export function pastaArgs(net: IsolatedNetwork, dnsForward: boolean): string[] {
  const ports = validatePorts(net.hostLoopbackPorts);
  return [
    "--config-net",
    "--quiet",
    "--tcp-ports",
    "none",
    "--udp-ports",
    "none",
    "--tcp-ns",
    ports.length ? ports.join(",") : "none",
    "--udp-ns",
    "none",
    "--no-map-gw",
    ...(dnsForward ? ["--dns-forward", DNS_FORWARD_ADDRESS] : []),
  ];
}

/** Addresses of the host's interfaces other than loopback, each once. */
export function hostAddresses(ifaces: NodeJS.Dict<os.NetworkInterfaceInfo[]> = os.networkInterfaces()): string[] {
  const out = new Set<string>();
  for (const list of Object.values(ifaces)) {
    for (const a of list ?? []) {
      if (a.internal) continue;
      // A scope suffix (fe80::1%eth0) is not part of a route's destination.
      const addr = a.address.replace(/%.*$/, "");
      if (isIP(addr)) out.add(addr);
    }
  }
  return [...out].sort();
}

/** `ip -batch` lines that make each address unreachable inside. */
export function unreachableRoutes(addresses: readonly string[]): string {
  return addresses.map((a) => `route add unreachable ${a}/${isIP(a) === 6 ? 128 : 32}\n`).join("");
}

const isLoopback = (addr: string): boolean => /^127\./.test(addr) || addr === "::1";

/** The nameservers of a resolv.conf text. */
export function nameservers(resolvConf: string): string[] {
  const out: string[] = [];
  for (const line of resolvConf.split("\n")) {
    const m = /^\s*nameserver\s+(\S+)/.exec(line);
    if (m) out.push(m[1]!);
  }
  return out;
}

/**
 * The sandbox's resolv.conf: the host's, with nameservers on the host's loopback (unreachable
 * inside) replaced by {@link DNS_FORWARD_ADDRESS}, which pasta forwards to the host's resolver.
 */
export function isolatedResolvConf(hostText: string): string {
  let forwarded = false;
  const lines: string[] = [];
  for (const line of hostText.split("\n")) {
    const m = /^\s*nameserver\s+(\S+)/.exec(line);
    if (!m || !isLoopback(m[1]!)) lines.push(line);
    else if (!forwarded) {
      lines.push(`nameserver ${DNS_FORWARD_ADDRESS}`);
      forwarded = true;
    }
  }
  return lines.join("\n");
}

function readHostResolvConf(): string {
  try {
    return readFileSync("/etc/resolv.conf", "utf8");
  } catch {
    return "";
  }
}

/** The last line a tool printed that says something (pasta also reports failing to reach syslog). */
function lastMessage(text: string): string {
  const lines = text
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l && !/to syslog$/.test(l));
  return lines[lines.length - 1] ?? "";
}

async function tool(cmd: string, args: readonly string[], input?: string): Promise<void> {
  const r = await execa(cmd, args, {
    env: { PATH: HOST_PATH },
    extendEnv: false,
    reject: false,
    timeout: SETUP_TIMEOUT_MS,
    stdin: input === undefined ? "ignore" : "pipe",
    ...(input === undefined ? {} : { input }),
  });
  if (r.exitCode === 0) return;
  const why = r.code === "ENOENT" ? "not installed" : lastMessage(String(r.stderr)) || `exited with ${r.exitCode}`;
  const hint = cmd === "pasta" && r.code === "ENOENT" ? " (Debian package passt)" : "";
  throw new SandboxSetupError(`setting up the service network: ${cmd}${hint}: ${why}`, {
    data: { cmd, args, exitCode: r.exitCode, stderr: String(r.stderr).slice(-4000) },
  });
}

/** Whether the host has the programs an isolated network needs; throws naming what is missing. */
export function checkIsolatedNetworkTools(): void {
  const dirs = HOST_PATH.split(":");
  const missing = NETNS_TOOLS.filter(
    (t) =>
      !dirs.some((d) => {
        try {
          return readdirSync(d).includes(t);
        } catch {
          return false;
        }
      })
  );
  if (missing.length) {
    throw new SandboxUnavailableError(
      `source services need ${missing.join(", ")} for their own network${missing.includes("pasta") ? " (pasta is in the Debian package passt)" : ""}`,
      { data: { missing } }
    );
  }
}

/** An isolated network, ready: how to run a command in it and how to remove it. */
export interface NetnsHandle {
  /** argv prefix that runs a command inside the namespace. */
  enter: readonly string[];
  /** `enter` also joins a user namespace (root in it): the command needs none of its own. */
  joinsUserNamespace: boolean;
  /** Removes the namespace; pasta ends with it. Never throws. */
  close(): Promise<void>;
}

let seq = 0;
let swept = false;
// `ip netns add` makes /run/netns a mount of its own the first time; two at once could stack
// two such mounts and hide one namespace's name under the other.
let adding: Promise<unknown> = Promise.resolve();

/** Deletes named namespaces a kiln process that is gone left (pasta ends with each). */
async function sweepStale(log: Logger): Promise<void> {
  let names: string[] = [];
  try {
    names = readdirSync(NETNS_DIR);
  } catch {
    return;
  }
  for (const name of names) {
    const m = new RegExp(`^${NETNS_PREFIX}(\\d+)-\\d+$`).exec(name);
    if (!m || Number(m[1]) === process.pid || processAlive(Number(m[1]))) continue;
    await tool("ip", ["netns", "del", name]).catch((err: unknown) =>
      log.warn({ err, name }, "stale netns not removed")
    );
  }
}

async function openNamed(net: IsolatedNetwork, routes: string, dnsForward: boolean, log: Logger): Promise<NetnsHandle> {
  if (!swept) {
    swept = true;
    await sweepStale(log);
  }
  const name = `${NETNS_PREFIX}${process.pid}-${++seq}`;
  const add = adding.then(() => tool("ip", ["netns", "add", name]));
  adding = add.catch(() => undefined);
  await add;
  const close = async (): Promise<void> => {
    await tool("ip", ["netns", "del", name]).catch((err: unknown) => log.warn({ err, name }, "netns not removed"));
  };
  try {
    if (routes) await tool("ip", ["-netns", name, "-batch", "-"], routes);
    // pasta forks into the background once the namespace is configured, and ends when the name goes.
    await tool("pasta", [...pastaArgs(net, dnsForward), "--runas", "0", "--netns", name]);
  } catch (err) {
    await close();
    throw err;
  }
  return { enter: ["nsenter", `--net=${NETNS_DIR}/${name}`, "--"], joinsUserNamespace: false, close };
}

/** Holder: root of a new user and network namespace, adds the routes, then waits for stdin to close. */
const HOLDER_SCRIPT = `set -e
if [ -n "$1" ]; then printf '%s' "$1" | ip -batch -; fi
echo ready
exec cat > /dev/null`;

async function openHeld(
  net: IsolatedNetwork,
  routes: string,
  dnsForward: boolean,
  pidFile: string,
  log: Logger
): Promise<NetnsHandle> {
  const holder: ResultPromise = execa(
    "unshare",
    ["--user", "--map-root-user", "--net", "--", "/bin/sh", "-c", HOLDER_SCRIPT, "kiln-netns", routes],
    { env: { PATH: HOST_PATH }, extendEnv: false, reject: false, stdin: "pipe", buffer: { stdout: false } }
  );
  let pasta: number | undefined;
  const close = async (): Promise<void> => {
    // Joined by pid, pasta does not notice the namespace going: it is ended here.
    if (pasta !== undefined) {
      try {
        process.kill(pasta, "SIGTERM");
      } catch (err) {
        log.warn({ err, pid: pasta }, "pasta not stopped");
      }
    }
    holder.stdin?.end();
    await holder;
  };
  try {
    const ready = await new Promise<boolean>((resolve) => {
      holder.stdout?.once("data", () => resolve(true));
      void holder.then(() => resolve(false));
    });
    if (!ready) {
      const r = await holder;
      throw new SandboxSetupError(
        `setting up the service network: ${lastMessage(String(r.stderr)) || `unshare exited with ${r.exitCode}`}`
      );
    }
    const pid = String(holder.pid);
    await tool("pasta", [...pastaArgs(net, dnsForward), "--pid", pidFile, pid]);
    pasta = Number(readFileSync(pidFile, "utf8").trim());
    if (!Number.isInteger(pasta) || pasta <= 1)
      throw new SandboxSetupError("setting up the service network: pasta wrote no pid");
    return {
      // Credentials kept: the holder's namespace maps uid 0 to ours, and has no setgroups.
      enter: ["nsenter", "--preserve-credentials", `--user=/proc/${pid}/ns/user`, `--net=/proc/${pid}/ns/net`, "--"],
      joinsUserNamespace: true,
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}

/**
 * Makes a network namespace as {@link IsolatedNetwork} says and connects it through pasta.
 * Throws SandboxSetupError when that fails; the caller must `close()` the handle after the run.
 */
export async function openIsolatedNetwork(
  net: IsolatedNetwork,
  opts: {
    privileged: boolean;
    log: Logger;
    /** A private directory for pasta's pid file (without root). */
    dir: string;
  }
): Promise<NetnsHandle> {
  validatePorts(net.hostLoopbackPorts);
  const routes = unreachableRoutes(hostAddresses());
  const dnsForward = nameservers(readHostResolvConf()).some(isLoopback);
  const started = Date.now();
  const handle = opts.privileged
    ? await openNamed(net, routes, dnsForward, opts.log)
    : await openHeld(net, routes, dnsForward, path.join(opts.dir, "pasta.pid"), opts.log);
  opts.log.debug({ ms: Date.now() - started, ports: net.hostLoopbackPorts }, "service network ready");
  return handle;
}

/** The resolv.conf a run in an isolated network gets (the host's, adjusted). */
export function isolatedResolvConfOfHost(): string {
  return isolatedResolvConf(readHostResolvConf());
}

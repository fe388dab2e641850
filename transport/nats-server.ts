/**
 * Starting a real `nats-server` process: used by `kiln up` for its embedded server and by the test
 * harness for single servers and clusters.
 *
 * The server is configured through a config file (see {@link toConf}), listens on loopback, and
 * may be given port -1 (random); the real ports are read from the ports file the server writes to
 * `ports_file_dir` (`nats-server_<pid>.ports`, JSON `{nats, monitoring, cluster}`).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { randomUUID } from "node:crypto";
import { UnavailableError } from "./errors.ts";

export type ConfValue = string | number | boolean | ConfValue[] | { [k: string]: ConfValue };
export type ConfObject = { [k: string]: ConfValue };

const quoteString = (s: string): string => JSON.stringify(s);

/**
 * Serialises a config object to nats-server's config syntax: `key: value`, nested blocks in
 * braces, arrays in brackets, strings quoted.
 */
export function toConf(obj: ConfObject, indent = ""): string {
  const lines: string[] = [];
  for (const [k, v] of Object.entries(obj)) {
    lines.push(`${indent}${k}: ${confValue(v, indent)}`);
  }
  return lines.join("\n") + (indent === "" ? "\n" : "");
}

function confValue(v: ConfValue, indent: string): string {
  if (typeof v === "string") return quoteString(v);
  if (typeof v === "number" || typeof v === "boolean") return String(v);
  if (Array.isArray(v)) return `[${v.map((x) => confValue(x, indent)).join(", ")}]`;
  return `{\n${toConf(v, indent + "  ")}\n${indent}}`;
}

export interface ServerPorts {
  nats: number;
  monitoring?: number;
  cluster?: number;
}

/** Finds the nats-server binary, with an install hint when it is missing. */
export function natsServerBinary(): string {
  // Library code does not read PATH from the environment; these are where packages install it.
  const candidates = ["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"].map((d) =>
    path.join(d, "nats-server")
  );
  for (const c of candidates) if (existsSync(c)) return c;
  throw new UnavailableError(
    "nats-server not found on PATH; install it with `apt-get install nats-server` (ops/setup.sh does)"
  );
}

export interface StartOptions {
  /** Directory for config, ports file and logs. @default a new temp dir */
  dir?: string;
  /** Wait this long for the server to come up. @default 10 s */
  startTimeoutMs?: number;
}

/** One running nats-server process. */
export class NatsServerProcess {
  readonly conf: ConfObject;
  readonly dir: string;
  ports: ServerPorts;
  #proc: ChildProcess;
  #exited: Promise<number | null>;
  #stderr: string[] = [];

  private constructor(
    conf: ConfObject,
    dir: string,
    proc: ChildProcess,
    ports: ServerPorts,
    exited: Promise<number | null>,
    stderr: string[]
  ) {
    this.conf = conf;
    this.dir = dir;
    this.#proc = proc;
    this.ports = ports;
    this.#exited = exited;
    this.#stderr = stderr;
  }

  get url(): string {
    return `nats://127.0.0.1:${this.ports.nats}`;
  }

  get pid(): number {
    return this.#proc.pid ?? -1;
  }

  /** The last lines the server wrote to stderr, for failure messages. */
  log(): string {
    return this.#stderr.join("");
  }

  static async start(conf: ConfObject, opts: StartOptions = {}): Promise<NatsServerProcess> {
    const dir = opts.dir ?? path.join(os.tmpdir(), `kiln-nats-${randomUUID()}`);
    mkdirSync(dir, { recursive: true });
    const full: ConfObject = { host: "127.0.0.1", port: -1, http: "127.0.0.1:-1", ports_file_dir: dir, ...conf };
    const confFile = path.join(dir, `nats-server-${randomUUID()}.conf`);
    writeFileSync(confFile, toConf(full));
    const proc = spawn(natsServerBinary(), ["-c", confFile], { stdio: ["ignore", "ignore", "pipe"] });
    const stderr: string[] = [];
    let stderrBytes = 0;
    proc.stderr!.setEncoding("utf8");
    proc.stderr!.on("data", (d: string) => {
      stderr.push(d);
      stderrBytes += d.length;
      while (stderrBytes > 256 * 1024 && stderr.length > 1) stderrBytes -= stderr.shift()!.length;
    });
    const exited = new Promise<number | null>((resolve) => proc.on("exit", (code) => resolve(code)));
    let gone = false;
    void exited.then(() => (gone = true));
    const deadline = Date.now() + (opts.startTimeoutMs ?? 10_000);
    const portsFile = (): string => path.join(dir, `nats-server_${proc.pid}.ports`);
    let ports: ServerPorts | undefined;
    while (Date.now() < deadline) {
      if (gone) break;
      if (existsSync(portsFile())) {
        try {
          const raw = JSON.parse(readFileSync(portsFile(), "utf8")) as Record<string, string[] | undefined>;
          const port = (urls: string[] | undefined): number | undefined => {
            const u = urls?.[0];
            return u ? Number(new URL(u.replace(/^nats:/, "http:")).port) : undefined;
          };
          const nats = port(raw.nats);
          if (nats && (await canConnect(nats))) {
            ports = { nats };
            const m = port(raw.monitoring);
            const c = port(raw.cluster);
            if (m) ports.monitoring = m;
            if (c) ports.cluster = c;
            break;
          }
        } catch {
          // Half-written ports file; read it again.
        }
      }
      await new Promise((r) => setTimeout(r, 25));
    }
    if (!ports) {
      proc.kill("SIGKILL");
      await exited;
      throw new UnavailableError(`nats-server did not start (config ${confFile}):\n${stderr.join("").slice(-4000)}`);
    }
    return new NatsServerProcess(full, dir, proc, ports, exited, stderr);
  }

  /** Stops the server: SIGTERM, then SIGKILL after `graceMs`. Removes the ports file. */
  async stop(graceMs = 5000): Promise<void> {
    if (this.#proc.exitCode === null && this.#proc.signalCode === null) {
      this.#proc.kill("SIGTERM");
      const t = setTimeout(() => this.#proc.kill("SIGKILL"), graceMs);
      await this.#exited;
      clearTimeout(t);
    }
    rmSync(path.join(this.dir, `nats-server_${this.#proc.pid}.ports`), { force: true });
  }

  /** Kills without grace, as a crash would. */
  async kill(): Promise<void> {
    this.#proc.kill("SIGKILL");
    await this.#exited;
    rmSync(path.join(this.dir, `nats-server_${this.#proc.pid}.ports`), { force: true });
  }

  exited(): Promise<number | null> {
    return this.#exited;
  }

  /** GETs a monitoring endpoint (`varz`, `jsz`, `routez`…). */
  async monitor<T = Record<string, unknown>>(endpoint: string): Promise<T> {
    if (!this.ports.monitoring) throw new UnavailableError("monitoring port not enabled");
    const res = await fetch(`http://127.0.0.1:${this.ports.monitoring}/${endpoint}`);
    return (await res.json()) as T;
  }
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: "127.0.0.1", port }, () => {
      s.end();
      resolve(true);
    });
    s.on("error", () => resolve(false));
  });
}

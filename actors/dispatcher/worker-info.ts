/**
 * What a build worker can do, as the dispatcher matches it against jobs: its architectures
 * (OBS `BSCando`), labels, sandbox, kernel and hardware (the OBS worker XML of obs-backend.md §6.1).
 */

/** A worker's capabilities as it registers them (OBS worker XML, sizes in MiB). */
export interface WorkerCapabilities {
  workerId: string;
  hostArch: string;
  /** Repository architectures it builds; empty means "what {@link cando} says for `hostArch`". */
  buildArchs: string[];
  hostLabels: string[];
  /** `bwrap` for kiln workers; OBS names chroot, kvm, xen, zvm, lxc, emulator, … */
  sandbox: string;
  linux: { version: string; flavor?: string };
  cpuFlags: string[];
  processors: number;
  /** Build slots. */
  jobs: number;
  memoryMb: number;
  swapMb: number;
  diskMb: number;
  /** The host has no personality helper (`linux32` …), so it builds only what it runs natively. */
  nativeOnly?: boolean;
}

/** One architecture a host can build, and the personality helper it needs for it, if any. */
export interface CandoEntry {
  readonly arch: string;
  readonly helper?: string;
}

// Kiln's own table with the content of OBS's BSCando: host arch → buildable archs ("arch:helper").
const CANDO_SPEC: Readonly<Record<string, readonly string[]>> = {
  aarch64: [
    "aarch64",
    "aarch64_ilp32",
    "armv8l:linux32",
    "armv7l:linux32",
    "armv7hl:linux32",
    "armv6l:linux32",
    "armv6hl:linux32",
  ],
  aarch64_ilp32: ["aarch64_ilp32", "aarch64"],
  armv4l: ["armv4l"],
  armv5l: ["armv4l", "armv5l", "armv5el"],
  armv6l: ["armv4l", "armv5l", "armv6l", "armv5el", "armv6el"],
  armv7l: ["armv4l", "armv5l", "armv6l", "armv7l", "armv5el", "armv6el", "armv6hl", "armv7el", "armv7hl"],
  armv8l: [
    "armv4l",
    "armv5l",
    "armv6l",
    "armv7l",
    "armv5el",
    "armv6el",
    "armv6hl",
    "armv7el",
    "armv7hl",
    "armv8el",
    "armv8hl",
    "armv8l",
  ],
  sh4: ["sh4"],
  i586: ["i586"],
  i686: ["i586", "i686"],
  x86_64: ["x86_64", "i586:linux32", "i686:linux32"],
  k1om: ["k1om"],
  parisc: ["hppa", "hppa64:linux64"],
  parisc64: ["hppa64", "hppa:linux32"],
  ppc: ["ppc"],
  ppc64: ["ppc64le", "ppc64", "ppc:linux32"],
  ppc64p7: ["ppc64le", "ppc64p7", "ppc:linux32"],
  ppc64le: ["ppc64le", "ppc64", "ppc:linux32"],
  ia64: ["ia64"],
  riscv64: ["riscv64"],
  loongarch64: ["loongarch64"],
  s390: ["s390"],
  s390x: ["s390x", "s390:linux32"],
  sparc: ["sparcv8", "sparc"],
  sparc64: ["sparc64v", "sparc64", "sparcv9v", "sparcv9", "sparcv8:linux32", "sparc:linux32"],
  mips: ["mips"],
  mips64: ["mips64", "mips:mips32"],
  m68k: ["m68k"],
  local: ["local"],
};

const CANDO: ReadonlyMap<string, readonly CandoEntry[]> = new Map(
  Object.entries(CANDO_SPEC).map(([host, specs]) => [
    host,
    Object.freeze(
      specs.map((s): CandoEntry => {
        const i = s.indexOf(":");
        return Object.freeze(i < 0 ? { arch: s } : { arch: s.slice(0, i), helper: s.slice(i + 1) });
      })
    ),
  ])
);

/**
 * The architectures a host of `hostArch` can build, with the personality helper each needs
 * (OBS BSCando). An unknown host arch builds only itself, natively.
 */
export function cando(hostArch: string): readonly CandoEntry[] {
  return CANDO.get(hostArch) ?? [{ arch: hostArch }];
}

/**
 * Whether `worker` may build jobs of `arch`: the arch is among its `buildArchs` (or its cando
 * entries when it declares none), and a `nativeOnly` host is not asked for an arch that needs a
 * personality helper (OBS skips those hosts the same way).
 */
export function canBuildArch(worker: WorkerCapabilities, arch: string): boolean {
  const declared = worker.buildArchs.length > 0;
  if (declared && !worker.buildArchs.includes(arch)) return false;
  const entry = cando(worker.hostArch).find((e) => e.arch === arch);
  if (!declared && entry === undefined) return false;
  return !(worker.nativeOnly === true && entry?.helper !== undefined);
}

/**
 * How a worker builds a job whose architecture is not the host's own, as OBS does it.
 *
 * OBS's worker runs its build script under the personality helper BSCando names for the pair
 * (`linux32` for i586/i686 on x86_64), so that `uname -m`, configure scripts and rpm see a 32-bit
 * machine. obs-build passes `rpmbuild --target` only for a `#!BuildTarget:` or a `Target:` of the
 * project config; the packages still carry the job's arch because openSUSE's rpm translates the
 * detected i686 to i586 (`buildarchtranslate`), and the build script rewrites that translation for
 * i686 jobs. Debian's rpm translates i686 to i386 instead, so kiln names the job's arch as the
 * target whenever it is not the host's: i586 jobs give `.i586.rpm`, i686 jobs `.i686.rpm`, as on OBS.
 */
import { PERSONALITIES, type Personality } from "../../sandbox/index.ts";
import { cando } from "../dispatcher/worker-info.ts";

/** What a build of `jobArch` on a host of `hostArch` runs with. */
export type ArchBuild =
  | { type: "arch.native" }
  | { type: "arch.foreign"; target: string; personality?: Personality }
  | { type: "arch.unsupported"; reason: string };

export function archBuild(hostArch: string, jobArch: string): ArchBuild {
  if (jobArch === hostArch) return { type: "arch.native" };
  const helper = cando(hostArch).find((e) => e.arch === jobArch)?.helper;
  if (helper === undefined) return { type: "arch.foreign", target: jobArch };
  const personality = PERSONALITIES.find((p) => p === helper);
  if (personality === undefined) {
    return {
      type: "arch.unsupported",
      reason: `this ${hostArch} host cannot build ${jobArch}: kiln has no personality helper ${helper}`,
    };
  }
  return { type: "arch.foreign", target: jobArch, personality };
}

/**
 * Errors the sandbox raises on purpose. A build that fails is not an error (it is a
 * {@link BuildOutcome}); these are for a host that cannot sandbox at all or a set-up step that broke,
 * which the worker should treat as "bad host" rather than blame the package.
 */
import { KilnError, registerErrorClass } from "../transport/index.ts";
import type { KilnErrorOptions } from "../transport/index.ts";

export const SandboxErrorCode = {
  /** Assembling the build root failed (mounts, cgroups, unpacking a dependency, copying results). */
  Setup: "ERR_SANDBOX_SETUP",
  /** A required tool or kernel feature (bwrap, user namespaces, overlayfs, rpmbuild) is missing. */
  Unavailable: "ERR_SANDBOX_UNAVAILABLE",
} as const;
export type SandboxErrorCode = (typeof SandboxErrorCode)[keyof typeof SandboxErrorCode];

/** Preparing or tearing down the sandbox failed on this host; retrying on another worker may help. */
export class SandboxSetupError extends KilnError {
  constructor(message: string, options?: KilnErrorOptions) {
    super(SandboxErrorCode.Setup, true, message, options);
  }
}

/** The host lacks something the sandbox needs; the worker should not accept jobs. */
export class SandboxUnavailableError extends KilnError {
  constructor(message: string, options?: KilnErrorOptions) {
    super(SandboxErrorCode.Unavailable, false, message, options);
  }
}

registerErrorClass(SandboxErrorCode.Setup, SandboxSetupError);
registerErrorClass(SandboxErrorCode.Unavailable, SandboxUnavailableError);

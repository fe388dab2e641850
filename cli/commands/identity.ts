/**
 * Identities: `kiln identity new`, and the admin identity `kiln up` creates on first start.
 * An identity file holds the nkey seed (secret) on a line starting with `SU`, plus comments.
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import type { RoleContext, SourceApi } from "../../actors/index.ts";
import { ConflictError, Identity, Role, RoleClient, UnauthenticatedError, subjects } from "../../transport/index.ts";
import { adminIdentityPath } from "../config.ts";

export function identityFileText(id: Identity, note: string): string {
  return `# kiln identity (${note}); keep this file secret.\n# public key: ${id.publicKey}\n${id.seed()}\n`;
}

/** Writes a new identity file (refusing to overwrite) and returns the identity. */
export function writeNewIdentity(file: string, note: string): Identity {
  if (existsSync(file)) throw new ConflictError(`${file} already exists; refusing to overwrite an identity`);
  const id = Identity.create();
  writeFileSync(file, identityFileText(id, note), { mode: 0o600, flag: "wx" });
  return id;
}

/**
 * On first start, creates the admin identity and registers it as user `admin` (allowed while
 * kiln has no users). The key is registered before the file is written, so a failure leaves no
 * identity file that kiln would not accept.
 */
export async function bootstrapAdmin(ctx: RoleContext, dataDir: string): Promise<{ created: boolean }> {
  const file = adminIdentityPath(dataDir);
  if (existsSync(file)) return { created: false };
  const id = Identity.create();
  const source = new RoleClient<SourceApi>(ctx.rpc.withSigner(id), (t) => subjects.rpc(Role.Source, t));
  await source.call("user.add", { name: "admin", pubkey: id.publicKey, admin: true });
  writeFileSync(file, identityFileText(id, "admin of this kiln"), { mode: 0o600, flag: "wx" });
  return { created: true };
}

/** Where a node keeps the identity its roles sign their requests with. */
export function roleIdentityPath(dataDir: string): string {
  return path.join(dataDir, "role.identity");
}

/** The service user name of a node's role identity. */
export function roleUserName(nodeId: string): string {
  return `kiln-roles-${nodeId}`.slice(0, 100);
}

/**
 * The identity kiln's roles on this node sign with: read from `<data>/role.identity`, created
 * there on first use. It must be registered as a service user (`kiln up` and `kiln serve` with
 * the source role do that themselves).
 */
export function loadOrCreateRoleIdentity(dataDir: string): { identity: Identity; created: boolean; file: string } {
  const file = roleIdentityPath(dataDir);
  if (existsSync(file)) {
    const seed = readFileSync(file, "utf8")
      .split("\n")
      .find((l) => l.trim().startsWith("SU"));
    if (!seed) throw new UnauthenticatedError(`role identity file ${file} holds no nkey seed`);
    return { identity: Identity.fromSeed(seed), created: false, file };
  }
  const identity = Identity.create();
  writeFileSync(file, identityFileText(identity, "identity of kiln's roles on this node"), { mode: 0o600, flag: "wx" });
  return { identity, created: true, file };
}

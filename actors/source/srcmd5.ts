/**
 * The srcmd5 of a source tree, computed as OBS computes it (`BSSrcrep::calcsrcmd5` /
 * `addmeta`): the MD5 of the tree's manifest, one `"<md5>  <name>\n"` line per file (two spaces,
 * as `md5sum` writes), lines ordered by file name.
 *
 * OBS sorts the names with Perl's default string order; for byte strings and for character
 * strings alike that is the order of Unicode code points, which is also the order of their UTF-8
 * bytes. JavaScript's default sort compares UTF-16 code units instead, which differs for
 * characters above U+FFFF, so names are compared as UTF-8 bytes here.
 *
 * Names are not checked against the file-name rules: OBS also hashes trees that contain its
 * bookkeeping entries (`/LINK`, `/LOCAL`, …), and a revision's srcmd5 must be reproducible from
 * whatever it contains. Only what would make the manifest ambiguous is refused.
 */
import { createHash } from "node:crypto";
import { InvalidInputError } from "../../transport/index.ts";
import { quoteForMessage } from "../common/names.ts";

/** The srcmd5 of a package with no files: the MD5 of the empty string. */
export const EMPTY_SRCMD5 = "d41d8cd98f00b204e9800998ecf8427e";

/** A file as far as the srcmd5 is concerned. */
export interface Srcmd5File {
  name: string;
  /** Lower-case hexadecimal MD5 of the file's content. */
  md5: string;
}

const MD5_HEX = /^[0-9a-f]{32}$/;
// eslint-disable-next-line no-control-regex -- finding control characters is the point
const CONTROL_CHARS = /[\u0000-\u001f\u007f]/;
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/**
 * The manifest text whose MD5 is the srcmd5 (OBS stores it as `<srcmd5>-MD5SUMS`). Throws
 * {@link InvalidInputError} for a duplicate or empty name, a name with a control character or an
 * unpaired surrogate, or an md5 that is not 32 lower-case hex digits.
 */
export function srcmd5Manifest(files: readonly Srcmd5File[]): string {
  const seen = new Set<string>();
  const keyed = files.map((file, i) => {
    const { name, md5 } = file;
    if (typeof name !== "string" || name === "")
      throw new InvalidInputError(`file #${i}: name must be a non-empty string`);
    if (CONTROL_CHARS.test(name))
      throw new InvalidInputError(`file ${quoteForMessage(name)}: name contains a control character`);
    if (LONE_SURROGATE.test(name)) {
      throw new InvalidInputError(`file ${quoteForMessage(name)}: name contains an unpaired UTF-16 surrogate`);
    }
    if (typeof md5 !== "string" || !MD5_HEX.test(md5)) {
      throw new InvalidInputError(`file ${quoteForMessage(name)}: md5 must be 32 lower-case hex digits`);
    }
    if (seen.has(name)) throw new InvalidInputError(`file ${quoteForMessage(name)} is listed more than once`);
    seen.add(name);
    return { key: Buffer.from(name, "utf8"), line: `${md5}  ${name}\n` };
  });
  keyed.sort((a, b) => Buffer.compare(a.key, b.key));
  return keyed.map((k) => k.line).join("");
}

/** The srcmd5 of a tree with these files ({@link EMPTY_SRCMD5} for none). */
export function computeSrcmd5(files: readonly Srcmd5File[]): string {
  return createHash("md5").update(srcmd5Manifest(files), "utf8").digest("hex");
}

/**
 * The one value the worker checks in a dependency package besides its sha256 and size: OBS's
 * `hdrmd5`, the MD5 tag of the signature header (what the scheduler put into the job and the
 * build meta). Read with two positioned reads; the payload is never touched.
 */
import { open } from "node:fs/promises";
import { IntegrityError } from "../../transport/index.ts";

const LEAD_BYTES = 96;
const HEADER_MAGIC = 0x8eade801;
const SIGTAG_MD5 = 1004;
const BIN_TYPE = 7;
const MAX_INDEX = 4096;

/** The hex MD5 tag of an RPM's signature header, or undefined when it has none. */
export async function readHdrMd5(file: string): Promise<string | undefined> {
  const fh = await open(file, "r");
  try {
    const intro = Buffer.alloc(16);
    if ((await fh.read(intro, 0, 16, LEAD_BYTES)).bytesRead !== 16 || intro.readUInt32BE(0) !== HEADER_MAGIC) {
      throw new IntegrityError(`${file} is not an RPM package (no signature header)`);
    }
    const count = intro.readUInt32BE(8);
    const dataBytes = intro.readUInt32BE(12);
    if (count > MAX_INDEX || dataBytes > 64 * 1024 * 1024)
      throw new IntegrityError(`${file}: signature header too large`);
    const index = Buffer.alloc(count * 16);
    await fh.read(index, 0, index.length, LEAD_BYTES + 16);
    for (let i = 0; i < count; i++) {
      const at = i * 16;
      if (index.readUInt32BE(at) !== SIGTAG_MD5) continue;
      const type = index.readUInt32BE(at + 4);
      const offset = index.readUInt32BE(at + 8);
      const n = index.readUInt32BE(at + 12);
      if (type !== BIN_TYPE || n !== 16 || offset + 16 > dataBytes) {
        throw new IntegrityError(`${file}: malformed MD5 signature tag`);
      }
      const md5 = Buffer.alloc(16);
      await fh.read(md5, 0, 16, LEAD_BYTES + 16 + index.length + offset);
      return md5.toString("hex");
    }
    return undefined;
  } finally {
    await fh.close();
  }
}

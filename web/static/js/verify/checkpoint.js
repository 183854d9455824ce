// checkpoint.js — c2sp.org/tlog-checkpoint text, parsed as strictly as hsm_signer.log.checkpoint.

import { b64decodeStrict, codePoint, firstLoneSurrogate, quote, typeName } from "./bytes.js";
import { FormatError } from "./errors.js";
import { ID_PATTERN } from "./leaf.js";
import { HASH_SIZE } from "./merkle.js";

const fail = (message) => new FormatError(message, "checkpoint.syntax");
const MAX_SIZE = 2n ** 63n - 1n;
export const LEGACY_ORIGIN_PREFIX = "hsm-signer";
const MAX_ORIGIN = 255;
const ORIGIN_PREFIX = /^[A-Za-z0-9._~-]+(?:\/[A-Za-z0-9._~-]+)*$/;

function checkLine(value, what) {
  for (let i = 0; i < value.length; i++) {
    if (value.charCodeAt(i) < 0x20) {
      throw new FormatError(
        `${what} must not contain ${codePoint(value.charCodeAt(i))} (newlines and control characters are not allowed)`,
        "checkpoint.syntax");
    }
  }
  const lone = firstLoneSurrogate(value);
  if (lone >= 0) {
    throw new FormatError(`${what} must not contain ${codePoint(lone)} (newlines and control characters are not allowed)`,
      "checkpoint.syntax");
  }
}

/** Parse checkpoint note text strictly: {origin, size (BigInt), rootHash, extensions}. */
export function parseCheckpoint(text) {
  if (typeof text !== "string") throw fail(`checkpoint text must be a string, got ${typeName(text)}`);
  if (!text.endsWith("\n")) throw fail("checkpoint text must end with a newline");
  const lines = text.slice(0, -1).split("\n");
  if (lines.length < 3) throw fail(`checkpoint text has ${lines.length} line(s); it needs origin, size and root hash`);
  lines.forEach((line, i) => {
    if (!line) throw fail(`checkpoint line ${i + 1} is empty; checkpoint lines must be non-empty`);
  });
  const [origin, size, root] = lines;
  if (!/^(?:0|[1-9][0-9]*)$/.test(size)) {
    throw fail(`checkpoint line 2 (tree size) must be a decimal number without leading zeros, got ${quote(size.slice(0, 40))}`);
  }
  if (BigInt(size) > MAX_SIZE) throw fail(`checkpoint tree size ${size.slice(0, 40)} is too large (at most ${MAX_SIZE})`);
  const rootHash = b64decodeStrict(root, "checkpoint line 3 (root hash)");
  if (rootHash.length !== HASH_SIZE) {
    throw fail(`checkpoint line 3 (root hash) must decode to ${HASH_SIZE} bytes, got ${rootHash.length}`);
  }
  checkLine(origin, "checkpoint origin");
  lines.slice(3).forEach((line, i) => checkLine(line, `checkpoint extension line ${i + 1}`));
  return { origin, size: BigInt(size), rootHash, extensions: lines.slice(3) };
}

/** The `tally <contest> <option> <count>` extension lines of a signed tally, parsed. */
export function tallyCounts(extensions) {
  const counts = [];
  for (const line of extensions) {
    const m = /^tally (\S+) (\S+) (0|[1-9][0-9]*)$/.exec(line);
    if (m) counts.push({ contest: m[1], option: m[2], count: Number(m[3]), line });
  }
  return counts;
}

/** The election an origin names (its last segment), if the origin is <origin prefix>/<election id>. */
export function electionOfOrigin(origin) {
  if (typeof origin === "string" && origin.includes("/")) {
    const cut = origin.lastIndexOf("/");
    const prefix = origin.slice(0, cut);
    const election = origin.slice(cut + 1);
    if (ORIGIN_PREFIX.test(prefix) && prefix.length <= MAX_ORIGIN - 65 && ID_PATTERN.test(election)) return election;
  }
  throw new FormatError(`log origin ${quote(origin)} is not <origin prefix>/<election id>`, "checkpoint.origin");
}

/** origin if it is <prefix>/<election>, else FormatError (as hsm_signer.log.checkpoint.check_origin). */
export function checkOrigin(origin, election) {
  if (electionOfOrigin(origin) !== election) {
    throw new FormatError(`log origin ${quote(origin)} does not name election ${quote(election)} ` +
      "(an origin is <origin prefix>/<election id>)", "checkpoint.origin");
  }
  return origin;
}

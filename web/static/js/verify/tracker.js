// tracker.js — the ballot tracker (hsm_signer.log.tracker): the first 8 bytes of the entry's
// RFC 9162 leaf hash as 16 hex digits in four groups, e.g. 3f9a-12bc-77de-0a41.

import { toHex } from "./bytes.js";
import { leafHash } from "./merkle.js";

export async function trackerOf(leaf) {
  const digits = toHex((await leafHash(leaf)).slice(0, 8));
  return digits.match(/.{4}/g).join("-");
}

// sha256.js — the browser's WebCrypto, or a clear "this browser cannot check" error.

import { UnsupportedError } from "./errors.js";

export function subtle() {
  if (!globalThis.crypto || !globalThis.crypto.subtle) {
    throw new UnsupportedError(
      "this browser offers no WebCrypto here: open the page over HTTPS (or from localhost) in a current browser");
  }
  return globalThis.crypto.subtle;
}

export async function sha256(bytes) {
  return new Uint8Array(await subtle().digest("SHA-256", bytes));
}

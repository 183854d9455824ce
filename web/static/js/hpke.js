// HPKE (RFC 9180) base mode for the one suite sealed ballots use, with WebCrypto only.
//
// Suite: DHKEM(P-256, HKDF-SHA256), HKDF-SHA256, AES-256-GCM (and the AES-128-GCM twin the
// RFC prints, for its test vector). The mirror of hsm_signer/log/hpke.py: the same labels,
// the same byte layout (`enc || ct`, enc = the 65-byte uncompressed ephemeral point).
// Served by the app itself; no third-party code. This module never sends anything anywhere
// and never keeps a key: the ephemeral private key lives only inside one `seal` call.

export const KEM_P256_HKDF_SHA256 = 0x0010;
export const KDF_HKDF_SHA256 = 0x0001;
export const AEAD_AES_128_GCM = 0x0001;
export const AEAD_AES_256_GCM = 0x0002;
export const N_ENC = 65;
export const N_SECRET = 32;
export const N_NONCE = 12;
export const N_TAG = 16;
const KEY_BYTES = { [AEAD_AES_128_GCM]: 16, [AEAD_AES_256_GCM]: 32 };
const ENCODER = new TextEncoder();
const VERSION_LABEL = ENCODER.encode("HPKE-v1");
const P256 = { name: "ECDH", namedCurve: "P-256" };

export class HpkeError extends Error {
  constructor(code, message) {
    super(message);
    this.name = "HpkeError";
    this.code = code; // stable: "bad-point", "bad-length", "cannot-open", "bad-aead"
  }
}

export function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function i2osp(value, length) {
  const out = new Uint8Array(length);
  for (let i = length - 1; i >= 0; i--, value >>= 8) out[i] = value & 0xff;
  return out;
}

const KEM_SUITE_ID = concat(ENCODER.encode("KEM"), i2osp(KEM_P256_HKDF_SHA256, 2));

function hpkeSuiteId(aeadId) {
  return concat(ENCODER.encode("HPKE"), i2osp(KEM_P256_HKDF_SHA256, 2), i2osp(KDF_HKDF_SHA256, 2), i2osp(aeadId, 2));
}

async function hmac(key, data) {
  // HMAC pads its key with zeros to the block size, so an empty salt (RFC 5869: HashLen
  // zero bytes) is the same key as 32 zero bytes; WebCrypto refuses a zero-length key.
  const raw = key.length ? key : new Uint8Array(32);
  const k = await crypto.subtle.importKey("raw", raw, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  return new Uint8Array(await crypto.subtle.sign("HMAC", k, data));
}

async function expand(prk, info, length) {
  let out = new Uint8Array(0);
  let block = new Uint8Array(0);
  for (let counter = 1; out.length < length; counter++) {
    block = await hmac(prk, concat(block, info, Uint8Array.of(counter)));
    out = concat(out, block);
  }
  return out.slice(0, length);
}

/** RFC 9180 §4 LabeledExtract. */
export function labeledExtract(suiteId, salt, label, ikm) {
  return hmac(salt, concat(VERSION_LABEL, suiteId, ENCODER.encode(label), ikm));
}

/** RFC 9180 §4 LabeledExpand. */
export function labeledExpand(suiteId, prk, label, info, length) {
  return expand(prk, concat(i2osp(length, 2), VERSION_LABEL, suiteId, ENCODER.encode(label), info), length);
}

/** A P-256 public key (WebCrypto) from its 65-byte uncompressed SEC1 encoding; HpkeError if it is not one. */
export async function importPublicKey(bytes) {
  if (!(bytes instanceof Uint8Array) || bytes.length !== N_ENC || bytes[0] !== 0x04) {
    throw new HpkeError("bad-point", `expected an uncompressed P-256 point (${N_ENC} bytes starting 0x04)`);
  }
  try {
    return await crypto.subtle.importKey("raw", bytes, P256, true, []);
  } catch {
    throw new HpkeError("bad-point", "the bytes are not a point on the P-256 curve");
  }
}

function b64url(bytes) {
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** A P-256 private key from its 32-byte scalar and its public point (test vectors and tests only). */
export function importPrivateKey(scalar, publicKey) {
  const jwk = { kty: "EC", crv: "P-256", d: b64url(scalar), x: b64url(publicKey.slice(1, 33)),
                y: b64url(publicKey.slice(33, 65)), ext: false };
  return crypto.subtle.importKey("jwk", jwk, P256, false, ["deriveBits"]);
}

async function dh(privateKey, publicKey) {
  return new Uint8Array(await crypto.subtle.deriveBits({ name: "ECDH", public: publicKey }, privateKey, 256));
}

/** DHKEM's ExtractAndExpand(dh, enc || pkR): the KEM shared secret. */
export async function sharedSecretFromDh(dhBytes, enc, publicKey) {
  const eaePrk = await labeledExtract(KEM_SUITE_ID, new Uint8Array(0), "eae_prk", dhBytes);
  return labeledExpand(KEM_SUITE_ID, eaePrk, "shared_secret", concat(enc, publicKey), N_SECRET);
}

/** RFC 9180 §5.1 KeySchedule, base mode: {key, baseNonce, exporterSecret}. */
export async function keySchedule(sharedSecret, info, aeadId = AEAD_AES_256_GCM) {
  if (!(aeadId in KEY_BYTES)) throw new HpkeError("bad-aead", `unsupported AEAD id ${aeadId}`);
  const suiteId = hpkeSuiteId(aeadId);
  const empty = new Uint8Array(0);
  const pskIdHash = await labeledExtract(suiteId, empty, "psk_id_hash", empty);
  const infoHash = await labeledExtract(suiteId, empty, "info_hash", info);
  const context = concat(Uint8Array.of(0), pskIdHash, infoHash);
  const secret = await labeledExtract(suiteId, sharedSecret, "secret", empty);
  return {
    aeadId,
    key: await labeledExpand(suiteId, secret, "key", context, KEY_BYTES[aeadId]),
    baseNonce: await labeledExpand(suiteId, secret, "base_nonce", context, N_NONCE),
    exporterSecret: await labeledExpand(suiteId, secret, "exp", context, N_SECRET),
  };
}

/** The nonce of message `seq` (base_nonce XOR seq, seq < 2^53). */
export function nonce(context, seq = 0) {
  const out = context.baseNonce.slice();
  for (let i = N_NONCE - 1, s = seq; s > 0; i--, s = Math.floor(s / 256)) out[i] ^= s % 256;
  return out;
}

async function aesKey(context, usage) {
  return crypto.subtle.importKey("raw", context.key, { name: "AES-GCM" }, false, [usage]);
}

export async function contextSeal(context, plaintext, aad = new Uint8Array(0), seq = 0) {
  const params = { name: "AES-GCM", iv: nonce(context, seq), additionalData: aad, tagLength: 128 };
  return new Uint8Array(await crypto.subtle.encrypt(params, await aesKey(context, "encrypt"), plaintext));
}

export async function contextOpen(context, ciphertext, aad = new Uint8Array(0), seq = 0) {
  const params = { name: "AES-GCM", iv: nonce(context, seq), additionalData: aad, tagLength: 128 };
  try {
    return new Uint8Array(await crypto.subtle.decrypt(params, await aesKey(context, "decrypt"), ciphertext));
  } catch {
    throw new HpkeError("cannot-open", "the sealed ballot does not open with this secret "
      + "(the secret is wrong, or the ciphertext or its context was altered)");
  }
}

/**
 * DHKEM Encap(pkR): {sharedSecret, enc}. `ephemeral` ({scalar, publicKey} bytes) is for
 * test vectors only; otherwise a fresh non-extractable key pair is made and dropped.
 */
export async function encapsulate(publicKey, ephemeral = null) {
  const recipient = await importPublicKey(publicKey);
  let privateKey, enc;
  if (ephemeral) {
    privateKey = await importPrivateKey(ephemeral.scalar, ephemeral.publicKey);
    enc = ephemeral.publicKey;
  } else {
    const pair = await crypto.subtle.generateKey(P256, false, ["deriveBits"]);
    privateKey = pair.privateKey;
    enc = new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
  }
  return { sharedSecret: await sharedSecretFromDh(await dh(privateKey, recipient), enc, publicKey), enc };
}

/** Single-shot base-mode seal: `enc || ct`, as hsm_signer.log.hpke.seal. */
export async function seal(publicKey, info, plaintext, { aeadId = AEAD_AES_256_GCM, ephemeral = null } = {}) {
  const { sharedSecret, enc } = await encapsulate(publicKey, ephemeral);
  return concat(enc, await contextSeal(await keySchedule(sharedSecret, info, aeadId), plaintext));
}

/** [enc, ct]; HpkeError unless enc is a P-256 point and a tag follows it. */
export async function splitSealed(sealed) {
  if (!(sealed instanceof Uint8Array) || sealed.length < N_ENC + N_TAG) {
    throw new HpkeError("bad-length", `a sealed message is at least ${N_ENC + N_TAG} bytes (enc || ciphertext || tag)`);
  }
  const enc = sealed.slice(0, N_ENC);
  await importPublicKey(enc);
  return [enc, sealed.slice(N_ENC)];
}

/** Open `enc || ct` with its published KEM shared secret (what anyone can re-run after the close). */
export async function openWithSharedSecret(sharedSecret, info, sealed, aeadId = AEAD_AES_256_GCM) {
  if (sharedSecret.length !== N_SECRET) {
    throw new HpkeError("bad-length", `a shared secret is ${N_SECRET} bytes, got ${sharedSecret.length}`);
  }
  const [, ct] = await splitSealed(sealed);
  return contextOpen(await keySchedule(sharedSecret, info, aeadId), ct);
}

/** DHKEM Decap with a private key given as bytes (tests only: the real key never leaves the HSM). */
export async function decapsulate(scalar, publicKey, enc) {
  const privateKey = await importPrivateKey(scalar, publicKey);
  return sharedSecretFromDh(await dh(privateKey, await importPublicKey(enc)), enc, publicKey);
}

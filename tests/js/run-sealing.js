// Run the sealed-ballot vectors and the RFC 9180 vectors through web/static/js/hpke.js and
// sealed.js; tests/test_js_sealing.py compares the outcomes with Python's, case by case.

import * as hpke from "/static/js/hpke.js";
import * as sealed from "/static/js/sealed.js";

export const hex = (s) => Uint8Array.from(s.match(/../g) || [], (h) => parseInt(h, 16));
export const toHex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
export const b64 = (s) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
export const toB64 = (b) => btoa(String.fromCharCode(...b));

function failure(exc) {
  if (!(exc instanceof hpke.HpkeError || exc instanceof sealed.SealedFormatError)) throw exc;
  return { valid: false, code: exc.code, message: exc.message };
}

/** Every RFC 9180 vector of the suite: key schedule and all 257 encryptions, with a fixed ephemeral key. */
export async function rfc9180(vectors) {
  const out = [];
  for (const v of vectors) {
    const pkR = hex(v.pkRm);
    const { sharedSecret, enc } = await hpke.encapsulate(pkR, { scalar: hex(v.skEm), publicKey: hex(v.pkEm) });
    const decapsulated = await hpke.decapsulate(hex(v.skRm), pkR, enc);
    const ctx = await hpke.keySchedule(sharedSecret, hex(v.info), v.aead_id);
    const mismatches = [];
    for (const [seq, e] of v.encryptions.entries()) {
      if (toHex(hpke.nonce(ctx, seq)) !== e.nonce) mismatches.push(`nonce ${seq}`);
      const ct = await hpke.contextSeal(ctx, hex(e.pt), hex(e.aad), seq);
      if (toHex(ct) !== e.ct) mismatches.push(`ct ${seq}`);
      if (toHex(await hpke.contextOpen(ctx, ct, hex(e.aad), seq)) !== e.pt) mismatches.push(`open ${seq}`);
    }
    const single = v.aead_id === hpke.AEAD_AES_256_GCM
      ? toHex(await hpke.seal(pkR, hex(v.info), hex(v.encryptions[0].pt), { aeadId: v.aead_id,
          ephemeral: { scalar: hex(v.skEm), publicKey: hex(v.pkEm) } })) : null;
    out.push({ aead_id: v.aead_id, enc: toHex(enc), shared_secret: toHex(sharedSecret), decapsulated: toHex(decapsulated),
               key: toHex(ctx.key), base_nonce: toHex(ctx.baseNonce), exporter_secret: toHex(ctx.exporterSecret),
               encryptions: v.encryptions.length, mismatches, single });
  }
  return out;
}

/** The shared sealed-ballot vectors: {case name: outcome}. */
export async function sealedVectors(doc) {
  const out = {};
  const sk = hex(doc.recipient.scalar), pk = hex(doc.recipient.public);
  for (const c of doc.seal) {
    const box = await sealed.sealBallot(pk, c.election, c.channel, c.ballot_id, c.selections, c.padded_size,
      { ephemeral: { scalar: hex(c.ephemeral.scalar), publicKey: hex(c.ephemeral.public) } });
    out[`seal/${c.name}`] = {
      info: toHex(sealed.sealingInfo(c.election, c.channel, c.ballot_id)),
      plaintext: toHex(sealed.encodePlaintext(c.selections, c.padded_size)),
      sealed: toB64(box),
      shared_secret: toHex(await hpke.decapsulate(sk, pk, box.slice(0, hpke.N_ENC))),
    };
  }
  for (const c of doc.open) {
    const size = doc.seal.find((s) => s.name === c.case).padded_size;
    const box = b64(c.sealed);
    try {
      const secret = await hpke.decapsulate(sk, pk, box.slice(0, hpke.N_ENC));
      out[`open/${c.name}`] = { valid: true,
        selections: await sealed.openSealed(secret, c.election, c.channel, c.ballot_id, box, size) };
    } catch (exc) {
      out[`open/${c.name}`] = failure(exc);
    }
  }
  for (const c of doc.decode) {
    try {
      out[`decode/${c.name}`] = { valid: true, selections: sealed.decodePlaintext(hex(c.plaintext), c.size) };
    } catch (exc) {
      out[`decode/${c.name}`] = failure(exc);
    }
  }
  return out;
}

// errors.js — the errors every check throws, each with a stable code.
//
// `kind` sorts a failure (malformed input, a failed check, a proof leading to another
// root, a browser that cannot check); `code` says what failed, in words shared with the
// Python verifier (hsm_signer.errors: VerificationError.code), so both can be compared
// on any input whatever their messages say. docs/FORMATS.md lists the codes.

/** A signature, proof, receipt or bundle failed to verify. */
export class VerificationError extends Error {
  constructor(message, code = "verification-failed") {
    super(message);
    this.code = code;
  }

  get kind() { return "verification"; }

  /** The same error (class and code) with context in front of its message. */
  within(context) {
    return new this.constructor(`${context}: ${this.message}`, this.code);
  }
}
Object.defineProperty(VerificationError.prototype, "name", { value: "VerificationError" });

/** Input (a note, receipt, proof, bundle) is malformed before any check runs. */
export class FormatError extends VerificationError {
  constructor(message, code = "malformed") { super(message, code); }
  get kind() { return "format"; }
}
Object.defineProperty(FormatError.prototype, "name", { value: "FormatError" });

/** A well-formed proof leads to a different root than the one expected. */
export class RootMismatchError extends VerificationError {
  constructor(message, code = "proof.root-mismatch") { super(message, code); }
  get kind() { return "root-mismatch"; }
}
Object.defineProperty(RootMismatchError.prototype, "name", { value: "RootMismatchError" });

/** This browser lacks what a check needs (WebCrypto, or Ed25519 in it): nothing was decided. */
export class UnsupportedError extends VerificationError {
  constructor(message, code = "unsupported") { super(message, code); }
  get kind() { return "unsupported"; }
  within() { return this; } // the message is for the voter as it stands
}
Object.defineProperty(UnsupportedError.prototype, "name", { value: "UnsupportedError" });

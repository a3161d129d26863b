// Message signatures as `personal_sign` / `eth_signTypedData_v4` answer them (spec §13):
// `PublicKeys ‖ DualSignature`, the signature over a 32-byte digest in the contract domain,
// which `QoinSignatures.sol` and the DUAL precompile verify.
import { ascii, concat, fromHex, keccak256, toHex, type Hex } from './bytes.js';
import { addressOf, Domain, PUBLIC_KEYS_LEN, QoinKeys, SIGNATURE_LEN, verify } from './keys.js';

/** Length of a signed message: keys (2,210) then the dual signature (3,087). */
export const SIGNED_MESSAGE_LEN = PUBLIC_KEYS_LEN + SIGNATURE_LEN;

/** The EIP-191 digest `keccak256("\x19Ethereum Signed Message:\n" ‖ len ‖ message)`. */
export function hashMessage(message: string | Uint8Array): Hex {
  const m = typeof message === 'string' ? ascii(message) : message;
  return toHex(keccak256(concat(ascii(`\x19Ethereum Signed Message:\n${m.length}`), m)));
}

/** Signs a 32-byte digest (EIP-191 or EIP-712) in the contract domain: `keys ‖ signature`. */
export function signDigest(digest: string | Uint8Array, keys: QoinKeys): Hex {
  const d = typeof digest === 'string' ? fromHex(digest) : digest;
  if (d.length !== 32) throw new Error(`a digest is 32 bytes, got ${d.length}`);
  return toHex(concat(keys.publicKeys, keys.sign(Domain.Contract, d)));
}

/** `personal_sign`: the EIP-191 digest of `message`, signed. Strings are signed as UTF-8. */
export function signMessage(message: string | Uint8Array, keys: QoinKeys): Hex {
  return signDigest(hashMessage(message), keys);
}

/**
 * The signer of a signed digest (the address of its keys), or null if it does not verify:
 * what `QoinSignatures.recover` answers on chain.
 */
export function recoverDigestSigner(digest: string | Uint8Array, signed: string | Uint8Array): Hex | null {
  const d = typeof digest === 'string' ? fromHex(digest) : digest;
  const s = typeof signed === 'string' ? fromHex(signed) : signed;
  if (d.length !== 32 || s.length !== SIGNED_MESSAGE_LEN) return null;
  const keys = s.subarray(0, PUBLIC_KEYS_LEN);
  if (!verify(keys, Domain.Contract, d, s.subarray(PUBLIC_KEYS_LEN))) return null;
  return addressOf(keys);
}

/** The signer of a `personal_sign` signature over `message`, or null. */
export function recoverMessageSigner(message: string | Uint8Array, signed: string | Uint8Array): Hex | null {
  return recoverDigestSigner(hashMessage(message), signed);
}

// Dual Falcon-512 + ML-DSA-44 keys: generation, addresses, signing and verification (spec §2).
import { falcon512padded } from '@noble/post-quantum/falcon.js';
import { ml_dsa44 } from '@noble/post-quantum/ml-dsa.js';
import { shake256 } from '@noble/hashes/sha3.js';
import { randomBytes } from '@noble/hashes/utils.js';
import { ascii, checksumAddress, concat, keccak256, type Hex } from './bytes.js';

/** The one suite version 1 of the chain accepts: Falcon-512 (padded) + ML-DSA-44. */
export const SUITE = 0x01;
export const FALCON_PK_LEN = 897;
export const FALCON_SK_LEN = 1281;
export const FALCON_SIG_LEN = 666;
export const MLDSA_PK_LEN = 1312;
export const MLDSA_SIG_LEN = 2420;
/** `suite ‖ falcon_pk ‖ mldsa_pk`: 2,210 bytes. */
export const PUBLIC_KEYS_LEN = 1 + FALCON_PK_LEN + MLDSA_PK_LEN;
/** `suite ‖ falcon_sig ‖ mldsa_sig`: 3,087 bytes. */
export const SIGNATURE_LEN = 1 + FALCON_SIG_LEN + MLDSA_SIG_LEN;
export const SEED_LEN = 32;

/** The signing domains of spec §2.2: a signature made in one never verifies in another. */
export const Domain = {
  Transaction: 'QOIN/TX/v1',
  MiningTicket: 'QOIN/MINING-TICKET/v1',
  Contract: 'QOIN/CONTRACT/v1',
} as const;
export type Domain = (typeof Domain)[keyof typeof Domain];

/** `len(tag) ‖ tag ‖ msg`: what both schemes sign. */
export function signingMessage(domain: Domain, msg: Uint8Array): Uint8Array {
  const tag = ascii(domain);
  return concat(Uint8Array.of(tag.length), tag, msg);
}

const MLDSA_KEYGEN_TAG = 'QOIN/KEYGEN/ML-DSA-44/v1';

/** ML-DSA-44's ξ for a master seed: `SHAKE256("QOIN/KEYGEN/ML-DSA-44/v1" ‖ seed)[..32]`. */
function mldsaXi(seed: Uint8Array): Uint8Array {
  return shake256(concat(ascii(MLDSA_KEYGEN_TAG), seed), { dkLen: 32 });
}

/** The address of a `PublicKeys` encoding: `keccak256("QOIN/ADDRESS/v1" ‖ keys)[12..32]`. */
export function addressOf(publicKeys: Uint8Array): Hex {
  checkPublicKeys(publicKeys);
  return checksumAddress(keccak256(concat(ascii('QOIN/ADDRESS/v1'), publicKeys)).slice(12));
}

function checkPublicKeys(pk: Uint8Array): void {
  if (pk.length !== PUBLIC_KEYS_LEN) throw new Error(`public keys must be ${PUBLIC_KEYS_LEN} bytes, got ${pk.length}`);
  if (pk[0] !== SUITE) throw new Error(`unsupported signature suite 0x${pk[0].toString(16)}`);
  if (pk[1] !== 0x09) throw new Error('not a Falcon-512 public key (header byte must be 0x09)');
}

/**
 * Verifies a dual signature: both halves must verify over `len(tag) ‖ tag ‖ msg`.
 * Answers false (never throws) for a signature or keys of the wrong shape.
 */
export function verify(publicKeys: Uint8Array, domain: Domain, msg: Uint8Array, signature: Uint8Array): boolean {
  try {
    checkPublicKeys(publicKeys);
  } catch {
    return false;
  }
  if (signature.length !== SIGNATURE_LEN || signature[0] !== publicKeys[0]) return false;
  const m = signingMessage(domain, msg);
  const fpk = publicKeys.subarray(1, 1 + FALCON_PK_LEN);
  const dpk = publicKeys.subarray(1 + FALCON_PK_LEN);
  const fsig = signature.subarray(1, 1 + FALCON_SIG_LEN);
  const dsig = signature.subarray(1 + FALCON_SIG_LEN);
  try {
    return falcon512padded.verify(fsig, m, fpk) && ml_dsa44.verify(dsig, m, dpk);
  } catch {
    return false;
  }
}

/**
 * A dual key pair. Keys made here use noble's Falcon generator, so a seed alone does not
 * reproduce them elsewhere: save them as a keystore file (version 2 carries the Falcon
 * secret key beside the seed, spec §2.5 and §8) to use them with `qoin-el`.
 */
export class QoinKeys {
  /** `suite ‖ falcon_pk ‖ mldsa_pk` (2,210 bytes). */
  readonly publicKeys: Uint8Array;
  /** The account address, EIP-55 checksummed. */
  readonly address: Hex;
  readonly #seed: Uint8Array;
  readonly #falconSk: Uint8Array;
  readonly #mldsaSk: Uint8Array;

  private constructor(seed: Uint8Array, falconSk: Uint8Array) {
    if (seed.length !== SEED_LEN) throw new Error(`seed must be ${SEED_LEN} bytes, got ${seed.length}`);
    if (falconSk.length !== FALCON_SK_LEN || falconSk[0] !== 0x59) {
      throw new Error(`not a Falcon-512 secret key (${FALCON_SK_LEN} bytes, header byte 0x59)`);
    }
    const falconPk = falcon512padded.getPublicKey(falconSk);
    const mldsa = ml_dsa44.keygen(mldsaXi(seed));
    this.#seed = Uint8Array.from(seed);
    this.#falconSk = Uint8Array.from(falconSk);
    this.#mldsaSk = mldsa.secretKey;
    this.publicKeys = concat(Uint8Array.of(SUITE), falconPk, mldsa.publicKey);
    this.address = addressOf(this.publicKeys);
  }

  /** Fresh keys from the platform's secure randomness. */
  static generate(): QoinKeys {
    const falcon = falcon512padded.keygen(randomBytes(48));
    return new QoinKeys(randomBytes(SEED_LEN), falcon.secretKey);
  }

  /**
   * Keys from their secret parts, as a version-2 keystore holds them: the 32-byte master
   * seed (the ML-DSA keys are derived from it, spec §2.5) and the Falcon-512 secret key in
   * its standard encoding (1,281 bytes).
   */
  static fromSecretKeys(seed: Uint8Array, falconSecretKey: Uint8Array): QoinKeys {
    const keys = new QoinKeys(seed, falconSecretKey);
    // Decoding checks neither F nor the key equation fG - gF = q, and the public key comes
    // from f and g alone: a key whose F was altered would give the right address and then
    // sign wrongly. One signature and its check catch it (as qoin-el does).
    const probe = ascii('QOIN/KEY-CHECK/v1');
    let signs = false;
    try {
      signs = verify(keys.publicKeys, Domain.Contract, probe, keys.sign(Domain.Contract, probe));
    } catch {
      signs = false;
    }
    if (!signs) throw new Error('the Falcon-512 secret key does not sign for its public key');
    return keys;
  }

  /** The master seed (secret). */
  seed(): Uint8Array {
    return Uint8Array.from(this.#seed);
  }

  /** The Falcon-512 secret key in its standard encoding (secret). */
  falconSecretKey(): Uint8Array {
    return Uint8Array.from(this.#falconSk);
  }

  /** A dual signature (3,087 bytes) over `msg` in `domain`; randomised, as both schemes are. */
  sign(domain: Domain, msg: Uint8Array): Uint8Array {
    const m = signingMessage(domain, msg);
    const f = falcon512padded.sign(m, this.#falconSk);
    const d = ml_dsa44.sign(m, this.#mldsaSk);
    return concat(Uint8Array.of(SUITE), f, d);
  }
}

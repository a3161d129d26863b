// Keystore files (spec §8), read and written as `qoin-el account` does.
import { xchacha20poly1305 } from '@noble/ciphers/chacha.js';
import { argon2idAsync } from '@noble/hashes/argon2.js';
import { bytesToHex, randomBytes } from '@noble/hashes/utils.js';
import { ascii, concat, fromHex, keccak256, type Hex } from './bytes.js';
import { FALCON_SK_LEN, QoinKeys, SEED_LEN, SUITE } from './keys.js';

/** Argon2id costs: memory in KiB, passes, lanes. */
export interface KdfParams {
  m_cost_kib: number;
  t_cost: number;
  p_cost: number;
}

/** What `qoin-el account new` uses: 64 MiB, 3 passes, 1 lane. */
export const STANDARD_KDF: KdfParams = { m_cost_kib: 64 * 1024, t_cost: 3, p_cost: 1 };
/** Cheap costs for throw-away development keys and tests. */
export const LIGHT_KDF: KdfParams = { m_cost_kib: 256, t_cost: 1, p_cost: 1 };

/** The JSON of a keystore file. */
export interface KeystoreFile {
  version: number;
  address: string;
  suite: number;
  crypto: {
    kdf: string;
    kdfparams: KdfParams;
    salt: string;
    cipher: string;
    nonce: string;
    ciphertext: string;
    check: string;
  };
}

/** Why a keystore did not open: `wrong-password`, `tampered` or `malformed`. */
export class KeystoreError extends Error {
  constructor(
    readonly kind: 'wrong-password' | 'tampered' | 'malformed',
    message: string,
  ) {
    super(message);
    this.name = 'KeystoreError';
  }
}

function checkParams(p: KdfParams): void {
  if (typeof p !== 'object' || p === null) throw new KeystoreError('malformed', 'kdfparams must be an object');
  const ok =
    Number.isInteger(p.m_cost_kib) && Number.isInteger(p.t_cost) && Number.isInteger(p.p_cost) &&
    p.m_cost_kib >= 8 && p.m_cost_kib <= 4 * 1024 * 1024 && p.t_cost >= 1 && p.t_cost <= 64 &&
    p.p_cost >= 1 && p.p_cost <= 16 && p.m_cost_kib >= 8 * p.p_cost;
  if (!ok) throw new KeystoreError('malformed', `KDF parameters out of range: ${JSON.stringify(p)}`);
}

/** The associated data; `address` in its canonical form (lower-case, `0x`), as Rust writes it. */
function aad(version: number, address: Uint8Array, suite: number, p: KdfParams): Uint8Array {
  return ascii(`QOIN/KEYSTORE/v${version}|0x${bytesToHex(address)}|${suite}|${p.m_cost_kib}|${p.t_cost}|${p.p_cost}`);
}

async function derive(password: string | Uint8Array, salt: Uint8Array, p: KdfParams): Promise<Uint8Array> {
  const pw = typeof password === 'string' ? ascii(password) : password;
  return argon2idAsync(pw, salt, { m: p.m_cost_kib, t: p.t_cost, p: p.p_cost, dkLen: 64, version: 0x13 });
}

function checkValue(checkKey: Uint8Array): string {
  return bytesToHex(keccak256(concat(ascii('QOIN/KEYSTORE-CHECK/v1'), checkKey)));
}

function hexField(name: string, value: unknown, len?: number): Uint8Array {
  if (typeof value !== 'string') throw new KeystoreError('malformed', `${name} must be a hex string`);
  let b: Uint8Array;
  try {
    b = fromHex(value);
  } catch (e) {
    throw new KeystoreError('malformed', `${name}: ${(e as Error).message}`);
  }
  if (len !== undefined && b.length !== len) throw new KeystoreError('malformed', `${name} must be ${len} bytes, got ${b.length}`);
  return b;
}

const FIELDS = ['version', 'address', 'suite', 'crypto'];
const CRYPTO_FIELDS = ['kdf', 'kdfparams', 'salt', 'cipher', 'nonce', 'ciphertext', 'check'];

/** Parses and checks a keystore's JSON without the password (unknown fields are refused). */
export function parseKeystore(json: string | KeystoreFile): KeystoreFile {
  let f: KeystoreFile;
  try {
    f = typeof json === 'string' ? JSON.parse(json) : json;
  } catch (e) {
    throw new KeystoreError('malformed', `not JSON: ${(e as Error).message}`);
  }
  if (typeof f !== 'object' || f === null || typeof f.crypto !== 'object' || f.crypto === null) {
    throw new KeystoreError('malformed', 'not a keystore file');
  }
  for (const k of Object.keys(f)) if (!FIELDS.includes(k)) throw new KeystoreError('malformed', `unknown field ${k}`);
  for (const k of Object.keys(f.crypto)) {
    if (!CRYPTO_FIELDS.includes(k)) throw new KeystoreError('malformed', `unknown field crypto.${k}`);
  }
  if (f.version === 1) {
    throw new KeystoreError(
      'malformed',
      'a version-1 keystore holds only a seed, and its Falcon key can be derived only with fn-dsa-kgen ' +
        "(spec §2.5); qoin-el writes version 2, which carries the Falcon key: store the key again with qoin-el",
    );
  }
  if (f.version !== 2) throw new KeystoreError('malformed', `unsupported keystore version ${f.version}`);
  if (f.suite !== SUITE) throw new KeystoreError('malformed', `unsupported suite ${f.suite}`);
  if (f.crypto.kdf !== 'argon2id' || f.crypto.cipher !== 'xchacha20-poly1305') {
    throw new KeystoreError('malformed', `unsupported kdf/cipher ${f.crypto.kdf}/${f.crypto.cipher}`);
  }
  hexField('address', f.address, 20);
  hexField('check', f.crypto.check, 32);
  checkParams(f.crypto.kdfparams);
  return f;
}

/** Opens a keystore file with its password. */
export async function decryptKeystore(json: string | KeystoreFile, password: string | Uint8Array): Promise<QoinKeys> {
  const f = parseKeystore(json);
  const c = f.crypto;
  const salt = hexField('salt', c.salt, 32);
  const nonce = hexField('nonce', c.nonce, 24);
  const ciphertext = hexField('ciphertext', c.ciphertext, SEED_LEN + FALCON_SK_LEN + 16);
  const address = hexField('address', f.address, 20);
  const key = await derive(password, salt, c.kdfparams);
  if (checkValue(key.subarray(32)) !== bytesToHex(hexField('check', c.check, 32))) {
    throw new KeystoreError('wrong-password', 'wrong password for keystore');
  }
  let plain: Uint8Array;
  try {
    plain = xchacha20poly1305(key.subarray(0, 32), nonce, aad(f.version, address, f.suite, c.kdfparams)).decrypt(ciphertext);
  } catch {
    throw new KeystoreError('tampered', 'keystore file has been tampered with: authentication tag does not match');
  }
  let keys: QoinKeys;
  try {
    keys = QoinKeys.fromSecretKeys(plain.subarray(0, SEED_LEN), plain.subarray(SEED_LEN));
  } catch (e) {
    throw new KeystoreError('tampered', `keystore file has been tampered with: ${(e as Error).message}`);
  } finally {
    plain.fill(0);
  }
  if (keys.address.toLowerCase() !== `0x${bytesToHex(address)}`) {
    throw new KeystoreError('tampered', 'keystore file has been tampered with: address does not match the key');
  }
  return keys;
}

/**
 * Encrypts keys under a password as a version-2 keystore file (what `qoin-el` reads from its
 * keystore folder as `qoin-<address hex>.json`).
 */
export async function encryptKeystore(keys: QoinKeys, password: string | Uint8Array, params: KdfParams = STANDARD_KDF): Promise<KeystoreFile> {
  checkParams(params);
  const salt = randomBytes(32);
  const nonce = randomBytes(24);
  const key = await derive(password, salt, params);
  const address = keys.address.toLowerCase() as Hex;
  const plain = concat(keys.seed(), keys.falconSecretKey());
  const ciphertext = xchacha20poly1305(key.subarray(0, 32), nonce, aad(2, fromHex(address), SUITE, params)).encrypt(plain);
  plain.fill(0);
  return {
    version: 2,
    address,
    suite: SUITE,
    crypto: {
      kdf: 'argon2id',
      kdfparams: { ...params },
      salt: bytesToHex(salt),
      cipher: 'xchacha20-poly1305',
      nonce: bytesToHex(nonce),
      ciphertext: bytesToHex(ciphertext),
      check: checkValue(key.subarray(32)),
    },
  };
}

/** The file name `qoin-el` gives an account's keystore: `qoin-<address hex>.json`. */
export function keystoreFileName(address: string): string {
  return `qoin-${address.toLowerCase().replace(/^0x/, '')}.json`;
}

/**
 * qoin-js: a post-quantum signer for Qoin.
 *
 * Keys are dual (Falcon-512 + ML-DSA-44, on `@noble/post-quantum`); transactions are
 * type `0x51` (spec §4) sent with `eth_sendRawTransaction`; messages are signed as
 * `personal_sign` answers (spec §13); keys are stored in keystore files that `qoin-el` reads
 * (spec §8). The viem Account is in `qoin-js/viem`, the ethers Signer in `qoin-js/ethers`.
 */
export { checksumAddress, fromHex, toHex, type Hex, type Numberish } from './bytes.js';
export {
  addressOf,
  Domain,
  PUBLIC_KEYS_LEN,
  QoinKeys,
  SEED_LEN,
  SIGNATURE_LEN,
  signingMessage,
  SUITE,
  verify,
} from './keys.js';
export {
  decodeTransaction,
  MAX_TX_SIZE,
  signTransaction,
  transactionId,
  TX_TYPE,
  verifyTransaction,
  type AccessListEntry,
  type Transaction,
  type TransactionFields,
} from './tx.js';
export {
  hashMessage,
  recoverDigestSigner,
  recoverMessageSigner,
  signDigest,
  signMessage,
  SIGNED_MESSAGE_LEN,
} from './message.js';
export {
  decryptKeystore,
  encryptKeystore,
  KeystoreError,
  keystoreFileName,
  LIGHT_KDF,
  parseKeystore,
  STANDARD_KDF,
  type KdfParams,
  type KeystoreFile,
} from './keystore.js';

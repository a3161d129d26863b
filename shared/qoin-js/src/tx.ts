// Type-0x51 transactions (spec §4): the id, signing, the encoding and its decoding.
import { RLP } from '@ethereumjs/rlp';
import {
  addressBytes,
  bytesToInt,
  checksumAddress,
  concat,
  fromHex,
  intToBytes,
  keccak256,
  toBigInt,
  toHex,
  type Hex,
  type Numberish,
} from './bytes.js';
import { addressOf, Domain, PUBLIC_KEYS_LEN, QoinKeys, SIGNATURE_LEN, verify } from './keys.js';

/** The EIP-2718 type byte of a Qoin transaction. */
export const TX_TYPE = 0x51;
/** The largest encoded transaction a node accepts. */
export const MAX_TX_SIZE = 131_072;

/** One EIP-2930 access-list entry. */
export interface AccessListEntry {
  address: string;
  storageKeys: readonly string[];
}

/** The fields a sender chooses (everything but keys and signature). */
export interface TransactionFields {
  chainId: Numberish;
  nonce: Numberish;
  maxPriorityFeePerGas: Numberish;
  maxFeePerGas: Numberish;
  gas: Numberish;
  /** Recipient; absent, null or empty for a contract creation. */
  to?: string | null;
  value?: Numberish;
  /** Call data or init code, hex. */
  data?: string;
  accessList?: readonly AccessListEntry[];
}

/** A decoded transaction, integers as bigints. */
export interface Transaction {
  chainId: bigint;
  nonce: bigint;
  maxPriorityFeePerGas: bigint;
  maxFeePerGas: bigint;
  gas: bigint;
  to: Hex | null;
  value: bigint;
  data: Hex;
  accessList: AccessListEntry[];
  publicKeys: Uint8Array;
  signature: Uint8Array;
  /** The address of `publicKeys`. */
  from: Hex;
  /** The transaction id (`transactionHash`). */
  hash: Hex;
}

type RlpItem = Uint8Array | RlpItem[];

function unsignedItems(f: TransactionFields): RlpItem[] {
  const to = f.to == null || f.to === '' || f.to === '0x' ? new Uint8Array(0) : addressBytes(f.to, 'to');
  return [
    intToBytes(toBigInt(f.chainId, 'chainId'), 64, 'chainId'),
    intToBytes(toBigInt(f.nonce, 'nonce'), 64, 'nonce'),
    intToBytes(toBigInt(f.maxPriorityFeePerGas, 'maxPriorityFeePerGas'), 128, 'maxPriorityFeePerGas'),
    intToBytes(toBigInt(f.maxFeePerGas, 'maxFeePerGas'), 128, 'maxFeePerGas'),
    intToBytes(toBigInt(f.gas, 'gas'), 64, 'gas'),
    to,
    intToBytes(toBigInt(f.value ?? 0n, 'value'), 256, 'value'),
    f.data ? fromHex(f.data) : new Uint8Array(0),
    (f.accessList ?? []).map((e) => [
      addressBytes(e.address, 'accessList address'),
      e.storageKeys.map((k) => {
        const b = fromHex(k);
        if (b.length !== 32) throw new Error(`accessList storage key ${k} is not 32 bytes`);
        return b;
      }),
    ]),
  ];
}

/** The transaction id: keccak256(0x51 ‖ rlp([fields…, sender])), signatures excluded (§4). */
export function transactionId(fields: TransactionFields, sender: string): Hex {
  const pre = concat(Uint8Array.of(TX_TYPE), RLP.encode([...unsignedItems(fields), addressBytes(sender, 'sender')]));
  return toHex(keccak256(pre));
}

/** Signs `fields` with `keys` and answers the encoded transaction for `eth_sendRawTransaction`. */
export function signTransaction(fields: TransactionFields, keys: QoinKeys): Hex {
  const items = unsignedItems(fields);
  const id = fromHex(transactionId(fields, keys.address));
  const signature = keys.sign(Domain.Transaction, id);
  const encoded = concat(Uint8Array.of(TX_TYPE), RLP.encode([...items, keys.publicKeys, signature]));
  if (encoded.length > MAX_TX_SIZE) throw new Error(`transaction is ${encoded.length} bytes, at most ${MAX_TX_SIZE}`);
  return toHex(encoded);
}

function bytesItem(item: RlpItem | undefined, name: string): Uint8Array {
  if (!(item instanceof Uint8Array)) throw new Error(`${name}: expected a byte string`);
  return item;
}

function listItem(item: RlpItem | undefined, name: string): RlpItem[] {
  if (!Array.isArray(item)) throw new Error(`${name}: expected a list`);
  return item;
}

/**
 * Decodes an encoded transaction, checking its shape as a node does (canonical RLP, field
 * sizes, nothing after the list). It does not check the signature: see `verifyTransaction`.
 */
export function decodeTransaction(raw: string | Uint8Array): Transaction {
  const bytes = typeof raw === 'string' ? fromHex(raw) : raw;
  if (bytes.length > MAX_TX_SIZE) throw new Error(`transaction is ${bytes.length} bytes, at most ${MAX_TX_SIZE}`);
  if (bytes[0] !== TX_TYPE) throw new Error(`not a type-0x51 transaction (type byte 0x${(bytes[0] ?? 0).toString(16)})`);
  const decoded = RLP.decode(bytes.subarray(1)) as RlpItem; // throws on trailing bytes or bad lengths
  const f = listItem(decoded, 'transaction');
  if (f.length !== 11) throw new Error(`transaction has ${f.length} fields, expected 11`);
  const to = bytesItem(f[5], 'to');
  if (to.length !== 0 && to.length !== 20) throw new Error('to: must be 20 bytes or empty');
  const accessList = listItem(f[8], 'accessList').map((e) => {
    const pair = listItem(e, 'accessList entry');
    if (pair.length !== 2) throw new Error('accessList entry: expected [address, keys]');
    const a = bytesItem(pair[0], 'accessList address');
    if (a.length !== 20) throw new Error('accessList address: must be 20 bytes');
    const storageKeys = listItem(pair[1], 'accessList keys').map((k) => {
      const b = bytesItem(k, 'accessList key');
      if (b.length !== 32) throw new Error('accessList key: must be 32 bytes');
      return toHex(b);
    });
    return { address: checksumAddress(a), storageKeys };
  });
  const publicKeys = bytesItem(f[9], 'publicKeys');
  const signature = bytesItem(f[10], 'signature');
  if (publicKeys.length !== PUBLIC_KEYS_LEN) throw new Error(`publicKeys: must be ${PUBLIC_KEYS_LEN} bytes`);
  if (signature.length !== SIGNATURE_LEN) throw new Error(`signature: must be ${SIGNATURE_LEN} bytes`);
  const tx = {
    chainId: bytesToInt(bytesItem(f[0], 'chainId'), 64, 'chainId'),
    nonce: bytesToInt(bytesItem(f[1], 'nonce'), 64, 'nonce'),
    maxPriorityFeePerGas: bytesToInt(bytesItem(f[2], 'maxPriorityFeePerGas'), 128, 'maxPriorityFeePerGas'),
    maxFeePerGas: bytesToInt(bytesItem(f[3], 'maxFeePerGas'), 128, 'maxFeePerGas'),
    gas: bytesToInt(bytesItem(f[4], 'gas'), 64, 'gas'),
    to: to.length === 0 ? null : checksumAddress(to),
    value: bytesToInt(bytesItem(f[6], 'value'), 256, 'value'),
    data: toHex(bytesItem(f[7], 'data')),
    accessList,
    publicKeys,
    signature,
  };
  const from = addressOf(publicKeys);
  return { ...tx, from, hash: transactionId(tx, from) };
}

/**
 * Decodes a transaction and checks its dual signature over its id; answers the decoded
 * transaction (its `from` is then the proven sender) or throws why not.
 */
export function verifyTransaction(raw: string | Uint8Array): Transaction {
  const tx = decodeTransaction(raw);
  if (!verify(tx.publicKeys, Domain.Transaction, fromHex(tx.hash), tx.signature)) {
    throw new Error(`transaction ${tx.hash}: the dual signature does not verify`);
  }
  return tx;
}

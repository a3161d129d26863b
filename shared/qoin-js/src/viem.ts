// A viem custom Account that signs with Qoin keys: `walletClient.sendTransaction`,
// `writeContract`, `deployContract`, `signMessage` and `signTypedData` work unchanged.
import { hashMessage, hashTypedData, type LocalAccount, type TransactionSerializable } from 'viem';
import { toAccount } from 'viem/accounts';
import type { QoinKeys } from './keys.js';
import { signDigest } from './message.js';
import { signTransaction, type TransactionFields } from './tx.js';

/** The fields of a viem transaction request as a Qoin transaction (legacy `gasPrice` fills both fee caps). */
export function fieldsFromViem(tx: TransactionSerializable): TransactionFields {
  const t = tx as TransactionSerializable & { gasPrice?: bigint; maxFeePerGas?: bigint; maxPriorityFeePerGas?: bigint };
  const maxFeePerGas = t.maxFeePerGas ?? t.gasPrice;
  const maxPriorityFeePerGas = t.maxPriorityFeePerGas ?? t.gasPrice;
  if (t.chainId === undefined) throw new Error('qoin-js: the transaction has no chainId');
  if (t.nonce === undefined) throw new Error('qoin-js: the transaction has no nonce');
  if (t.gas === undefined) throw new Error('qoin-js: the transaction has no gas limit');
  if (maxFeePerGas === undefined || maxPriorityFeePerGas === undefined) throw new Error('qoin-js: the transaction has no fee');
  return {
    chainId: t.chainId,
    nonce: t.nonce,
    gas: t.gas,
    maxFeePerGas,
    maxPriorityFeePerGas,
    to: t.to ?? null,
    value: t.value ?? 0n,
    data: t.data ?? '0x',
    accessList: (t.accessList ?? []).map((e) => ({ address: e.address, storageKeys: e.storageKeys })),
  };
}

/**
 * A viem `LocalAccount` for Qoin keys, for `createWalletClient({ account, ... })`: viem fills
 * nonce, gas and fees from the node, this account signs a type-0x51 transaction, and viem
 * sends it with `eth_sendRawTransaction`.
 */
export function qoinAccount(keys: QoinKeys): LocalAccount {
  return toAccount({
    address: keys.address,
    async signMessage({ message }) {
      return signDigest(hashMessage(message), keys);
    },
    async signTransaction(transaction) {
      return signTransaction(fieldsFromViem(transaction), keys);
    },
    async signTypedData(typedData) {
      return signDigest(hashTypedData(typedData as Parameters<typeof hashTypedData>[0]), keys);
    },
  });
}

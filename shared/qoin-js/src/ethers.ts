// An ethers v6 Signer that signs with Qoin keys. ethers cannot parse a type-0x51
// transaction, so `sendTransaction` sends the raw bytes itself and answers the node's view of
// the transaction (which presents it with the fee model's type, spec §13).
import {
  AbstractSigner,
  accessListify,
  getNumber,
  toQuantity,
  type BlockTag,
  hashMessage,
  resolveAddress,
  TypedDataEncoder,
  type Provider,
  type TransactionLike,
  type TransactionRequest,
  type TransactionResponse,
  type TypedDataDomain,
  type TypedDataField,
} from 'ethers';
import type { QoinKeys } from './keys.js';
import { signDigest } from './message.js';
import { signTransaction, type TransactionFields } from './tx.js';

/** How long `sendTransaction` waits for the node to show a transaction it accepted. */
const SEEN_TIMEOUT_MS = 30_000;

interface RawSender {
  send(method: string, params: unknown[]): Promise<unknown>;
}

function hasSend(p: unknown): p is RawSender {
  return typeof (p as RawSender | null)?.send === 'function';
}

/** An ethers `Signer` for Qoin keys: `contract.connect(signer)`, `ContractFactory`, `signMessage` work. */
export class QoinSigner extends AbstractSigner {
  readonly keys: QoinKeys;

  constructor(keys: QoinKeys, provider?: Provider | null) {
    super(provider);
    this.keys = keys;
  }

  connect(provider: Provider | null): QoinSigner {
    return new QoinSigner(this.keys, provider);
  }

  async getAddress(): Promise<string> {
    return this.keys.address;
  }

  /**
   * The account's nonce, asked of the node each time: ethers' provider caches identical
   * calls for 250 ms, and a dev node mines faster than that, so the cached count of the
   * transaction before would be reused ("nonce has already been used").
   */
  async getNonce(blockTag?: BlockTag): Promise<number> {
    const provider = this.provider;
    if (!hasSend(provider)) return super.getNonce(blockTag);
    const tag = blockTag ?? 'latest';
    const count = await provider.send('eth_getTransactionCount', [this.keys.address, typeof tag === 'number' || typeof tag === 'bigint' ? toQuantity(tag) : tag]);
    return getNumber(count as string, 'nonce');
  }

  /** Signs a transaction request, filling what it lacks from the provider first. */
  async signTransaction(tx: TransactionRequest): Promise<string> {
    const needs = tx.nonce == null || tx.gasLimit == null || tx.chainId == null || (tx.maxFeePerGas == null && tx.gasPrice == null);
    const pop: TransactionLike<string> = needs ? await this.populateTransaction(tx) : ((await this.#resolve(tx)) as TransactionLike<string>);
    const from = pop.from == null ? null : await resolveAddress(pop.from, this.provider);
    if (from != null && from.toLowerCase() !== this.keys.address.toLowerCase()) {
      throw new Error(`qoin-js: transaction from ${from}, but this signer is ${this.keys.address}`);
    }
    const maxFeePerGas = pop.maxFeePerGas ?? pop.gasPrice;
    const maxPriorityFeePerGas = pop.maxPriorityFeePerGas ?? pop.gasPrice;
    if (maxFeePerGas == null || maxPriorityFeePerGas == null) throw new Error('qoin-js: the transaction has no fee');
    const fields: TransactionFields = {
      chainId: BigInt(pop.chainId ?? 0),
      nonce: BigInt(pop.nonce ?? 0),
      gas: BigInt(pop.gasLimit ?? 0),
      maxFeePerGas: BigInt(maxFeePerGas),
      maxPriorityFeePerGas: BigInt(maxPriorityFeePerGas),
      to: pop.to ?? null,
      value: BigInt(pop.value ?? 0),
      data: pop.data ?? '0x',
      accessList: pop.accessList == null ? [] : accessListify(pop.accessList),
    };
    return signTransaction(fields, this.keys);
  }

  async #resolve(tx: TransactionRequest): Promise<TransactionLike<string>> {
    const to = tx.to == null ? null : await resolveAddress(tx.to, this.provider);
    return { ...(tx as TransactionLike<string>), to, from: tx.from == null ? null : await resolveAddress(tx.from, this.provider) };
  }

  /** Fills, signs and sends with `eth_sendRawTransaction`; answers the node's transaction. */
  async sendTransaction(tx: TransactionRequest): Promise<TransactionResponse> {
    const provider = this.provider;
    if (provider == null) throw new Error('qoin-js: QoinSigner needs a provider to send');
    if (!hasSend(provider)) throw new Error('qoin-js: sending needs a JSON-RPC provider (one with send())');
    const raw = await this.signTransaction(await this.populateTransaction(tx));
    const hash = (await provider.send('eth_sendRawTransaction', [raw])) as string;
    const until = Date.now() + SEEN_TIMEOUT_MS;
    for (;;) {
      const seen = await provider.getTransaction(hash);
      if (seen != null) return seen;
      if (Date.now() > until) throw new Error(`qoin-js: the node accepted ${hash} but does not show it`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async signMessage(message: string | Uint8Array): Promise<string> {
    return signDigest(hashMessage(message), this.keys);
  }

  async signTypedData(
    domain: TypedDataDomain,
    types: Record<string, TypedDataField[]>,
    value: Record<string, unknown>,
  ): Promise<string> {
    const resolved = await TypedDataEncoder.resolveNames(domain, types, value, async (name) => resolveAddress(name, this.provider));
    return signDigest(TypedDataEncoder.hash(resolved.domain, types, resolved.value), this.keys);
  }
}

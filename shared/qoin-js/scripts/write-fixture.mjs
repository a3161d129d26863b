// Writes test/fixtures/js-keystore.json, which qoin-primitives' tests read: keys made here
// (noble's Falcon generator), their keystore, a transaction and a message signed here.
// Run by hand when the formats change: `npm run build && node scripts/write-fixture.mjs`.
import { writeFileSync } from 'node:fs';
import { QoinKeys, encryptKeystore, signTransaction, transactionId, signMessage, hashMessage, LIGHT_KDF } from '../dist/index.js';

const keys = QoinKeys.generate();
const password = 'js-side';
const tx = {
  chainId: 7777, nonce: 5, maxPriorityFeePerGas: 1_000_000_000n, maxFeePerGas: 30_000_000_000n, gas: 21000,
  to: '0x2222222222222222222222222222222222222222', value: 1_000_000n, data: '0x', accessList: [],
};
const message = 'signed by qoin-js';
const out = {
  comment: 'Written by qoin-js test/write-fixture.mjs: a keystore qoin-js wrote, a transaction and a message it signed.',
  password,
  file: await encryptKeystore(keys, password, LIGHT_KDF),
  signedTransaction: signTransaction(tx, keys),
  transactionId: transactionId(tx, keys.address),
  message,
  messageDigest: hashMessage(message),
  signedMessage: signMessage(message, keys),
};
writeFileSync(new URL('../test/fixtures/js-keystore.json', import.meta.url), JSON.stringify(out, null, 1) + '\n');

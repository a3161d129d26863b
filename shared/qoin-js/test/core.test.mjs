// Unit tests of qoin-js against the spec's test vectors and fixtures written by qoin-el.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { keccak_256 } from '@noble/hashes/sha3.js';
import { bytesToHex } from '@noble/hashes/utils.js';
import {
  QoinKeys, Domain, fromHex, toHex, transactionId, signTransaction, decodeTransaction, verifyTransaction,
  signMessage, recoverMessageSigner, recoverDigestSigner, signDigest, hashMessage, verify,
  encryptKeystore, decryptKeystore, parseKeystore, KeystoreError, LIGHT_KDF, SIGNED_MESSAGE_LEN,
} from '../dist/index.js';

const fixture = (name) => JSON.parse(readFileSync(new URL(`./fixtures/${name}`, import.meta.url), 'utf8'));
const seed01 = fixture('seed01.json');
const keys01 = QoinKeys.fromSecretKeys(fromHex(seed01.seed), fromHex(seed01.falconSecretKey));

test('spec §3: the seed-0x01 keys and address', () => {
  assert.equal(keys01.address.toLowerCase(), '0x96827940d45cffdc28a3ab3d27965680e74c8c26');
  const falconPk = keys01.publicKeys.subarray(1, 898);
  const mldsaPk = keys01.publicKeys.subarray(898);
  assert.equal(bytesToHex(keccak_256(falconPk)), 'e639751ff18a2ef8b9fa54fde6e531570b57107650b6223b2d9e2c81f748c796');
  // ML-DSA comes from the seed alone (FIPS 204 ξ), as in every implementation.
  assert.equal(bytesToHex(keccak_256(mldsaPk)), 'faf947b7ac30def52ed16d63872f0037a1cd68e21ad7144b867e7c9babeac8da');
});

const vectorTx = {
  chainId: 7777, nonce: 5, maxPriorityFeePerGas: 1_000_000_000n, maxFeePerGas: 30_000_000_000n, gas: 21000,
  to: '0x2222222222222222222222222222222222222222', value: 1_000_000n, data: '0x', accessList: [],
};

test('spec §4.1: the transaction id and encoded length', () => {
  assert.equal(transactionId(vectorTx, keys01.address), '0x251a157c972d5ab0e178f6c770135b48d94b7f5ba2908488d39e5ec7fd06da7b');
  const raw = signTransaction(vectorTx, keys01);
  assert.equal(fromHex(raw).length, 5352);
  const tx = verifyTransaction(raw);
  assert.equal(tx.hash, '0x251a157c972d5ab0e178f6c770135b48d94b7f5ba2908488d39e5ec7fd06da7b');
  assert.equal(tx.from, keys01.address);
  assert.equal(tx.value, 1_000_000n);
  assert.equal(tx.to, '0x2222222222222222222222222222222222222222');
});

test('a changed field, signature or key is caught', () => {
  const raw = fromHex(signTransaction({ ...vectorTx, data: '0xabcdef', accessList: [{ address: '0x' + '33'.repeat(20), storageKeys: ['0x' + '44'.repeat(32)] }] }, keys01));
  assert.equal(verifyTransaction(raw).accessList.length, 1);
  // Flip a byte of the ML-DSA signature (near the end) and of the Falcon signature.
  for (const at of [raw.length - 10, raw.length - 2500]) {
    const bad = Uint8Array.from(raw);
    bad[at] ^= 1;
    assert.throws(() => verifyTransaction(bad), /does not verify/);
  }
  // Trailing bytes, a wrong type byte, truncation: refused by the decoder.
  assert.throws(() => decodeTransaction(Uint8Array.from([...raw, 0])));
  assert.throws(() => decodeTransaction(Uint8Array.from([0x02, ...raw.subarray(1)])), /type-0x51/);
  assert.throws(() => decodeTransaction(raw.subarray(0, 100)));
  // Out-of-range fields are refused when signing, not wrapped.
  assert.throws(() => signTransaction({ ...vectorTx, nonce: 2n ** 64n }, keys01), /64 bits/);
  assert.throws(() => signTransaction({ ...vectorTx, value: -1n }, keys01), /negative/);
  assert.throws(() => signTransaction({ ...vectorTx, to: '0x1234' }, keys01), /20-byte/);
});

test('domains separate: a transaction signature does not verify as a contract message', () => {
  const id = fromHex(transactionId(vectorTx, keys01.address));
  const sig = keys01.sign(Domain.Transaction, id);
  assert.ok(verify(keys01.publicKeys, Domain.Transaction, id, sig));
  assert.ok(!verify(keys01.publicKeys, Domain.Contract, id, sig));
});

test('messages: personal_sign format, recovered signer', () => {
  const signed = signMessage('hello qoin', keys01);
  assert.equal(fromHex(signed).length, SIGNED_MESSAGE_LEN);
  assert.equal(recoverMessageSigner('hello qoin', signed), keys01.address);
  assert.equal(recoverMessageSigner('hello qoim', signed), null);
  assert.equal(recoverDigestSigner(hashMessage('hello qoin'), signed.slice(0, -2)), null);
  const digest = '0x' + '55'.repeat(32);
  assert.equal(recoverDigestSigner(digest, signDigest(digest, keys01)), keys01.address);
});

test('keys made here round-trip through a keystore; wrong password and tampering are told apart', async () => {
  const keys = QoinKeys.generate();
  const file = await encryptKeystore(keys, 'pw', LIGHT_KDF);
  assert.equal(file.version, 2);
  const back = await decryptKeystore(JSON.stringify(file), 'pw');
  assert.equal(back.address, keys.address);
  await assert.rejects(decryptKeystore(file, 'Pw'), (e) => e instanceof KeystoreError && e.kind === 'wrong-password');
  const ct = fromHex(file.crypto.ciphertext);
  ct[5] ^= 1;
  await assert.rejects(decryptKeystore({ ...file, crypto: { ...file.crypto, ciphertext: toHex(ct).slice(2) } }, 'pw'),
    (e) => e.kind === 'tampered');
  await assert.rejects(decryptKeystore({ ...file, address: '0x' + '11'.repeat(20) }, 'pw'), (e) => e.kind === 'tampered');
  assert.throws(() => parseKeystore({ ...file, extra: 1 }), /unknown field/);
  assert.throws(() => parseKeystore({ ...file, version: 1 }), /version-1 keystore holds only a seed/);
  assert.throws(() => parseKeystore({ ...file, crypto: { ...file.crypto, kdfparams: { m_cost_kib: 2 ** 31, t_cost: 1, p_cost: 1 } } }), /out of range/);
  // Malformed fields are KeystoreErrors, not TypeErrors.
  for (const crypto of [{ ...file.crypto, kdfparams: null }, { ...file.crypto, kdfparams: 5 }, { ...file.crypto, check: 7 }, { ...file.crypto, check: 'zz' }]) {
    assert.throws(() => parseKeystore({ ...file, crypto }), (e) => e instanceof KeystoreError && e.kind === 'malformed');
  }
  // The address as written (no 0x, upper case) does not change the associated data: the
  // canonical form is bound, as qoin-el binds it.
  const bare = await decryptKeystore({ ...file, address: file.address.slice(2).toUpperCase() }, 'pw');
  assert.equal(bare.address, keys.address);
});

test('a Falcon key whose F was altered is refused though its address would match', () => {
  const sk = fromHex(seed01.falconSecretKey);
  // The last 512 bytes are F; the public key comes from f and g alone.
  for (const at of [sk.length - 1, sk.length - 300]) {
    const bad = Uint8Array.from(sk);
    bad[at] = (bad[at] + 1) & 0xff;
    assert.throws(() => QoinKeys.fromSecretKeys(fromHex(seed01.seed), bad), /does not sign for its public key/);
  }
});

test('a keystore written by qoin-el opens here with the same address', async () => {
  const f = fixture('rust-keystore.json');
  const keys = await decryptKeystore(f.file, f.password);
  assert.equal(keys.address.toLowerCase(), f.file.address.toLowerCase());
  // ... and a transaction qoin-el signed with that key verifies here.
  const tx = verifyTransaction(f.signedTransaction);
  assert.equal(tx.from.toLowerCase(), f.file.address.toLowerCase());
  assert.equal(tx.hash, f.transactionId);
});

test('decoders given mutated input answer or throw an Error, nothing else', async () => {
  // A small fuzz: random byte flips, truncations and extensions of a valid transaction.
  const raw = fromHex(signTransaction(vectorTx, keys01));
  let seed = 12345;
  const rand = (n) => { seed = (seed * 1103515245 + 12345) % 2 ** 31; return seed % n; };
  for (let i = 0; i < 3000; i++) {
    let b = Uint8Array.from(raw);
    const kind = rand(3);
    if (kind === 0) for (let k = 0; k <= rand(4); k++) b[rand(b.length)] = rand(256);
    else if (kind === 1) b = b.subarray(0, rand(b.length));
    else b = Uint8Array.from([...b.subarray(0, rand(40)), ...Array.from({ length: rand(8) }, () => rand(256)), ...b.subarray(rand(40))]);
    let tx;
    try {
      tx = decodeTransaction(b);
    } catch (e) {
      assert.ok(e instanceof Error, `threw ${e}`);
      continue;
    }
    // Decoded: a whole transaction, not a half-read one.
    assert.equal(typeof tx.hash, 'string');
  }
  for (const text of ['', '{', '[]', 'null', '{"version":2}', '{"version":2,"crypto":null}', '{"version":2,"address":"0x12","suite":1,"crypto":{}}']) {
    assert.throws(() => parseKeystore(text), KeystoreError);
  }
});

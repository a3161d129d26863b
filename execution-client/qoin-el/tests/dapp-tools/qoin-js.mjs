// qoin-js against a running `qoin-el node --dev`: keys from a keystore qoin-el wrote and
// keys made in JavaScript sign type-0x51 transactions that viem and ethers send with
// eth_sendRawTransaction; what the node signs (Rust) verifies in qoin-js; messages qoin-js
// signs are recovered by QoinSignatures.sol. Writes the JS-made keys' keystore for qoin-el.
// Usage: node qoin-js.mjs <Counter.json> <http://host:port> <keystore file> <password> <out dir>
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { ContractFactory, JsonRpcProvider, parseEther } from "ethers";
import { createPublicClient, createWalletClient, defineChain, http } from "viem";
import {
  QoinKeys, decryptKeystore, encryptKeystore, keystoreFileName, recoverMessageSigner, signTransaction,
  verifyTransaction, LIGHT_KDF,
} from "qoin-js";
import { qoinAccount } from "qoin-js/viem";
import { QoinSigner } from "qoin-js/ethers";

const [artPath, url, keystorePath, password, outDir] = process.argv.slice(2);
const art = JSON.parse(fs.readFileSync(artPath, "utf8"));
const sigArt = JSON.parse(fs.readFileSync(new URL("../contracts/SignatureCheck.json", import.meta.url), "utf8"));
const provider = new JsonRpcProvider(url);
const dev = await provider.getSigner(0);
const devAddress = await dev.getAddress();
const payee = "0x00000000000000000000000000000000000e7e18";

// Keys from the keystore file `qoin-el account new` wrote.
const rustKeys = await decryptKeystore(fs.readFileSync(keystorePath, "utf8"), password);
// Keys made here, with noble's Falcon key generator.
const jsKeys = QoinKeys.generate();
for (const who of [rustKeys.address, jsKeys.address]) {
  await (await dev.sendTransaction({ to: who, value: parseEther("10") })).wait();
}

// Signed by the node (Rust) for the dev account: verified here, bytes as the node keeps them.
const funded = await dev.sendTransaction({ to: payee, value: 1n });
await funded.wait();
const rawFromNode = await provider.send("eth_getRawTransactionByHash", [funded.hash]);
const verified = verifyTransaction(rawFromNode);
assert.equal(verified.from, devAddress);
assert.equal(verified.hash, funded.hash);
assert.equal(verified.value, 1n);
const nodeSigned = await dev.signMessage("signed by qoin-el");
assert.equal(recoverMessageSigner("signed by qoin-el", nodeSigned), devAddress);
assert.equal(recoverMessageSigner("signed by someone else", nodeSigned), null);
console.log("qoin-el-signed transaction and message verified by qoin-js: ok");

// viem: a qoin-js Account (the qoin-el keystore's key) deploys, calls and sends.
const chain = defineChain({
  id: Number((await provider.getNetwork()).chainId), name: "qoin-dev",
  nativeCurrency: { name: "QOIN", symbol: "QOIN", decimals: 18 }, rpcUrls: { default: { http: [url] } },
});
const pub = createPublicClient({ chain, transport: http(url) });
const account = qoinAccount(rustKeys);
const wallet = createWalletClient({ account, chain, transport: http(url) });
const deployed = await pub.waitForTransactionReceipt({
  hash: await wallet.deployContract({ abi: art.abi, bytecode: art.bytecode, args: [5n] }),
});
assert.equal(deployed.status, "success");
assert.equal(deployed.from.toLowerCase(), rustKeys.address.toLowerCase());
const counter = deployed.contractAddress;
const added = await pub.waitForTransactionReceipt({
  hash: await wallet.writeContract({ address: counter, abi: art.abi, functionName: "add", args: [7n] }),
});
assert.equal(added.status, "success");
assert.equal(await pub.readContract({ address: counter, abi: art.abi, functionName: "count" }), 12n);
const before = await pub.getBalance({ address: payee });
await pub.waitForTransactionReceipt({ hash: await wallet.sendTransaction({ to: payee, value: parseEther("1") }) });
assert.equal(await pub.getBalance({ address: payee }), before + parseEther("1"));
// The node keeps and serves exactly the bytes qoin-js signed.
const request = await wallet.prepareTransactionRequest({ to: payee, value: 2n });
const signed = await account.signTransaction(request);
const sentHash = await wallet.sendRawTransaction({ serializedTransaction: signed });
await pub.waitForTransactionReceipt({ hash: sentHash });
assert.equal(await provider.send("eth_getRawTransactionByHash", [sentHash]), signed);
assert.equal(verifyTransaction(signed).hash, sentHash);
console.log("viem: qoin-js account from a qoin-el keystore deploys, calls, sends: ok");

// What the node refuses: another chain's id, a broken signature, an unfunded key.
const nonce = await pub.getTransactionCount({ address: rustKeys.address, blockTag: "pending" });
const fields = {
  chainId: chain.id, nonce, maxPriorityFeePerGas: 1_000_000_000n, maxFeePerGas: 100_000_000_000n, gas: 21000,
  to: payee, value: 1n,
};
const refused = async (raw, why) =>
  assert.rejects(provider.send("eth_sendRawTransaction", [raw]), (e) => why.test(String(e.error?.message ?? e.message)), `${why}`);
await refused(signTransaction({ ...fields, chainId: chain.id + 1 }, rustKeys), /chain/i);
const broken = signTransaction(fields, rustKeys);
await refused(`${broken.slice(0, -8)}${broken.slice(-8, -6) === "00" ? "01" : "00"}${broken.slice(-6)}`, /signature/i);
await refused(signTransaction(fields, QoinKeys.generate()), /insufficient funds/i);
console.log("refused: wrong chain, broken signature, unfunded key: ok");

// ethers: a qoin-js Signer (keys made here) deploys, calls, sends and signs messages that a
// contract recovers through QoinSignatures.sol.
const signer = new QoinSigner(jsKeys, provider);
const c = await new ContractFactory(art.abi, art.bytecode, signer).deploy(5);
await c.waitForDeployment();
await (await c.add(7)).wait();
assert.equal(await c.count(), 12n);
const sent = await signer.sendTransaction({ to: payee, value: parseEther("1") });
assert.equal((await sent.wait()).status, 1);
assert.equal(sent.from.toLowerCase(), jsKeys.address.toLowerCase());
const check = await new ContractFactory(sigArt.abi, sigArt.bytecode, signer).deploy();
await check.waitForDeployment();
const text = "Sign in to Qoin Mail";
const bytes = new TextEncoder().encode(text);
assert.equal(await check.recoverPersonal(bytes, await signer.signMessage(text)), jsKeys.address);
assert.equal(await check.recoverPersonal(bytes, await account.signMessage({ message: text })), rustKeys.address);
const domain = { name: "Qoin Mail", version: "1", chainId: chain.id, verifyingContract: await check.getAddress() };
const types = { Mail: [{ name: "to", type: "address" }, { name: "contents", type: "string" }] };
const mail = { to: "0x7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e", contents: "post-quantum hello" };
assert.equal(await check.recoverMail(mail.to, mail.contents, await signer.signTypedData(domain, types, mail)), jsKeys.address);
const viemTyped = await account.signTypedData({ domain, types, primaryType: "Mail", message: mail });
assert.equal(await check.recoverMail(mail.to, mail.contents, viemTyped), rustKeys.address);
console.log("ethers: qoin-js signer with keys made in JS deploys, calls, sends; messages recovered in a contract: ok");

// The JS-made keys as a keystore file, for qoin-el to open.
fs.writeFileSync(path.join(outDir, keystoreFileName(jsKeys.address)), JSON.stringify(await encryptKeystore(jsKeys, password, LIGHT_KDF)));
console.log(`js-account: ${jsKeys.address}`);
process.exit(0);

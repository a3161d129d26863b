// Deploys and uses the solc-compiled Counter with ethers (JsonRpcSigner) and viem (JSON-RPC
// account) against a running `qoin-el node --dev`, and checks messages they sign through the
// node in SignatureCheck. Exits non-zero on the first mismatch.
// Usage: node check.mjs <Counter.json> <http://host:port>
import { JsonRpcProvider, WebSocketProvider, ContractFactory, parseEther, formatEther } from "ethers";
import { createWalletClient, createPublicClient, http, webSocket, defineChain, BaseError, ContractFunctionRevertedError } from "viem";
import fs from "fs";
import assert from "assert/strict";

const art = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const url = process.argv[3];

// ethers 6: JsonRpcSigner -> eth_sendTransaction with the node's unlocked key.
const provider = new JsonRpcProvider(url);
const signer = await provider.getSigner(0);
const c = await new ContractFactory(art.abi, art.bytecode, signer).deploy(5);
await c.waitForDeployment();
const rc = await (await c.add(7)).wait();
assert.equal(rc.status, 1);
assert.equal(rc.logs.length, 1);
assert.equal(await c.count(), 12n);
await assert.rejects(c.add.staticCall(42), (e) => e.reason === "no 42");
await assert.rejects(c.add.staticCall(5000), (e) => e.revert?.name === "TooBig" && e.revert.args[0] === 5000n);
const events = await c.queryFilter(c.filters.Increased());
assert.equal(events.length, 1);
assert.equal(events[0].args.total, 12n);
// contract.on over HTTP: ethers installs an eth_newFilter and polls eth_getFilterChanges.
provider.pollingInterval = 100;
const within = (ms, what, p) =>
  Promise.race([p, new Promise((_, no) => setTimeout(() => no(new Error(what + ": nothing within " + ms + " ms")), ms).unref())]);
const heard = new Promise((resolve) => c.once("Increased", (by, amount, total) => resolve(total)));
await new Promise((r) => setTimeout(r, 500)); // let the filter be installed
await (await c.add(3)).wait();
assert.equal(await within(20000, "contract.on(Increased)", heard), 15n);
const block = await within(20000, "provider.once(block)", new Promise((resolve) => {
  provider.once("block", resolve);
  signer.sendTransaction({ to: "0x00000000000000000000000000000000000b10c0", value: 1n });
}));
assert.ok(block > 0);
await c.removeAllListeners();
// 18-decimal units: the dev account holds 10,000 QOIN and parseEther("1") moves one.
assert.equal(formatEther(await provider.getBalance(await signer.getAddress(), 0)), "10000.0");
const payee = "0x00000000000000000000000000000000000e7e17";
await (await signer.sendTransaction({ to: payee, value: parseEther("1") })).wait();
assert.equal(await provider.getBalance(payee), parseEther("1"));
const fee = await provider.getFeeData();
assert.ok(fee.maxFeePerGas > 0n && fee.maxPriorityFeePerGas > 0n);
console.log("ethers: 18-decimal units, deploy, call, revert reason, custom error, events, contract.on: ok");

// viem 2: JSON-RPC account (eth_accounts + eth_sendTransaction).
const chain = defineChain({
  id: 1337, name: "qoin-dev", nativeCurrency: { name: "Qoin", symbol: "QOIN", decimals: 18 },
  rpcUrls: { default: { http: [url] } },
});
const pub = createPublicClient({ chain, transport: http(url) });
const [account] = await createWalletClient({ chain, transport: http(url) }).getAddresses();
const wallet = createWalletClient({ account, chain, transport: http(url) });
const hash = await wallet.deployContract({ abi: art.abi, bytecode: art.bytecode, args: [5n] });
const deployed = await pub.waitForTransactionReceipt({ hash });
assert.equal(deployed.status, "success");
const address = deployed.contractAddress;
const h2 = await wallet.writeContract({ address, abi: art.abi, functionName: "add", args: [7n] });
assert.equal((await pub.waitForTransactionReceipt({ hash: h2 })).status, "success");
assert.equal(await pub.readContract({ address, abi: art.abi, functionName: "count" }), 12n);
const revertOf = async (amount) => {
  try {
    await pub.simulateContract({ account, address, abi: art.abi, functionName: "add", args: [amount] });
  } catch (e) {
    if (e instanceof BaseError) {
      const r = e.walk((x) => x instanceof ContractFunctionRevertedError);
      if (r) return r.data ?? { reason: r.reason };
    }
    throw e;
  }
  throw new Error("no revert");
};
assert.deepEqual((await revertOf(42n)).args, ["no 42"]);
const custom = await revertOf(5000n);
assert.equal(custom.errorName, "TooBig");
assert.deepEqual(custom.args, [5000n]);
const logs = await pub.getContractEvents({ address, abi: art.abi, eventName: "Increased", fromBlock: 0n });
assert.equal(logs.length, 1);
console.log("viem: deploy, call, revert reason, custom error, events: ok");

// WebSocket on the HTTP port: viem's watchBlockNumber / watchContractEvent and ethers'
// WebSocketProvider block events, all through eth_subscribe.
const wsUrl = url.replace(/^http/, "ws");
const wsPub = createPublicClient({ chain, transport: webSocket(wsUrl) });
const wsEthers = new WebSocketProvider(wsUrl);
const nextBlock = within(20000, "viem watchBlockNumber", new Promise((resolve) => {
  const stop = wsPub.watchBlockNumber({ onBlockNumber: (n) => { stop(); resolve(n); } });
}));
const nextEvent = within(20000, "viem watchContractEvent", new Promise((resolve) => {
  const stop = wsPub.watchContractEvent({ address, abi: art.abi, eventName: "Increased", onLogs: (l) => { stop(); resolve(l); } });
}));
const ethersBlock = within(20000, "ethers WebSocketProvider block", new Promise((resolve) => wsEthers.once("block", resolve)));
await new Promise((r) => setTimeout(r, 500)); // let the subscriptions be made
const h3 = await wallet.writeContract({ address, abi: art.abi, functionName: "add", args: [1n] });
const mined = await pub.waitForTransactionReceipt({ hash: h3 });
const [n, heard3, eb] = await Promise.all([nextBlock, nextEvent, ethersBlock]);
assert.ok(n >= mined.blockNumber - 1n && n > 0n, `block ${n}`);
assert.equal(heard3[0].args.total, 13n);
assert.equal(heard3[0].transactionHash, h3);
assert.ok(eb > 0);
// Message signing through the tools' own calls (personal_sign, eth_signTypedData_v4), the
// post-quantum signatures recovered by QoinSignatures.sol in SignatureCheck.
const sigArt = JSON.parse(fs.readFileSync(new URL("../contracts/SignatureCheck.json", import.meta.url), "utf8"));
const check = await new ContractFactory(sigArt.abi, sigArt.bytecode, signer).deploy();
await check.waitForDeployment();
const me = await signer.getAddress();
const text = "Sign in to Qoin Mail";
const signedMessage = await signer.signMessage(text);
assert.equal((signedMessage.length - 2) / 2, 5297, "keys (2,210) and dual signature (3,087)");
assert.equal(await check.recoverPersonal(new TextEncoder().encode(text), signedMessage), me);
const viemSigned = await wallet.signMessage({ message: text });
assert.equal(await check.recoverPersonal(new TextEncoder().encode(text), viemSigned), me);
const domain = { name: "Qoin Mail", version: "1", chainId: (await provider.getNetwork()).chainId, verifyingContract: await check.getAddress() };
const types = { Mail: [{ name: "to", type: "address" }, { name: "contents", type: "string" }] };
const mail = { to: "0x7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e", contents: "post-quantum hello" };
const typedSigned = await signer.signTypedData(domain, types, mail);
assert.equal(await check.recoverMail(mail.to, mail.contents, typedSigned), me);
assert.equal(await check.recoverMail(mail.to, "tampered", typedSigned), "0x0000000000000000000000000000000000000000");
console.log("signing: ethers signMessage / signTypedData, viem signMessage, recovered in a contract: ok");

// Last: a destroyed WebSocket provider rejects its pending eth_unsubscribe later on.
await wsEthers.destroy();
console.log("websocket: viem watchBlockNumber, watchContractEvent, ethers block events: ok");

process.exit(0);

// Hardhat 3 against qoin-el --dev, unchanged: deploy, calls, revert reasons, custom errors,
// events, and the network helpers (fixtures, time, mining, state edits, snapshots).
import assert from "node:assert/strict";
import { network } from "hardhat";

const { ethers, networkHelpers: helpers } = await network.create();
const { time } = helpers;
const [owner, other] = await ethers.getSigners();

async function deployCounter() {
  const counter = await ethers.deployContract("Counter", [5n]);
  await counter.waitForDeployment();
  return { counter };
}

// A fixture: deployed once, then every later call returns to the snapshot taken after it.
const { counter } = await helpers.loadFixture(deployCounter);
assert.equal(await counter.count(), 5n);
await (await counter.add(3n)).wait();
assert.equal(await counter.count(), 8n);
const again = await helpers.loadFixture(deployCounter);
assert.equal(await again.counter.getAddress(), await counter.getAddress(), "the same deployment");
assert.equal(await counter.count(), 5n, "loadFixture returned to the state after deployment");
console.log("ok fixture");

// Revert reasons, custom errors and events, as Hardhat's users read them.
await assert.rejects(counter.add(42n), (e: any) => /no 42/.test(e.message));
await assert.rejects(counter.add(5000n), (e: any) => {
  const parsed = counter.interface.parseError(e.data);
  return parsed?.name === "TooBig" && parsed.args[0] === 5000n;
});
const receipt = await (await counter.connect(other).add(7n)).wait();
const ev = counter.interface.parseLog(receipt!.logs[0]);
assert.equal(ev?.name, "Increased");
assert.equal(ev?.args.by, other.address);
assert.equal(ev?.args.total, 12n);
console.log("ok reverts + custom errors + events");

// Time and mining.
const t0 = await time.latest();
const t1 = await time.increase(3600);
assert.ok(t1 >= t0 + 3600, `time.increase: ${t0} -> ${t1}`);
const target = t1 + 86_400;
await time.increaseTo(target);
assert.equal(await time.latest(), target);
await time.setNextBlockTimestamp(target + 100);
await (await counter.add(1n)).wait();
assert.equal(await time.latest(), target + 100, "the next block got the set timestamp");
const b0 = await time.latestBlock();
await helpers.mine(100, { interval: 15 });
assert.equal(await time.latestBlock(), b0 + 100);
const first = await ethers.provider.getBlock(b0 + 1);
assert.equal(await time.latest(), first!.timestamp + 99 * 15, "blocks 15 s apart");
await helpers.mineUpTo(b0 + 150);
assert.equal(await time.latestBlock(), b0 + 150);
console.log("ok time + mining");

// State edits.
const who = "0x000000000000000000000000000000000000c0de";
await helpers.setBalance(who, ethers.parseEther("123.5"));
assert.equal(await ethers.provider.getBalance(who), ethers.parseEther("123.5"));
await helpers.setNonce(who, 9);
assert.equal(await ethers.provider.getTransactionCount(who), 9);
const code = await ethers.provider.getCode(await counter.getAddress());
await helpers.setCode(who, code);
assert.equal(await ethers.provider.getCode(who), code);
// Slot 0 is `count`: the copy reads what the edit wrote.
await helpers.setStorageAt(who, 0, 777n);
assert.equal(await helpers.getStorageAt(who, 0), ethers.toBeHex(777n, 32));
const copy = await ethers.getContractAt("Counter", who);
assert.equal(await copy.count(), 777n);
console.log("ok state edits");

// Impersonation: the contract at `who` (no keys anywhere) sends, as Hardhat's users do with a
// contract or a whale; its transactions carry no signature (a dev chain's suite 0x00).
const funded = await ethers.provider.getBalance(who);
await helpers.impersonateAccount(who);
const impersonated = await ethers.getSigner(who);
const sent = await (await counter.connect(impersonated).add(2n)).wait();
assert.equal(sent!.from.toLowerCase(), who);
assert.equal(counter.interface.parseLog(sent!.logs[0])?.args.by.toLowerCase(), who);
const paid = await (await impersonated.sendTransaction({ to: other.address, value: 1234n })).wait();
assert.equal(paid!.status, 1);
await helpers.stopImpersonatingAccount(who);
await assert.rejects(impersonated.sendTransaction({ to: other.address, value: 1n }), /unknown account/);
console.log("ok impersonation");

// Snapshots: back to before the edits and blocks.
const balance = await ethers.provider.getBalance(who);
assert.equal(balance, funded - 1234n - sent!.fee - paid!.fee, "the impersonated account paid the value and both fees");
const snap = await helpers.takeSnapshot();
await helpers.setBalance(who, 1n);
await helpers.mine(5);
await snap.restore();
assert.equal(await ethers.provider.getBalance(who), balance);
const back = await helpers.loadFixture(deployCounter);
assert.equal(await back.counter.count(), 5n);
assert.equal(await ethers.provider.getCode(who), "0x", "the fixture's snapshot predates the edits");
console.log("ok snapshots");
console.log("hardhat: all checks passed");

// Hardhat 3 as a dapp developer configures it for a remote node: the node's unlocked
// accounts ("remote"), Solidity compiled offline by the npm solc package (no compiler
// download), artifacts and cache where the test says (QOIN_HARDHAT_OUT), not in the repository.
import { createRequire } from "node:module";
import path from "node:path";
import { defineConfig } from "hardhat/config";
import hardhatEthers from "@nomicfoundation/hardhat-ethers";
import hardhatNetworkHelpers from "@nomicfoundation/hardhat-network-helpers";

const require = createRequire(import.meta.url);
const out = process.env.QOIN_HARDHAT_OUT ?? path.join(import.meta.dirname, "out");

export default defineConfig({
  plugins: [hardhatEthers, hardhatNetworkHelpers],
  solidity: { version: "0.8.30", path: require.resolve("solc/soljson.js") },
  paths: {
    artifacts: path.join(out, "artifacts"),
    cache: path.join(out, "cache"),
  },
  networks: {
    qoin: { type: "http", url: process.env.QOIN_RPC ?? "http://127.0.0.1:8545", accounts: "remote" },
  },
});

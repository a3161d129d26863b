// Compiles Counter.sol with the pinned solc-js and writes Counter.json (ABI + bytecode).
// Run: npm ci && node compile.js   (works offline once node_modules is present)
const fs = require("fs");
const solc = require("solc");
const input = {
  language: "Solidity",
  sources: { "Counter.sol": { content: fs.readFileSync(__dirname + "/Counter.sol", "utf8") } },
  settings: {
    evmVersion: "prague",
    optimizer: { enabled: true, runs: 200 },
    outputSelection: { "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] } },
  },
};
const out = JSON.parse(solc.compile(JSON.stringify(input)));
for (const e of out.errors || []) {
  console.error(e.formattedMessage);
  if (e.severity === "error") process.exit(1);
}
const c = out.contracts["Counter.sol"].Counter;
const artifact = {
  compiler: "solc " + solc.version(),
  abi: c.abi,
  bytecode: "0x" + c.evm.bytecode.object,
  deployedBytecode: "0x" + c.evm.deployedBytecode.object,
};
fs.writeFileSync(__dirname + "/Counter.json", JSON.stringify(artifact, null, 2) + "\n");
console.log("wrote Counter.json with", artifact.compiler);

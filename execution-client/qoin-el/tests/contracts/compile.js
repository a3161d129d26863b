// Compiles the contracts with the pinned solc-js and writes <Name>.json (ABI + bytecode).
// Run: npm ci && node compile.js   (works offline once node_modules is present)
const fs = require("fs");
const solc = require("solc");
const names = ["Counter", "Token", "SignatureCheck"];
const sources = {};
for (const n of names) sources[n + ".sol"] = { content: fs.readFileSync(__dirname + "/" + n + ".sol", "utf8") };
// The libraries dapps use, from execution-client/contracts.
for (const lib of ["QoinSignatures"]) {
  sources[lib + ".sol"] = { content: fs.readFileSync(__dirname + "/../../../contracts/" + lib + ".sol", "utf8") };
}
const input = {
  language: "Solidity",
  sources,
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
for (const n of names) {
  const c = out.contracts[n + ".sol"][n];
  const artifact = {
    compiler: "solc " + solc.version(),
    abi: c.abi,
    bytecode: "0x" + c.evm.bytecode.object,
    deployedBytecode: "0x" + c.evm.deployedBytecode.object,
  };
  fs.writeFileSync(__dirname + "/" + n + ".json", JSON.stringify(artifact, null, 2) + "\n");
  console.log("wrote " + n + ".json with", artifact.compiler);
}

// Compiles Solidity with the pinned solc-js and writes <Name>.json (ABI, creation and runtime
// bytecode) beside the sources. Run here, it compiles the contracts every Qoin genesis holds:
// the runtime bytecode in their committed artifacts is what the genesis deploys
// (shared/primitives/src/system.rs), so recompiling with another compiler changes every
// genesis hash. The test contracts (qoin-el/tests/contracts) use the same function.
// Run: npm ci && node compile.js   (works offline once node_modules is present)
const fs = require("fs");

/// Compiles `sources` ({file: {content}}) with `solc` and `settings`, writing an artifact for
/// each of `names` (contract Name in Name.sol) into `dir`.
function compile(solc, dir, names, sources, settings) {
  const input = {
    language: "Solidity",
    sources,
    settings: {
      evmVersion: "prague",
      optimizer: { enabled: true, runs: 200 },
      ...settings,
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
    fs.writeFileSync(dir + "/" + n + ".json", JSON.stringify(artifact, null, 2) + "\n");
    console.log("wrote " + n + ".json with", artifact.compiler, c.evm.deployedBytecode.object.length / 2, "bytes of runtime code");
  }
}

/// `{Name.sol: {content}}` for each name, read from `dir`.
function read(dir, names) {
  const sources = {};
  for (const n of names) sources[n + ".sol"] = { content: fs.readFileSync(dir + "/" + n + ".sol", "utf8") };
  return sources;
}

module.exports = { compile, read };

if (require.main === module) {
  const names = ["StorageMarket", "ComputeMarket"];
  compile(require("solc"), __dirname, names, read(__dirname, [...names, "MarketPayments"]), {
    viaIR: true,
    metadata: { bytecodeHash: "none" },
  });
}

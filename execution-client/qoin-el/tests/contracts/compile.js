// Compiles the contracts qoin-el's tests deploy with the pinned solc-js and writes <Name>.json
// (ABI + bytecode), with the function the genesis contracts are compiled with.
// Run: npm ci && node compile.js   (works offline once node_modules is present)
const { compile, read } = require("../../../contracts/compile.js");
const names = ["Counter", "Token", "SignatureCheck"];
// The libraries dapps use, from execution-client/contracts.
const sources = { ...read(__dirname, names), ...read(__dirname + "/../../../contracts", ["QoinSignatures"]) };
compile(require("solc"), __dirname, names, sources, {});

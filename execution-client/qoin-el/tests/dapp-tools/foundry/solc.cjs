// A `solc` command for forge without downloads: the npm solc package (solc-js, the pinned
// version in ../package.json) behind the two things forge asks of a compiler binary,
// `--version` and `--standard-json` (input on stdin, output on stdout).
const path = require("path");
const fs = require("fs");
const solc = require(path.join(__dirname, "..", "node_modules", "solc"));

const args = process.argv.slice(2);
if (args.includes("--version")) {
  // forge parses "Version: x.y.z+commit.<hash>"; solc-js names its platform Emscripten.
  const v = solc.version().replace(/\.Emscripten\.clang$/, "");
  console.log("solc, the solidity compiler commandline interface\nVersion: " + v + ".Linux.g++");
  process.exit(0);
}
if (!args.includes("--standard-json")) {
  console.error("this solc wrapper supports only --version and --standard-json, got: " + args.join(" "));
  process.exit(2);
}
// Imports resolve against forge's --base-path / --include-path roots, then the working folder.
const roots = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === "--base-path" || args[i] === "--include-path") roots.push(args[++i]);
  else if (args[i] === "--allow-paths") i++;
}
roots.push(process.cwd());
const findImports = (p) => {
  for (const f of [p].concat(roots.map((r) => path.resolve(r, p)))) {
    if (fs.existsSync(f)) return { contents: fs.readFileSync(f, "utf8") };
  }
  return { error: "file not found: " + p };
};
process.stdout.write(solc.compile(fs.readFileSync(0, "utf8"), { import: findImports }));

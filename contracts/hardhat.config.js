// Hardhat 2 for vcompute's contracts: `npx hardhat node` (a local chain), and `npx hardhat test`
// (test/*.test.js: a Solidity project's own tests deploy a proof dir's EZKL verifier, verify the
// proof and attest it in InferenceRegistry; see docs/solidity.md).
//
// Compiling never downloads anything: Hardhat's only download step is the subtask that finds a
// compiler (TASK_COMPILE_SOLIDITY_GET_SOLC_BUILD, which fetches solc from binaries.soliditylang.org).
// It is replaced below by the solcjs that package-lock.json pins (npm `solc`), and it refuses a
// configured version other than the installed one instead of falling back to a download.
// Sources are the *.sol files in this folder (InferenceRegistry.sol), nothing below it.
const fs = require("fs");
const path = require("path");
const { subtask } = require("hardhat/config");
const {
  TASK_COMPILE_SOLIDITY_GET_SOLC_BUILD,
  TASK_COMPILE_SOLIDITY_GET_SOURCE_PATHS,
} = require("hardhat/builtin-tasks/task-names");

const SOLC_VERSION = require("solc/package.json").version; // the pinned solcjs, e.g. 0.8.37

subtask(TASK_COMPILE_SOLIDITY_GET_SOLC_BUILD, async ({ solcVersion }) => {
  if (solcVersion !== SOLC_VERSION) {
    throw new Error(
      `hardhat.config.js asks for solc ${solcVersion}, but the pinned solcjs is ${SOLC_VERSION}: ` +
        "nothing is downloaded, so use the pinned version (or pin another one in package.json)"
    );
  }
  const compilerPath = require.resolve("solc/soljson.js");
  const longVersion = require("solc").version(); // e.g. 0.8.37+commit.f401782d.Emscripten.clang
  return { compilerPath, isSolcJs: true, version: solcVersion, longVersion };
});

subtask(TASK_COMPILE_SOLIDITY_GET_SOURCE_PATHS, async () =>
  fs
    .readdirSync(__dirname)
    .filter((name) => name.endsWith(".sol"))
    .map((name) => path.join(__dirname, name))
);

module.exports = {
  solidity: {
    version: SOLC_VERSION,
    // The settings vcompute's own builds use (vcompute/evm/solc.py).
    settings: { optimizer: { enabled: true, runs: 200 }, evmVersion: "cancun" },
  },
  paths: {
    sources: ".",
    tests: "./test",
    cache: "./node_modules/.hardhat-cache",
    artifacts: "./node_modules/.hardhat-artifacts",
  },
  networks: { hardhat: { chainId: 31337 } },
  mocha: { timeout: 120000 },
};

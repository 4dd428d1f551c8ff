// Hardhat is used only to run a local node (`npx hardhat node`), never to compile: vcompute
// compiles with the pinned npm solc (vcompute/solc.py). Pointing `sources` at an empty folder
// makes sure no Hardhat task ever finds a contract and tries to download a compiler.
module.exports = {
  solidity: "0.8.37",
  paths: { sources: "./hardhat-sources", cache: "./node_modules/.hardhat-cache", artifacts: "./node_modules/.hardhat-artifacts" },
  networks: { hardhat: { chainId: 31337 } },
};

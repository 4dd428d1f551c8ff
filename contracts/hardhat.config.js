// Hardhat is used only to run a local node (`npx hardhat node`), never to compile: vcompute
// compiles with the pinned npm solc (vcompute/solc.py). Pointing `sources` at an empty folder
// makes sure no Hardhat task ever finds a contract and tries to download a compiler (`hardhat
// compile` says "Nothing to compile"; its warning that 0.8.37 is "not fully supported" is harmless).
module.exports = {
  solidity: "0.8.37",
  paths: { sources: "./hardhat-sources", cache: "./node_modules/.hardhat-cache", artifacts: "./node_modules/.hardhat-artifacts" },
  networks: { hardhat: { chainId: 31337 } },
};

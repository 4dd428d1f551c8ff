// A Solidity project's own test of a vcompute proof: `VCOMPUTE_PROOF_DIR=out/mlp npx hardhat test`.
//
// The proof dir is what `vcompute prove` wrote. From it this test uses Verifier.json (EZKL's
// Halo2Verifier for the proof's verifying key, compiled by the pinned solc, as a Hardhat artifact),
// calldata.hex (the verifyProof(bytes,uint256[]) call), vk.key and model.onnx (their sha256 name
// the model in the registry), and Verifier.sol (checked to compile to Verifier.json's bytecode). InferenceRegistry is compiled by Hardhat from ../InferenceRegistry.sol
// with the pinned solcjs (hardhat.config.js). Everything runs on Hardhat's in-process network.
//
// Plain ethers v6 over Hardhat's EIP-1193 provider: copy this file into any Hardhat 2 project.
const assert = require("node:assert/strict");
const crypto = require("node:crypto");
const fs = require("node:fs");
const path = require("node:path");

const hre = require("hardhat");
const { ethers } = require("ethers");

const PROOF_DIR = process.env.VCOMPUTE_PROOF_DIR;
const coder = ethers.AbiCoder.defaultAbiCoder();

const read = (name) => fs.readFileSync(path.join(PROOF_DIR, name));
const sha256 = (name) => "0x" + crypto.createHash("sha256").update(read(name)).digest("hex");

/** Splits verifyProof calldata into its arguments: (proof bytes, instances). */
function decodeCalldata(calldata) {
  const selector = ethers.id("verifyProof(bytes,uint256[])").slice(0, 10);
  assert.equal(calldata.slice(0, 10), selector, "calldata.hex is not a verifyProof(bytes,uint256[]) call");
  const [proof, instances] = coder.decode(["bytes", "uint256[]"], "0x" + calldata.slice(10));
  return { proof, instances: [...instances] };
}

/** The same proof with one byte flipped (in the middle of the proof, not in the ABI framing). */
function flipOneByte(proof) {
  const bytes = ethers.getBytes(proof);
  bytes[Math.floor(bytes.length / 2)] ^= 0x01;
  return ethers.hexlify(bytes);
}

/** verifyProof's answer as a bool, or "reverted": a bad proof may do either. */
async function verifyAnswer(verifier, proof, instances) {
  try {
    return await verifier.verifyProof.staticCall(proof, instances);
  } catch (err) {
    if (err.code === "CALL_EXCEPTION") return "reverted";
    throw err;
  }
}

describe("a vcompute proof dir on Hardhat's network", function () {
  let signer, artifact, calldata, proof, instances, verifier, registry, modelId;

  before(async function () {
    if (!PROOF_DIR) {
      console.log("    set VCOMPUTE_PROOF_DIR to a dir `vcompute prove` wrote to run these tests");
      this.skip();
    }
    const provider = new ethers.BrowserProvider(hre.network.provider);
    signer = await provider.getSigner(0);
    artifact = JSON.parse(read("Verifier.json"));
    assert.equal(artifact._format, "hh-sol-artifact-1");
    calldata = read("calldata.hex").toString().trim().toLowerCase();
    ({ proof, instances } = decodeCalldata(calldata));
  });

  it("Verifier.json is what Verifier.sol compiles to with the pinned solc", async function () {
    // The settings vcompute compiles with (vcompute/evm/solc.py): a project may compile Verifier.sol
    // itself with them and get the same bytecode, metadata hash included.
    const solc = require("solc");
    const input = {
      language: "Solidity",
      sources: { "Verifier.sol": { content: read("Verifier.sol").toString() } },
      settings: {
        optimizer: { enabled: true, runs: 200 },
        evmVersion: "cancun",
        outputSelection: { "*": { "*": ["evm.bytecode.object"] } },
      },
    };
    const output = JSON.parse(solc.compile(JSON.stringify(input)));
    const errors = (output.errors ?? []).filter((e) => e.severity === "error");
    assert.deepEqual(errors, []);
    const bytecode = "0x" + output.contracts["Verifier.sol"][artifact.contractName].evm.bytecode.object;
    assert.equal(bytecode, artifact.bytecode, "Verifier.json was not compiled from this Verifier.sol");
  });

  it("deploys the proof dir's EZKL verifier", async function () {
    const factory = new ethers.ContractFactory(artifact.abi, artifact.bytecode, signer);
    verifier = await factory.deploy();
    await verifier.waitForDeployment();
    const code = await signer.provider.getCode(await verifier.getAddress());
    assert.equal(code, artifact.deployedBytecode.toLowerCase(), "deployed code differs from Verifier.json");
  });

  it("accepts the real proof: verifyProof(calldata.hex) returns true", async function () {
    const raw = await signer.provider.call({ to: await verifier.getAddress(), data: calldata });
    assert.equal(verifier.interface.decodeFunctionResult("verifyProof", raw)[0], true);
    assert.equal(await verifier.verifyProof.staticCall(proof, instances), true);
  });

  it("rejects the proof with one byte flipped (revert or false)", async function () {
    const answer = await verifyAnswer(verifier, flipOneByte(proof), instances);
    assert.notEqual(answer, true, "a tampered proof was accepted");
  });

  it("rejects the real proof with another public output", async function () {
    const other = [...instances];
    other[other.length - 1] = other[other.length - 1] + 1n;
    assert.notEqual(await verifyAnswer(verifier, proof, other), true, "a changed output was accepted");
  });

  it("registers the model in InferenceRegistry (compiled by Hardhat with the pinned solcjs)", async function () {
    const info = await hre.artifacts.getBuildInfo("InferenceRegistry.sol:InferenceRegistry");
    assert.equal(info.solcVersion, require("solc/package.json").version);
    const art = await hre.artifacts.readArtifact("InferenceRegistry");
    registry = await new ethers.ContractFactory(art.abi, art.bytecode, signer).deploy();
    await registry.waitForDeployment();

    const args = [await verifier.getAddress(), sha256("vk.key"), sha256("model.onnx")];
    modelId = await registry.registerModel.staticCall(...args);
    await (await registry.registerModel(...args)).wait();
    assert.equal(modelId, 1n);
    assert.equal(await registry.modelIdOf(...args), modelId);
    const model = await registry.getModel(modelId);
    assert.equal(model.vkDigest, args[1]);
    assert.equal(model.onnxHash, args[2]);
  });

  it("attests the proof, and isAttested says so", async function () {
    const instancesHash = ethers.solidityPackedKeccak256(["uint256[]"], [instances]);
    const expectedId = ethers.keccak256(coder.encode(["uint256", "bytes32"], [modelId, instancesHash]));
    assert.equal(await registry.isAttested(expectedId), false);

    const id = await registry.attest.staticCall(modelId, proof, instances);
    assert.equal(id, expectedId);
    const receipt = await (await registry.attest(modelId, proof, instances)).wait();
    assert.equal(receipt.status, 1);
    assert.equal(await registry.isAttested(id), true);
    const record = await registry.getAttestation(id);
    assert.equal(record.modelId, modelId);
    assert.equal(record.instancesHash, instancesHash);
    assert.equal(record.submitter, await signer.getAddress());
    assert.equal(record.blockNumber, BigInt(receipt.blockNumber));
  });

  it("refuses a tampered proof (InvalidProof) and a repeat (AlreadyAttested)", async function () {
    // staticCall: the same execution as a transaction, and ethers decodes the custom error with the ABI.
    const reverts = (name) => (err) => {
      assert.equal(err.revert?.name, name, err.shortMessage ?? err.message);
      return true;
    };
    await assert.rejects(registry.attest.staticCall(modelId, flipOneByte(proof), instances), reverts("InvalidProof"));
    await assert.rejects(registry.attest.staticCall(modelId, proof, instances), reverts("AlreadyAttested"));
  });
});

// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// The interface EZKL's generated Halo2 verifier exposes. It reverts or returns false on a bad proof.
interface IHalo2Verifier {
    function verifyProof(bytes calldata proof, uint256[] calldata instances) external returns (bool);
}

/// EZKL's reusable verifier (Halo2VerifierReusable): one contract for many circuits, each passing its
/// verifying-key artifact (VKA). It reverts on a bad proof or an unregistered VKA and otherwise returns
/// raw words, not ABI-encoded: 1, keccak256 of the VKA words (its digest), 32 * n, n rescaled instances.
/// It accepts a proof for ANY registered VKA: the caller must check the digest.
interface IHalo2VerifierReusable {
    function verifyProof(bytes calldata proof, uint256[] calldata instances, bytes32[] calldata vka)
        external
        returns (bool success, bytes32 vkaDigest, int256[] memory rescaledInstances);
}

/// @title InferenceRegistry
/// @notice Records model inferences whose zero-knowledge proof was checked on-chain.
/// @dev A model is a (verifier, vk digest, onnx hash) triple, registered once (registering it again
///      returns the same id). It is bound to its verifier's code: attest refuses a model whose
///      verifier's code hash has changed since registration. A model verified by EZKL's reusable
///      verifier is a (reusable verifier, VKA digest, vk digest, onnx hash) quadruple: it attests with
///      attestWithVka, which passes the VKA and requires the verifier to return this model's VKA
///      digest (the reusable verifier accepts any registered VKA). An attestation is keyed by
///      keccak256(abi.encode(modelId, keccak256(abi.encodePacked(instances)))): the instances are
///      the proof's public inputs and outputs, so one inference result of one model is recorded
///      once, however many (randomized) proofs of it are submitted.
contract InferenceRegistry {
    struct Model {
        address verifier;
        bytes32 codeHash;
        bytes32 vkDigest;
        bytes32 onnxHash;
        address registrant;
        /// keccak256 of the VKA words for a model of the reusable verifier; 0 for a single-model verifier
        bytes32 vkaDigest;
    }

    struct Attestation {
        uint256 modelId;
        bytes32 instancesHash;
        bytes32 proofHash;
        address submitter;
        uint256 blockNumber;
    }

    error InvalidProof();
    error AlreadyAttested(bytes32 attestationId);
    error UnknownModel(uint256 modelId);
    error NotAContract(address verifier);
    error UnknownAttestation(bytes32 attestationId);
    error VerifierChanged(uint256 modelId);
    /// attest on a reusable-verifier model, or attestWithVka on a single-verifier one
    error WrongVerifierKind(uint256 modelId);
    /// the reusable verifier accepted the proof for another VKA than the model's
    error WrongVka(uint256 modelId, bytes32 vkaDigest);
    error ZeroVkaDigest();

    event ModelRegistered(
        uint256 indexed modelId, address indexed verifier, bytes32 vkDigest, bytes32 onnxHash, address registrant
    );
    event ReusableModelRegistered(
        uint256 indexed modelId,
        address indexed verifier,
        bytes32 indexed vkaDigest,
        bytes32 vkDigest,
        bytes32 onnxHash,
        address registrant
    );
    event Attested(
        bytes32 indexed attestationId,
        uint256 indexed modelId,
        bytes32 instancesHash,
        address indexed submitter,
        uint256 blockNumber
    );

    /// Model ids start at 1, so 0 never names a model.
    uint256 public modelCount;
    mapping(uint256 => Model) private _models;
    mapping(bytes32 => Attestation) private _attestations;
    mapping(bytes32 => uint256) private _modelIds;

    /// Registers (verifier, vkDigest, onnxHash) and returns its id; the same triple again returns
    /// the id it already has, so copies of one proof dir never register a model twice.
    function registerModel(address verifier, bytes32 vkDigest, bytes32 onnxHash) external returns (uint256 modelId) {
        if (verifier.code.length == 0) revert NotAContract(verifier);
        bytes32 key = keccak256(abi.encode(verifier, vkDigest, onnxHash));
        modelId = _modelIds[key];
        if (modelId != 0) return modelId;
        modelId = ++modelCount;
        _modelIds[key] = modelId;
        _models[modelId] = Model(verifier, verifier.codehash, vkDigest, onnxHash, msg.sender, bytes32(0));
        emit ModelRegistered(modelId, verifier, vkDigest, onnxHash, msg.sender);
    }

    /// Registers a model of EZKL's reusable verifier: (verifier, vkaDigest, vkDigest, onnxHash), where
    /// vkaDigest is keccak256 of the model's VKA words (what registerVka returns). The same
    /// quadruple again returns the id it already has.
    function registerReusableModel(address verifier, bytes32 vkaDigest, bytes32 vkDigest, bytes32 onnxHash)
        external
        returns (uint256 modelId)
    {
        if (verifier.code.length == 0) revert NotAContract(verifier);
        if (vkaDigest == bytes32(0)) revert ZeroVkaDigest();
        bytes32 key = keccak256(abi.encode(verifier, vkaDigest, vkDigest, onnxHash));
        modelId = _modelIds[key];
        if (modelId != 0) return modelId;
        modelId = ++modelCount;
        _modelIds[key] = modelId;
        _models[modelId] = Model(verifier, verifier.codehash, vkDigest, onnxHash, msg.sender, vkaDigest);
        emit ReusableModelRegistered(modelId, verifier, vkaDigest, vkDigest, onnxHash, msg.sender);
    }

    /// The id of a registered (verifier, vkDigest, onnxHash) triple, or 0.
    function modelIdOf(address verifier, bytes32 vkDigest, bytes32 onnxHash) external view returns (uint256) {
        return _modelIds[keccak256(abi.encode(verifier, vkDigest, onnxHash))];
    }

    /// The id of a registered reusable-verifier model, or 0.
    function reusableModelIdOf(address verifier, bytes32 vkaDigest, bytes32 vkDigest, bytes32 onnxHash)
        external
        view
        returns (uint256)
    {
        return _modelIds[keccak256(abi.encode(verifier, vkaDigest, vkDigest, onnxHash))];
    }

    /// Verifies the proof with the model's verifier and records the result; reverts unless valid.
    function attest(uint256 modelId, bytes calldata proof, uint256[] calldata instances)
        external
        returns (bytes32 attestationId)
    {
        address verifier = _checkedVerifier(modelId);
        if (_models[modelId].vkaDigest != bytes32(0)) revert WrongVerifierKind(modelId);
        // Verify first, so a bad proof is reported as InvalidProof even for a recorded result.
        // staticcall: a verifier only computes; it must not be able to re-enter or change state.
        (bool ok, bytes memory ret) =
            verifier.staticcall(abi.encodeCall(IHalo2Verifier.verifyProof, (proof, instances)));
        if (!ok || ret.length < 32 || !abi.decode(ret, (bool))) revert InvalidProof();
        attestationId = _record(modelId, proof, instances);
    }

    /// attest for a model of the reusable verifier: the proof is checked against `vka`, and only counts
    /// if the verifier returns success and this model's VKA digest (so a proof of another registered
    /// model, sent with that model's VKA, is refused).
    function attestWithVka(uint256 modelId, bytes calldata proof, uint256[] calldata instances, bytes32[] calldata vka)
        external
        returns (bytes32 attestationId)
    {
        address verifier = _checkedVerifier(modelId);
        bytes32 expected = _models[modelId].vkaDigest;
        if (expected == bytes32(0)) revert WrongVerifierKind(modelId);
        (bool ok, bytes memory ret) =
            verifier.staticcall(abi.encodeCall(IHalo2VerifierReusable.verifyProof, (proof, instances, vka)));
        // The return is raw words (see the interface): word 0 success, word 1 the VKA digest.
        if (!ok || ret.length < 64) revert InvalidProof();
        uint256 success;
        bytes32 digest;
        assembly {
            success := mload(add(ret, 0x20))
            digest := mload(add(ret, 0x40))
        }
        if (success != 1) revert InvalidProof();
        if (digest != expected) revert WrongVka(modelId, digest);
        attestationId = _record(modelId, proof, instances);
    }

    function _checkedVerifier(uint256 modelId) private view returns (address verifier) {
        verifier = _models[modelId].verifier;
        if (verifier == address(0)) revert UnknownModel(modelId);
        if (verifier.codehash != _models[modelId].codeHash) revert VerifierChanged(modelId);
    }

    function _record(uint256 modelId, bytes calldata proof, uint256[] calldata instances)
        private
        returns (bytes32 attestationId)
    {
        bytes32 instancesHash = keccak256(abi.encodePacked(instances));
        attestationId = attestationIdOf(modelId, instancesHash);
        if (_attestations[attestationId].modelId != 0) revert AlreadyAttested(attestationId);
        _attestations[attestationId] =
            Attestation(modelId, instancesHash, keccak256(proof), msg.sender, block.number);
        emit Attested(attestationId, modelId, instancesHash, msg.sender, block.number);
    }

    function attestationIdOf(uint256 modelId, bytes32 instancesHash) public pure returns (bytes32) {
        return keccak256(abi.encode(modelId, instancesHash));
    }

    function isAttested(bytes32 attestationId) external view returns (bool) {
        return _attestations[attestationId].modelId != 0;
    }

    function getAttestation(bytes32 attestationId) external view returns (Attestation memory a) {
        a = _attestations[attestationId];
        if (a.modelId == 0) revert UnknownAttestation(attestationId);
    }

    function getModel(uint256 modelId) external view returns (Model memory m) {
        m = _models[modelId];
        if (m.verifier == address(0)) revert UnknownModel(modelId);
    }

    // --- batches (`vcompute attest` on a batch dir) ---

    error LengthMismatch(uint256 proofs, uint256 instances);
    error InvalidProofAt(uint256 index);

    /// Attests several proofs of one model (of a single-model verifier) in one transaction: one
    /// transaction's base cost, one model lookup and code-hash check, shared by all of them.
    /// All or nothing for validity: reverts with InvalidProofAt(i) if proof i is invalid (check
    /// each with an eth_call of verifyProof first). A result that is already recorded (earlier, or
    /// twice in this batch) is not recorded again and is no error: its id is returned like the others.
    function attestBatch(uint256 modelId, bytes[] calldata proofs, uint256[][] calldata instances)
        external
        returns (bytes32[] memory attestationIds)
    {
        if (proofs.length != instances.length) revert LengthMismatch(proofs.length, instances.length);
        address verifier = _checkedVerifier(modelId);
        // a model of the reusable verifier must pass its VKA and have its digest checked: attestWithVka
        if (_models[modelId].vkaDigest != bytes32(0)) revert WrongVerifierKind(modelId);
        attestationIds = new bytes32[](proofs.length);
        for (uint256 i = 0; i < proofs.length; ++i) {
            attestationIds[i] = _attestChecked(verifier, modelId, proofs[i], instances[i], i);
        }
    }

    function _attestChecked(address verifier, uint256 modelId, bytes calldata proof, uint256[] calldata instances, uint256 i)
        private
        returns (bytes32 attestationId)
    {
        bytes32 instancesHash = keccak256(abi.encodePacked(instances));
        attestationId = attestationIdOf(modelId, instancesHash);
        (bool ok, bytes memory ret) =
            verifier.staticcall(abi.encodeCall(IHalo2Verifier.verifyProof, (proof, instances)));
        if (!ok || ret.length < 32 || !abi.decode(ret, (bool))) revert InvalidProofAt(i);
        if (_attestations[attestationId].modelId != 0) return attestationId;
        _attestations[attestationId] =
            Attestation(modelId, instancesHash, keccak256(proof), msg.sender, block.number);
        emit Attested(attestationId, modelId, instancesHash, msg.sender, block.number);
    }
}

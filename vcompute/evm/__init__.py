"""The chain side: the Solidity verifier (``verifier``, compiled by the pinned solcjs in ``solc``),
local chains (``chain``: Anvil or a Hardhat node), verification on a chain (``onchain``) and the
InferenceRegistry contract that records verified results (``registry``).

The Solidity sources and npm pins live in the top-level ``contracts/`` folder.
"""

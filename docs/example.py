# ---
# jupyter:
#   jupytext:
#     formats: py:percent
# ---

# %% [markdown]
# # vcompute from Python: prove a torch model, verify it, run it, verify it on-chain
#
# A notebook in percent format: open it in Jupyter (through jupytext) or VS Code, or run it as a
# script, `python docs/example.py`. It writes into `vcompute-example/` in the working directory,
# and keeps proving keys and SRS files in vcompute's cache (`$VCOMPUTE_CACHE`, default
# `~/.cache/vcompute`), so a second run skips the slow set-up. Needs vcompute's `make setup`
# (Python packages, and the npm solc and Anvil for the last step). About a minute on 2 cores the
# first time.

# %%
from pathlib import Path

import numpy as np
import torch

import vcompute

work = Path("vcompute-example")
work.mkdir(exist_ok=True)

# %% [markdown]
# ## 1. A small torch model, exported as ONNX
#
# `vcompute.export` writes a `torch.nn.Module` with the exporter settings EZKL reads.

# %%
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
onnx_path = vcompute.export(model, torch.zeros(1, 8), work / "mlp.onnx")
print("exported", onnx_path)

# %% [markdown]
# ## 2. Prove one inference
#
# The input is a numpy array (a torch tensor, a JSON file or EZKL's `{"input_data": ...}` dict
# work too). `prove` calibrates the circuit, makes the keys, runs EZKL's witness and vcompute's
# fixed-point engine on the input (their integers must agree), proves, verifies locally, and
# writes the proof dir: proof, verifying key, `Verifier.sol` / `Verifier.json` and the
# `verifyProof` calldata for a chain. `force=True` lets this cell run again over an old proof dir.
#
# The SRS is a development one, generated locally (not secure for production: pass `srs=` with a
# ceremony file there).

# %%
x = np.random.default_rng(0).standard_normal((1, 8)).astype(np.float32)
proof = vcompute.prove(onnx_path, x, work / "proof", force=True)

with torch.no_grad():
    expected = model(torch.from_numpy(x)).numpy().reshape(-1)
print("proof dir:      ", proof.out)
print("proven outputs: ", np.round(proof.outputs[0], 4))
print("torch (float):  ", np.round(expected, 4))
print("as integers:    ", proof.outputs_fixed[0])
print("engine agrees:  ", proof.engine_exact)
assert np.allclose(proof.outputs[0], expected, atol=1e-2)

# %% [markdown]
# ## 3. Verify the proof
#
# `verify` checks the proof with the verifying key and the SRS. The outputs it reports are
# decoded from the proof itself, not read from any file beside it. It raises
# `vcompute.ProofError` if the proof is invalid.

# %%
checked = vcompute.verify(proof.out)
print("valid:", checked.valid, "| outputs from the proof:", checked.outputs_fixed[0])
assert checked.valid and checked.outputs_fixed == proof.outputs_fixed

# %% [markdown]
# ## 4. Run the model on the fixed-point engine
#
# `infer` runs the model in EZKL's fixed-point arithmetic on vcompute's engine: its Triton kernels
# on a GPU, exact int64 torch on a CPU. Given the proof's `settings.json` it runs the proven
# circuit, and its integers equal the ones the proof attests, bit for bit.

# %%
run = vcompute.infer(onnx_path, x, settings=proof.out / "settings.json")
print(f"engine on {run.device} in {run.time_ms:.1f} ms:", run.outputs_fixed[0])
assert run.outputs_fixed == proof.outputs_fixed, "the engine's integers differ from the proof's"

# %% [markdown]
# ## 5. Verify on a chain
#
# Without `rpc_url`, `verify_onchain` starts a local Anvil on a free loopback port, deploys the
# Solidity verifier built from the verifying key, calls `verifyProof` with the proof and stops
# the chain. Pass `rpc_url=` for a running node (`vcompute chain`, `npx hardhat node`, a testnet).
# `vcompute.attest(proof.out, rpc_url=...)` records the result in InferenceRegistry.

# %%
onchain = vcompute.verify_onchain(proof.out)
print("on-chain:", "valid" if onchain.valid else f"rejected ({onchain.reason})")
print(f"verifier {onchain.verifier_address}: {onchain.deployed_size:,} bytes, deploy gas {onchain.deploy_gas}, "
      f"verification gas {onchain.verification_gas}")
assert onchain.valid and onchain.outputs_fixed == proof.outputs_fixed

# %%
print("done: proven, verified locally and on-chain, and reproduced by the engine")

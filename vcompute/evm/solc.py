"""Compile Solidity with the solcjs pinned in contracts/package-lock.json.

Why solcjs through node: it is an npm package, so `npm ci` in contracts/ installs the exact compiler
and nothing ever downloads one at run time (this machine and CI reach only package registries).
Outputs are cached by the hash of the full standard-JSON input plus the compiler version, because
the EZKL verifier is large and every on-chain command needs its bytecode.
"""

from __future__ import annotations

import functools

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from vcompute.cache import cache_root
from vcompute.errors import ProofError, UsageError

INSTALL_HINT = "run `npm ci` in vcompute's contracts folder (`vcompute --version` names it)"
# Cancun is supported by Anvil, Hardhat and the main chains; newer opcodes are not needed.
DEFAULT_EVM_VERSION = "cancun"
EIP170_LIMIT = 24_576

# Reads a standard-JSON input on stdin and prints solc's standard-JSON output.
_NODE_SCRIPT = r"""
const solc = require(process.argv[1]);
if (process.argv[2] === '--version') { process.stdout.write(solc.version()); process.exit(0); }
let input = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (c) => { input += c; });
process.stdin.on('end', () => { process.stdout.write(solc.compile(input)); });
"""


def contracts_dir() -> Path:
    """The folder with package.json and the Solidity sources (env VCOMPUTE_CONTRACTS overrides)."""
    override = os.environ.get("VCOMPUTE_CONTRACTS")
    if override:
        return Path(override)
    checkout = Path(__file__).resolve().parents[2] / "contracts"  # a source checkout (or editable install)
    if (checkout / "package.json").is_file():
        return checkout
    return Path(__file__).resolve().parent / "contracts"  # a wheel: the same files, shipped as package data


def node_binary() -> str:
    """Path of `node`, or a UsageError saying how to get it."""
    node = shutil.which("node")
    if node is None:
        raise UsageError("node is not installed: install Node.js 20+ and " + INSTALL_HINT)
    return node


def solc_module() -> Path:
    """The installed npm solc package; a UsageError naming `npm ci` when it is missing."""
    path = contracts_dir() / "node_modules" / "solc"
    if not (path / "soljson.js").is_file():
        raise UsageError(f"solc (npm) is not installed in {path.parent}: {INSTALL_HINT}")
    return path


def _run_node(args: list[str], stdin: str | None = None, timeout: float = 300) -> str:
    proc = subprocess.run(
        [node_binary(), "-e", _NODE_SCRIPT, str(solc_module()), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if proc.returncode != 0:
        raise ProofError(f"solcjs failed (exit {proc.returncode}): {proc.stderr.strip()[:500]}")
    return proc.stdout


@functools.lru_cache(maxsize=1)
def solc_version() -> str:
    """The full version string of the pinned solcjs, e.g. 0.8.37+commit.xxx.Emscripten.clang.

    Asked once per process (it starts node, about 1 s; a batch writes it into every proof dir)."""
    return _run_node(["--version"], timeout=60).strip()


def standard_input(
    sources: dict[str, str], evm_version: str = DEFAULT_EVM_VERSION, runs: int = 200
) -> dict:
    """Standard-JSON compiler input: optimizer on, only the outputs we use."""
    return {
        "language": "Solidity",
        "sources": {name: {"content": text} for name, text in sources.items()},
        "settings": {
            "optimizer": {"enabled": True, "runs": runs},
            "evmVersion": evm_version,
            "outputSelection": {
                "*": {"*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"]}
            },
        },
    }


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


def _one_line(error: dict, std_input: dict) -> str:
    """`File.sol:LINE: Type: message` from a solc error (its formattedMessage spans lines)."""
    where = ""
    loc = error.get("sourceLocation") or {}
    source = std_input["sources"].get(loc.get("file", ""), {}).get("content")
    if source is not None and loc.get("start", -1) >= 0:
        where = f"{loc['file']}:{source[: loc['start']].count(chr(10)) + 1}: "
    return f"{where}{error.get('type', 'Error')}: {error.get('message', '').strip()}"


def compile_standard(std_input: dict) -> tuple[dict, bool]:
    """Compile a standard-JSON input; returns (solc output, cache_hit). Errors raise ProofError."""
    module = solc_module()
    package = json.loads((module / "package.json").read_text())
    payload = json.dumps(std_input, sort_keys=True)
    key = hashlib.sha256(f"solcjs {package['version']}\n{payload}".encode()).hexdigest()
    cached = cache_root() / "solc" / f"{key}.json"
    if cached.is_file():
        try:
            return json.loads(cached.read_text()), True
        except json.JSONDecodeError:
            cached.unlink(missing_ok=True)  # a torn file from an old crash: compile again
    output = json.loads(_run_node([], stdin=payload))
    errors = [e for e in output.get("errors", []) if e.get("severity") == "error"]
    if errors:
        raise ProofError(f"Solidity compilation failed: {_one_line(errors[0], std_input)}")
    _atomic_write(cached, json.dumps(output))
    return output, False


def compile_contract(
    source: str, contract: str, filename: str = "Contract.sol", **settings
) -> tuple[dict, bool]:
    """Compile one source and return ({abi, bytecode, deployed_bytecode, deployed_size}, cache_hit)."""
    output, hit = compile_standard(standard_input({filename: source}, **settings))
    try:
        art = output["contracts"][filename][contract]
    except KeyError:
        found = sorted(output.get("contracts", {}).get(filename, {}))
        raise ProofError(f"contract {contract!r} not found in {filename} (found: {found})") from None
    deployed = art["evm"]["deployedBytecode"]["object"]
    return {
        "contract": contract,
        "abi": art["abi"],
        "bytecode": "0x" + art["evm"]["bytecode"]["object"],
        "deployed_bytecode": "0x" + deployed,
        "deployed_size": len(deployed) // 2,
    }, hit


def compile_file(path: Path, contract: str, **settings) -> tuple[dict, bool]:
    """Compile a .sol file on disk (a single self-contained source)."""
    if not path.is_file():
        raise UsageError(f"Solidity source not found: {path}")
    return compile_contract(path.read_text(), contract, filename=path.name, **settings)

"""A Solidity project verifies and attests a vcompute proof from its own tests (issue #13).

contracts/ is that project: Hardhat 2 with the pinned solcjs (hardhat.config.js) and a mocha test,
contracts/test/verify.test.js, that deploys a proof dir's EZKL verifier on Hardhat's in-process
network, checks the real calldata and a tampered proof, then registers the model in
InferenceRegistry (compiled by Hardhat) and attests the proof. Here it runs as a user runs it,
`hardhat test` with VCOMPUTE_PROOF_DIR, on a real proof dir.

Offline by construction, and checked: every node process gets a preloaded guard that records and
refuses any DNS lookup or connection to a host other than loopback, and Hardhat's compiler cache
(XDG_CACHE_HOME) is a fresh empty folder that must stay without a compiler. Marked `hardhat`:
about 20 s on 2 quiet cores (45-70 s when the machine is shared), plus the suite's shared proof
of circuits/mlp.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from vcompute.evm.chain import hardhat_cli
from vcompute.evm.solc import contracts_dir, node_binary

# Preloaded into every node process (NODE_OPTIONS=--require, inherited by Hardhat's solcjs runner).
OFFLINE_GUARD = r"""
const fs = require("fs"), net = require("net"), dns = require("dns");
const LOG = process.env.VCOMPUTE_OFFLINE_LOG;
const LOOPBACK = new Set(["localhost", "127.0.0.1", "::1", "0.0.0.0"]);
function refuse(what) {
  fs.appendFileSync(LOG, what + "\n");
  return new Error("offline test: refused " + what);
}
const lookup = dns.lookup;
dns.lookup = function (host, ...rest) {
  if (LOOPBACK.has(host)) return lookup.call(this, host, ...rest);
  const err = refuse("dns " + host), cb = rest[rest.length - 1];
  process.nextTick(() => cb(err));
  return {};
};
const promisesLookup = dns.promises.lookup;
dns.promises.lookup = async function (host, ...rest) {
  if (LOOPBACK.has(host)) return promisesLookup.call(this, host, ...rest);
  throw refuse("dns " + host);
};
const connect = net.Socket.prototype.connect;
net.Socket.prototype.connect = function (...args) {
  let o = Array.isArray(args[0]) ? args[0][0] : args[0];
  const host = o !== null && typeof o === "object" ? (o.path ? null : o.host || "localhost")
    : typeof args[1] === "string" ? args[1] : "localhost";
  if (host === null || LOOPBACK.has(host)) return connect.apply(this, args);
  const err = refuse("connect " + host);  // fail like an unreachable host: an error event, not a throw
  process.nextTick(() => this.destroy(err));
  return this;
};
"""

TEST_FILE = "test/verify.test.js"


def _offline_env(tmp_path: Path, proof_dir: Path | None = None) -> dict[str, str]:
    guard = tmp_path / "offline-guard.js"
    guard.write_text(OFFLINE_GUARD)
    env = {k: v for k, v in os.environ.items() if k != "VCOMPUTE_PROOF_DIR"}
    env.update({
        "NODE_OPTIONS": f"--require {guard}",
        "VCOMPUTE_OFFLINE_LOG": str(tmp_path / "network-attempts.log"),
        # Hardhat keeps downloaded compilers under XDG_CACHE_HOME/hardhat-nodejs: a fresh, empty one.
        "XDG_CACHE_HOME": str(tmp_path / "xdg-cache"),
        "XDG_CONFIG_HOME": str(tmp_path / "xdg-config"),
        "XDG_DATA_HOME": str(tmp_path / "xdg-data"),
        "HARDHAT_DISABLE_TELEMETRY_PROMPT": "true",
        "DO_NOT_TRACK": "1",
        "NO_COLOR": "1",
        "FORCE_COLOR": "0",
    })
    if proof_dir is not None:
        env["VCOMPUTE_PROOF_DIR"] = str(proof_dir)
    return env


def _hardhat(*args: str, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [node_binary(), str(hardhat_cli()), *args],
        cwd=contracts_dir(), env=env, capture_output=True, text=True, timeout=timeout,
    )


def _attempts(env: dict[str, str]) -> list[str]:
    log = Path(env["VCOMPUTE_OFFLINE_LOG"])
    return log.read_text().splitlines() if log.is_file() else []


def test_the_offline_guard_catches_a_download(tmp_path):
    """The guard is real: a node process that fetches solc from the internet is refused and recorded."""
    env = _offline_env(tmp_path)
    script = "require('https').get('https://binaries.soliditylang.org/linux-amd64/list.json').on('error', () => {})"
    proc = subprocess.run([node_binary(), "-e", script], env=env, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert _attempts(env) and all("binaries.soliditylang.org" in a for a in _attempts(env)), _attempts(env)


@pytest.mark.hardhat
def test_a_hardhat_project_verifies_and_attests_a_proof_dir(proved, tmp_path):
    """`hardhat compile` and `hardhat test` with a real proof dir: all tests pass, nothing downloaded.

    The proof dir is the suite's proof of circuits/mlp (tests/conftest.py), which the project only reads."""
    env = _offline_env(tmp_path, proved("mlp"))

    # A forced compile: Hardhat's compile cache must not hide the compiler lookup.
    compiled = _hardhat("compile", "--force", env=env, timeout=120)
    assert compiled.returncode == 0, compiled.stdout + compiled.stderr
    assert "Compiled 1 Solidity file successfully" in compiled.stdout, compiled.stdout

    proc = _hardhat("test", env=env, timeout=180)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    expected = len(re.findall(r"^\s*it\(", (contracts_dir() / TEST_FILE).read_text(), re.M))
    passing = re.search(r"(\d+) passing", output)
    assert passing and int(passing.group(1)) == expected, output[-4000:]
    assert not re.search(r"\d+ (pending|failing)", output), output[-4000:]

    assert _attempts(env) == [], f"hardhat tried to reach the network: {_attempts(env)}"
    compilers = [p.name for p in Path(env["XDG_CACHE_HOME"]).rglob("*") if "compiler" in p.name]
    assert compilers == [], f"hardhat downloaded a compiler: {compilers}"


@pytest.mark.hardhat
def test_without_a_proof_dir_the_project_tests_skip_and_say_why(tmp_path):
    """`npx hardhat test` in a fresh checkout, without VCOMPUTE_PROOF_DIR, is not an error."""
    proc = _hardhat("test", "--no-compile", env=_offline_env(tmp_path), timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "set VCOMPUTE_PROOF_DIR" in proc.stdout
    assert re.search(r"0 passing", proc.stdout) and re.search(r"\d+ pending", proc.stdout), proc.stdout

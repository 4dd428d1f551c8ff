"""Local chains (Anvil, Hardhat node) and web3 connections.

Why a context manager: a chain started for one `verify --onchain` must die with the command, also
when it fails or the user presses Ctrl-C, or it would hold a port and a process forever. The node
runs in its own process group so Ctrl-C reaches us, and we stop it (and any children) in order.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import tempfile
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from web3 import Web3

from vcompute.errors import UsageError
from vcompute.evm.solc import INSTALL_HINT, contracts_dir, node_binary

LOOPBACK = "127.0.0.1"


@dataclass
class LocalChain:
    """A running local node: its URL, its funded accounts and (when known) their private keys."""

    kind: str
    url: str
    process: subprocess.Popen
    accounts: list[str] = field(default_factory=list)
    private_keys: list[str] = field(default_factory=list)
    chain_id: int | None = None


def anvil_binary() -> Path:
    """The anvil binary shipped by npm @foundry-rs/anvil-linux-amd64 (installed by `npm ci`)."""
    path = contracts_dir() / "node_modules" / "@foundry-rs" / "anvil-linux-amd64" / "bin" / "anvil"
    if not path.is_file():
        raise UsageError(f"anvil is not installed ({path} missing): {INSTALL_HINT}")
    return path


def hardhat_cli() -> Path:
    """Hardhat's CLI script, the one `npx hardhat` runs."""
    path = contracts_dir() / "node_modules" / "hardhat" / "internal" / "cli" / "bootstrap.js"
    if not path.is_file():
        raise UsageError(f"hardhat is not installed ({path} missing): {INSTALL_HINT}")
    return path


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def port_is_free(port: int) -> bool:
    """True when nothing listens on loopback:port (so a node we start there is the one answering)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((LOOPBACK, port))
        except OSError:
            return False
        return True


def _pick_port(port: int | None) -> int:
    if port is None:
        return free_port()
    if not port_is_free(port):
        raise UsageError(f"port {port} on {LOOPBACK} is already in use: pick another with --port")
    return port


def rpc_chain_id(url: str, timeout: float = 2.0) -> int | None:
    """eth_chainId of the node at url, or None when nothing answers JSON-RPC there."""
    w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": timeout}))
    try:
        return int(w3.eth.chain_id)
    except Exception:  # connection refused, timeout, HTML instead of JSON: all mean "not a node"
        return None


def wait_for_rpc(url: str, process: subprocess.Popen, timeout: float, what: str) -> int:
    """Poll until the node answers; fail early with its output if the process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise UsageError(f"{what} exited with code {process.returncode} before answering at {url}")
        chain_id = rpc_chain_id(url, timeout=1.0)
        if chain_id is not None:
            return chain_id
        time.sleep(0.1)
    raise UsageError(f"{what} did not answer JSON-RPC at {url} within {timeout:.0f} s")


def stop_process(process: subprocess.Popen, grace: float = 5.0) -> None:
    """SIGTERM the node's process group, then SIGKILL whatever is left after `grace` seconds."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait()


def _die_with_parent() -> None:
    """In the child, before exec: get SIGTERM when the parent dies, even by SIGKILL (Linux prctl).

    Without it a `kill` of vcompute (SIGTERM runs no finally-blocks) would orphan the node."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _spawn(args: list[str], cwd: Path | None = None, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        args,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # own process group: we stop it, and all its children, ourselves
        preexec_fn=_die_with_parent,
    )


@contextmanager
def start_anvil(port: int | None = None, timeout: float = 30.0) -> Iterator[LocalChain]:
    """Run Anvil on loopback until the block exits; yields its URL, accounts and private keys."""
    binary = anvil_binary()
    port = _pick_port(port)
    url = f"http://{LOOPBACK}:{port}"
    with tempfile.TemporaryDirectory(prefix="vcompute-anvil-") as tmp:
        config = Path(tmp) / "anvil.json"
        args = [str(binary), "--host", LOOPBACK, "--port", str(port), "--silent"]
        process = _spawn([*args, "--config-out", str(config)])
        try:
            chain_id = wait_for_rpc(url, process, timeout, "anvil")
            info = json.loads(config.read_text()) if config.is_file() else {}
            yield LocalChain(
                kind="anvil",
                url=url,
                process=process,
                accounts=[Web3.to_checksum_address(a) for a in info.get("available_accounts", [])],
                private_keys=list(info.get("private_keys", [])),
                chain_id=chain_id,
            )
        finally:
            stop_process(process)


@contextmanager
def start_hardhat(port: int | None = None, timeout: float = 90.0) -> Iterator[LocalChain]:
    """Run `npx hardhat node` (the same CLI, without npm's wrapper) on loopback in contracts/."""
    cli = hardhat_cli()
    port = _pick_port(port)
    url = f"http://{LOOPBACK}:{port}"
    env = {**os.environ, "HARDHAT_DISABLE_TELEMETRY_PROMPT": "true", "DO_NOT_TRACK": "1"}
    args = [node_binary(), str(cli), "node", "--hostname", LOOPBACK, "--port", str(port)]
    process = _spawn(args, cwd=contracts_dir(), env=env)
    try:
        chain_id = wait_for_rpc(url, process, timeout, "hardhat node")
        accounts = list(Web3(Web3.HTTPProvider(url)).eth.accounts)
        yield LocalChain(kind="hardhat", url=url, process=process, accounts=accounts, chain_id=chain_id)
    finally:
        stop_process(process)


def _reason(exc: Exception, timeout: float) -> str:
    """One short line for why a node did not answer (requests' messages span several lines)."""
    import requests

    if isinstance(exc, requests.exceptions.Timeout):
        return f"no answer within {timeout:.0f} s"
    if isinstance(exc, requests.exceptions.ConnectionError):
        return "connection failed (is the node running? start one with `vcompute chain`)"
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def wait_until_stopped(chain: LocalChain) -> int:
    """Block until the node exits (Ctrl-C raises KeyboardInterrupt here); returns its exit code."""
    return chain.process.wait()


def connect(url: str, timeout: float = 60.0) -> Web3:
    """A web3 connected to url; an unreachable chain is a UsageError (exit 2) with one line."""
    if not url.startswith(("http://", "https://")):
        raise UsageError(f"--rpc-url must be an http(s) URL, got {url!r}")
    # No retries: web3 retries a timed-out request 5 times, so "60 s" would be 5 minutes.
    w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": timeout}, exception_retry_configuration=None))
    try:
        w3.eth.chain_id
    except Exception as exc:
        raise UsageError(f"cannot reach a chain at {url}: {_reason(exc, timeout)}") from None
    return w3


def use_sender(w3: Web3, private_key: str | None = None) -> str:
    """Make w3 send transactions from `private_key` (signed locally) or the node's first account.

    Local nodes (Anvil, Hardhat) unlock funded accounts, so no key is needed there; a remote node
    needs --private-key. Returns the sender address.
    """
    if private_key:
        from eth_account import Account
        from web3.middleware import SignAndSendRawMiddlewareBuilder

        try:
            account = Account.from_key(private_key.strip())
        except Exception:
            raise UsageError("--private-key is not a valid secp256k1 private key (64 hex digits)") from None
        w3.middleware_onion.inject(SignAndSendRawMiddlewareBuilder.build(account), layer=0)
        w3.eth.default_account = account.address
        return account.address
    accounts = list(w3.eth.accounts)
    if not accounts:
        raise UsageError("the chain has no unlocked account to send from: pass --private-key")
    w3.eth.default_account = accounts[0]
    return accounts[0]


@contextmanager
def rpc_errors(url: str) -> Iterator[None]:
    """Turn a node's refusal (e.g. insufficient funds) or a lost connection into one-line UsageErrors."""
    import requests
    from web3.exceptions import Web3RPCError

    try:
        yield
    except Web3RPCError as exc:
        message = exc.rpc_response.get("error", {}).get("message") if isinstance(exc.rpc_response, dict) else None
        raise UsageError(f"the chain at {url} refused the request: {message or exc}") from None
    except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
        raise UsageError(f"lost the connection to the chain at {url}: {_reason(exc, 60)}") from None


@contextmanager
def session(rpc_url: str | None, private_key: str | None = None) -> Iterator[tuple[Web3, str]]:
    """A connected web3 with its sender set, on ``rpc_url`` or on an Anvil started for the block.

    Node refusals and lost connections inside the block become one-line UsageErrors.
    """
    with ExitStack() as stack:
        if rpc_url is None:
            rpc_url = stack.enter_context(start_anvil()).url
        w3 = connect(rpc_url)
        with rpc_errors(rpc_url):
            use_sender(w3, private_key)
            yield w3, rpc_url

"""Local chains start, answer JSON-RPC and always stop; unreachable chains are exit-2 errors."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from vcompute.evm.chain import connect, free_port, rpc_chain_id, start_anvil, start_hardhat, use_sender
from vcompute.errors import UsageError




def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still "exists": count it as dead
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_anvil_answers_with_funded_accounts_and_stops_on_exit():
    with start_anvil() as chain:
        pid, url = chain.process.pid, chain.url
        assert url.startswith("http://127.0.0.1:"), f"anvil must listen on loopback, got {url}"
        assert chain.chain_id == 31337 == rpc_chain_id(url)
        assert len(chain.accounts) == len(chain.private_keys) == 10
        w3 = connect(url)
        assert w3.eth.get_balance(chain.accounts[0]) > 0
    assert not _alive(pid), "anvil still running after the with-block"
    assert rpc_chain_id(url) is None, f"something still answers at {url}"


def test_anvil_stops_when_the_body_raises():
    with pytest.raises(RuntimeError, match="boom"):
        with start_anvil() as chain:
            pid = chain.process.pid
            raise RuntimeError("boom")
    assert not _alive(pid), "anvil survived an exception in the with-block"


def test_anvil_stops_on_ctrl_c(tmp_path):
    script = textwrap.dedent(
        """
        import os, signal, sys
        from vcompute.evm.chain import start_anvil
        with start_anvil() as chain:
            print(chain.process.pid, flush=True)
            os.kill(os.getpid(), signal.SIGINT)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "KeyboardInterrupt" in proc.stderr, proc.stderr[-500:]
    pid = int(proc.stdout.split()[0])
    assert not _alive(pid), f"anvil (pid {pid}) survived Ctrl-C of its parent"


def test_unreachable_chain_is_a_one_line_usage_error():
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(UsageError) as info:
        connect(url)
    assert info.value.exit_code == 2
    message = str(info.value)
    assert message.startswith(f"cannot reach a chain at {url}") and "\n" not in message, message


def test_non_http_url_is_rejected():
    with pytest.raises(UsageError, match="http"):
        connect("127.0.0.1:8545")


def test_private_key_sender_and_bad_key(anvil):
    w3 = connect(anvil.url)
    address = use_sender(w3, anvil.private_keys[1])
    assert address == anvil.accounts[1]
    tx = w3.eth.send_transaction({"to": anvil.accounts[2], "value": 1})
    assert w3.eth.wait_for_transaction_receipt(tx)["from"] == anvil.accounts[1]
    with pytest.raises(UsageError, match="not a valid"):
        use_sender(connect(anvil.url), "0x1234")


def test_hardhat_node_starts_and_stops():
    with start_hardhat() as chain:
        pid = chain.process.pid
        assert chain.chain_id == 31337
        assert len(chain.accounts) >= 1
        assert connect(chain.url).eth.block_number == 0
    assert not _alive(pid), "hardhat node still running after the with-block"


def test_cli_chain_serves_until_ctrl_c():
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "vcompute.cli", "chain", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        first = proc.stdout.readline()
        assert f"http://127.0.0.1:{port}" in first, first + proc.stderr.read() if proc.poll() is not None else first
        assert rpc_chain_id(f"http://127.0.0.1:{port}") == 31337
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0 and "chain stopped" in err, f"exit {proc.returncode}: {err}"
    assert rpc_chain_id(f"http://127.0.0.1:{port}") is None, "anvil still answers after Ctrl-C"


def test_cli_chain_port_in_use_is_exit_2(anvil):
    port = int(anvil.url.rsplit(":", 1)[1])
    proc = subprocess.run(
        [sys.executable, "-m", "vcompute.cli", "chain", "--port", str(port)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2 and "already in use" in proc.stderr, f"exit {proc.returncode}: {proc.stderr}"

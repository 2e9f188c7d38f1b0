"""The grader's end of the call protocol with a running Jupyter kernel.

For each check, the grader listens on a fresh Unix socket in a folder the kernel shares (its ``ipc`` folder in the
sandbox) and runs a silent cell, ``rnncourse.kernels.callee.serve(path)``, that connects to it. Messages are JSON,
each preceded by its length (8 bytes, big-endian): a plain stream socket costs tens of microseconds per round trip,
where Jupyter's own messages cost milliseconds, and a check makes hundreds of calls. The grader keeps its own
deadline for every answer: past it the kernel is interrupted, and a kernel that still does not answer is reported
lost (the executor then stops it).
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import stat
import time
from collections.abc import Callable
from pathlib import Path

from jupyter_core.utils import ensure_async, run_sync

from rnncourse.grading.student import KernelLost, ProtocolBroken, StudentTimedOut
from rnncourse.kernels.wire import MAX_MESSAGE_BYTES

START_LIMIT_S = 10.0  # for the serving cell to connect and start answering
GRACE_S = 5.0  # beyond a call's own limit (the kernel's alarm ends a loop first), and again after an interrupt
HEADER_BYTES = 8


class KernelChannel:
    """Requests and answers with one kernel. `interrupt()` (a coroutine function or a plain one) interrupts it;
    `socket_dir` is a folder both the grader and the kernel reach at the same path."""

    def __init__(self, client, interrupt: Callable, socket_dir: Path):
        self.kc = client
        self.interrupt = interrupt
        self.socket_dir = Path(socket_dir)
        self.msg_id: str | None = None  # of the serving cell, while it runs
        self.conn: socket.socket | None = None

    # -- the Student's interface ----------------------------------------------------------------------------------
    def request(self, message: dict, on_callback: Callable[[dict], dict], limit: float) -> dict:
        if self.conn is None:
            self._open()
        self._send(message)
        deadline = time.monotonic() + limit + GRACE_S  # for the whole call, the callbacks it makes included
        while True:
            answer = self._receive(max(deadline - time.monotonic(), 0.0))
            if "callback" not in answer:
                return answer
            self._send(on_callback(answer))

    def close(self) -> None:
        """End the serving cell and wait for its reply, so the kernel is idle again."""
        if self.conn is not None:
            try:
                self._send({"op": "end"})
            except OSError:
                pass
            self._disconnect()
        if self.msg_id is not None:
            if not self._wait_for_reply(GRACE_S):
                raise KernelLost("the kernel did not finish the grader's session")

    # -- connection -----------------------------------------------------------------------------------------------
    def _open(self) -> None:
        path = self.socket_dir / f"c{secrets.token_hex(6)}.sock"  # short: a socket's path is limited to 107 bytes
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(str(path))
            _open_to_all(path)  # the kernel's uid connects; the folder itself is the kernel's alone
            listener.listen(1)
            listener.settimeout(0.02)
            self.msg_id = self.kc.execute(
                f'__import__("rnncourse.kernels.callee", fromlist=["serve"]).serve({str(path)!r})',
                silent=True, store_history=False)
            deadline = time.monotonic() + START_LIMIT_S
            while self.conn is None:
                try:
                    self.conn, _ = listener.accept()
                except TimeoutError:
                    if self._wait_for_reply(0):
                        raise ProtocolBroken("the kernel did not start the grader's session") from None
                    if time.monotonic() > deadline:
                        raise KernelLost("the kernel did not start the grader's session in time") from None
        finally:
            listener.close()
            path.unlink(missing_ok=True)
        if not self._receive(START_LIMIT_S).get("ready"):
            raise ProtocolBroken("the kernel did not start the grader's session")

    def _disconnect(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def _wait_for_reply(self, timeout: float) -> bool:
        """Whether the serving cell's execute_reply came within `timeout` (0: is it there now)."""
        return run_sync(self._async_wait_for_reply)(timeout)

    async def _async_wait_for_reply(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.msg_id is not None:
            remaining = deadline - time.monotonic()
            if not await self.kc.shell_channel.msg_ready():
                if remaining <= 0:
                    return False
                await self.kc.shell_channel.socket.poll(timeout=min(remaining, 0.2) * 1000)
                continue
            reply = await self.kc.shell_channel.get_msg(timeout=0)
            if reply.get("parent_header", {}).get("msg_id") == self.msg_id:
                self.msg_id = None
        return True

    # -- messages -------------------------------------------------------------------------------------------------
    def _send(self, message: dict) -> None:
        data = json.dumps(message).encode()
        self.conn.sendall(len(data).to_bytes(HEADER_BYTES, "big") + data)

    def _receive(self, timeout: float) -> dict:
        """The kernel's next message; past `timeout` the kernel is interrupted once, then reported lost."""
        deadline, interrupted = time.monotonic() + timeout, False
        while True:
            try:
                size = int.from_bytes(self._read(HEADER_BYTES, deadline), "big")
                if size > MAX_MESSAGE_BYTES:  # its bytes stay unread: the session's framing is lost, so end it
                    self._disconnect()
                    raise ProtocolBroken("the kernel sent a message larger than the grader accepts")
                data = self._read(size, deadline + GRACE_S)
                break
            except TimeoutError:
                if interrupted:
                    self._disconnect()
                    raise KernelLost("the kernel did not answer the grader, even after an interrupt") from None
                run_sync(self._interrupt)()
                interrupted, deadline = True, time.monotonic() + GRACE_S
            except ConnectionError:
                data = b""
                break
        if not data:
            self._disconnect()
            if interrupted:
                raise StudentTimedOut()
            raise ProtocolBroken("the kernel ended the grader's session")
        if interrupted:  # it answered after the interrupt: the call itself was cut off
            raise StudentTimedOut()
        try:
            message = json.loads(data)
        except (ValueError, RecursionError):
            raise ProtocolBroken("the kernel sent a message that is not JSON the grader reads") from None
        if not isinstance(message, dict):
            raise ProtocolBroken("the kernel sent a message that is not a dict")
        return message

    def _read(self, size: int, deadline: float) -> bytes:
        """Exactly `size` bytes, b"" if the kernel closed the connection first."""
        chunks, got = [], 0
        while got < size:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError()
            self.conn.settimeout(remaining)
            chunk = self.conn.recv(min(size - got, 1 << 20))
            if not chunk:
                return b""
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)

    async def _interrupt(self) -> None:
        await ensure_async(self.interrupt())


def _open_to_all(path: Path) -> None:
    """chmod 666 the socket just bound at `path`, and nothing else: the folder is the kernel's, which may have put a
    symlink there in its place (a chmod by path would follow it, to a gradebook or a system file when grading as
    root). The inode is opened without following links, checked to be a socket, and changed through its descriptor."""
    fd = os.open(path, os.O_PATH | os.O_NOFOLLOW)
    try:
        if not stat.S_ISSOCK(os.fstat(fd).st_mode):
            raise ProtocolBroken("the kernel replaced the grader's socket")
        os.chmod(f"/proc/self/fd/{fd}", 0o666)
    finally:
        os.close(fd)

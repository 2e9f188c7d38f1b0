"""Hostile answers to the checks of rnn_backward, forecast, save_checkpoint and load_checkpoint: what a
student's code or file can make the grader do. In-process and fast; the grader's path is the same as autograde's
(Student over a LocalChannel encodes every message), only the kernel is this process.

The most serious class: save_checkpoint's file is opened by the grader itself. torch.load(weights_only=True) runs no
code, but it still costs what the file says (a deflated record inflates ~1000x, a dict key made of tuples that share
their halves hashes in 2**n steps), so the grader opens it in a limited child process (nb03._open_checkpoint).
"""

from __future__ import annotations

import io
import os
import struct
import time
import zipfile

import pytest
import torch

from rnncourse.grading import compare, nb01, nb03
from rnncourse.grading.student import LocalChannel, Student, StudentRaised
from rnncourse.kernels import callee, channel, wire


def as_bytes(data: bytes) -> torch.Tensor:
    return torch.frombuffer(bytearray(data), dtype=torch.uint8).clone()


def torch_file(pickled: bytes, records: dict | None = None, deflated: bool = False) -> bytes:
    """A file in torch.save's zip layout with this data.pkl and these storage records."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("archive/data.pkl", pickled)
        z.writestr("archive/byteorder", "little")
        for key, body in (records or {}).items():
            z.writestr(f"archive/data/{key}", body,
                       compress_type=zipfile.ZIP_DEFLATED if deflated else zipfile.ZIP_STORED)
        z.writestr("archive/version", "3\n")
    return out.getvalue()


def hash_bomb(n: int) -> bytes:
    """A pickle of {t_n: 1} with t_0 = () and t_{k+1} = (t_k, t_k): n memo lookups, 2**n steps to hash the key."""
    p = b"\x80\x02)r" + struct.pack("<I", 0)
    for k in range(n):
        p += b"j" + struct.pack("<I", k) + b"j" + struct.pack("<I", k) + b"\x86r" + struct.pack("<I", k + 1)
    return p + b"}j" + struct.pack("<I", n) + b"K\x01s."


def tensor_pickle(numel: int, size: tuple, stride: tuple) -> bytes:
    """A pickle of {"w": tensor} whose storage claims `numel` float32s, viewed with `size` and `stride`."""
    import collections
    import pickle

    class Storage:
        pass

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            return ("storage", torch.FloatStorage, "0", "cpu", numel) if isinstance(obj, Storage) else None

    class Rebuilt:
        def __reduce__(self):
            return torch._utils._rebuild_tensor_v2, (Storage(), 0, size, stride, False, collections.OrderedDict())

    out = io.BytesIO()
    Pickler(out, protocol=2).dump({"w": Rebuilt()})
    return out.getvalue()


@pytest.fixture
def quick_reads(monkeypatch):
    """A second for a checkpoint read, and 64 MiB of memory beyond the grader's: the defences, sooner."""
    monkeypatch.setattr(nb03, "CHECKPOINT_READ_LIMIT_S", 1.0)
    monkeypatch.setattr(nb03, "CHECKPOINT_READ_MEMORY_BYTES", 64 << 20)


# -- the grader opens a student's checkpoint ------------------------------------------------------------------------
def test_a_real_checkpoint_comes_back_as_it_was_saved():
    saved = {"config": {"input_size": 2, "hidden_size": 3, "output_size": 2, "num_layers": 1, "cell": "gru"},
             "state_dict": torch.nn.GRU(2, 3).state_dict()}
    got = nb03._open_checkpoint(nb03._torch_bytes(saved))
    assert got["config"] == saved["config"]
    assert list(got["state_dict"]) == list(saved["state_dict"])
    assert all(torch.equal(got["state_dict"][k], v) for k, v in saved["state_dict"].items())


@pytest.mark.parametrize("data, why", [
    (nb03._torch_bytes({"model": torch.nn.Linear(2, 2)}), "code"),  # only weights_only=False could load it
    (as_bytes(b"not a zip file"), "format"),
    (nb03._torch_bytes({"config": {1, 2}}), "data"),  # a set: not plain data
    (nb03._torch_bytes({"w": torch.zeros(2, dtype=torch.complex64)}), "data"),
], ids=["pickled-object", "garbage", "a-set", "complex-tensor"])
def test_what_is_not_a_plain_checkpoint_is_named(data, why):
    with pytest.raises(nb03.CheckpointUnreadable) as refused:
        nb03._open_checkpoint(data)
    assert refused.value.why == why


def test_a_hash_bomb_costs_the_grader_its_time_limit_only(quick_reads):
    started = time.monotonic()
    with pytest.raises(nb03.CheckpointUnreadable) as refused:
        nb03._open_checkpoint(as_bytes(torch_file(hash_bomb(60))))  # in the grader itself: 2**60 steps
    assert refused.value.why == "cost"
    assert time.monotonic() - started < 3  # the read's limit, 1 s here, and a fork


def test_a_zip_bomb_costs_the_grader_no_memory(quick_reads):
    numel = 32 << 20  # 128 MiB of zeros in a file of 130 kB
    data = torch_file(tensor_pickle(numel, (numel,), (1,)), {"0": bytes(4 * numel)}, deflated=True)
    assert len(data) < 1 << 20
    with pytest.raises(nb03.CheckpointUnreadable) as refused:
        nb03._open_checkpoint(as_bytes(data))
    assert refused.value.why == "cost"


def test_a_tensor_that_claims_a_huge_shape_is_refused_unmaterialised():
    data = torch_file(tensor_pickle(1, (10 ** 12,), (0,)), {"0": bytes(4)})
    with pytest.raises(nb03.CheckpointUnreadable) as refused:
        nb03._open_checkpoint(as_bytes(data))
    assert refused.value.why == "large"


def test_save_checkpoint_writing_a_bomb_fails_its_own_check_quickly(tmp_path, quick_reads):
    bomb = torch_file(hash_bomb(60))

    def save_checkpoint(model, path):
        with open(path, "wb") as f:
            f.write(bomb)
    started = time.monotonic()
    with pytest.raises(compare.HiddenTestFailure) as failed:
        nb03.check_save_checkpoint({"save_checkpoint": save_checkpoint})  # on probes: no SequencePredictor here
    assert "within the grader's limits" in str(failed.value)
    assert "(1 of 1 hidden cases failed)" in str(failed.value)  # one such file is enough: the check stops there
    assert time.monotonic() - started < 15  # a read of 1 s, and the probe models (seconds on a busy machine)


# -- the kernel reads the file it was pointed at -------------------------------------------------------------------
@pytest.mark.parametrize("make, says", [
    (lambda p: os.mkfifo(p), "other than a file"),
    (lambda p: os.symlink("/dev/zero", p), "other than a file"),
    (lambda p: os.mkdir(p), "other than a file"),
    (lambda p: open(p, "wb").truncate(wire.MAX_TENSOR_BYTES + 1), "larger than the grader reads"),
    (lambda p: None, "wrote no file"),
], ids=["fifo", "dev-zero", "directory", "over-16-MiB", "nothing"])
def test_save_checkpoint_leaving_no_checkpoint_file_is_told_so_at_once(make, says):
    def save_checkpoint(model, path):
        make(path)
    started = time.monotonic()
    with pytest.raises(compare.HiddenTestFailure) as failed:
        nb03.check_save_checkpoint({"save_checkpoint": save_checkpoint})
    assert says in str(failed.value)
    assert time.monotonic() - started < 15  # a FIFO or /dev/zero used to block the read for its 30 s, each case


def test_read_bytes_reads_a_regular_file(tmp_path):
    (tmp_path / "f").write_bytes(b"\x01\x02")
    assert callee.read_bytes(str(tmp_path / "f")).tolist() == [1, 2]
    (tmp_path / "empty").write_bytes(b"")
    assert callee.read_bytes(str(tmp_path / "empty")).numel() == 0


# -- what student code returns or raises ---------------------------------------------------------------------------
def student_with(**functions) -> Student:
    return Student(LocalChannel(dict(functions)))


@pytest.mark.parametrize("error", [SystemExit, KeyboardInterrupt, GeneratorExit])
def test_a_base_exception_in_student_code_is_its_error_not_the_sessions(error):
    def f():
        raise error("stop")
    with pytest.raises(StudentRaised) as raised:
        student_with(f=f)["f"]()
    assert raised.value.type_name == error.__name__


def test_a_huge_expanded_result_is_refused_in_the_kernel_before_it_is_materialised():
    def f():
        return torch.zeros(1).expand(10 ** 12)
    with pytest.raises(StudentRaised) as raised:
        student_with(f=f)["f"]()
    assert "MiB" in raised.value.message


def test_an_answer_too_long_for_the_grader_is_refused_in_the_kernel():
    assert wire.MAX_MESSAGE_BYTES == channel.MAX_MESSAGE_BYTES

    def f():  # three tensors, each within the wire's limit, together beyond the grader's message limit
        return [torch.zeros(wire.MAX_TENSOR_BYTES // 4) for _ in range(3)]
    with pytest.raises(StudentRaised) as raised:
        student_with(f=f)["f"]()
    assert raised.value.type_name == "WireError" and "larger than" in raised.value.message


def test_rnn_backward_returning_huge_views_or_exiting_fails_its_own_check():
    def huge(xs, h0, W, b, dhs):
        big = torch.zeros(1, dtype=xs.dtype).expand(10 ** 10)
        return big, big, big, big

    def leaves(xs, h0, W, b, dhs):
        raise SystemExit("bye")
    for fn, says in ((huge, "cannot be sent to the grader"), (leaves, "raised SystemExit")):
        with pytest.raises(compare.HiddenTestFailure) as failed:
            nb01.check_rnn_backward({"rnn_backward": fn})
        assert says in str(failed.value)


def test_the_grader_opens_its_socket_to_the_kernel_and_nothing_a_kernel_put_in_its_place(tmp_path):
    """The grader binds its socket in the kernel's folder and opens it to the kernel's uid (chmod 666). A kernel that
    swaps it for a symlink (to the gradebook, or a system file when grading as root) must not get the target opened."""
    import socket

    target = tmp_path / "gradebook.db"
    target.write_text("grades")
    os.chmod(target, 0o600)
    bound = tmp_path / "c1.sock"
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(bound))
        channel._open_to_all(bound)
    assert bound.stat().st_mode & 0o777 == 0o666
    swapped = tmp_path / "c2.sock"
    swapped.symlink_to(target)
    with pytest.raises(channel.ProtocolBroken, match="replaced the grader's socket"):
        channel._open_to_all(swapped)
    assert target.stat().st_mode & 0o777 == 0o600

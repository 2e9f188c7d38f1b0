"""The kernel "process" the executor sees when kernels are forked: ``python -I -S bridge.py SOCKET``, outside the
sandbox, with the kernel's start request on stdin. It hands the request and its stdio to the zygote, waits for the
kernel to end, and ends the same way (its exit status or signal); killing it kills the kernel."""

import json, os, signal, socket, sys
request = sys.stdin.buffer.read()
null = os.open(os.devnull, os.O_RDONLY)
server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
server.connect(sys.argv[1])
socket.send_fds(server, [request + b"\n"], [null, 1, 2])
os.close(null)
answer = b""
while not answer.endswith(b"\n"):
    chunk = server.recv(4096)
    if not chunk:
        sys.exit(70)
    answer += chunk
status = json.loads(answer)["status"]
if os.WIFSIGNALED(status):
    signal.signal(os.WTERMSIG(status), signal.SIG_DFL)
    os.kill(os.getpid(), os.WTERMSIG(status))
sys.exit(os.waitstatus_to_exitcode(status))

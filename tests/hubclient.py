"""A hub user as a program sees one: log in with a password through the hub (PAM), start their server, and run code
in a kernel of that server through the proxy, exactly where a student's notebook or terminal would run it."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import httpx
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

SERVER_START_S = 180  # a busy 2-core machine starting JupyterLab


class HubUser:
    def __init__(self, base: str, name: str, password: str):
        self.base, self.name, self.password = base.rstrip("/"), name, password
        self.kernel_id = None
        self.token = self.login()

    def login(self) -> str:
        """Log in on the hub's login page (PAM checks the password; the hub learns the user), then ask for an API
        token with the same password."""
        with httpx.Client(base_url=self.base, timeout=60) as browser:
            browser.get("/hub/login").raise_for_status()
            form = {"username": self.name, "password": self.password, "_xsrf": browser.cookies.get("_xsrf", "")}
            response = browser.post("/hub/login?next=", data=form)
            assert response.status_code == 302, f"login of {self.name} refused ({response.status_code})"
        response = httpx.post(f"{self.base}/hub/api/users/{self.name}/tokens", timeout=60,
                              json={"auth": {"username": self.name, "password": self.password},
                                    "note": "hub tests", "expires_in": 3600})
        response.raise_for_status()
        return response.json()["token"]

    def api(self, method: str, path: str, **kwargs) -> httpx.Response:
        return httpx.request(method, f"{self.base}{path}", headers={"Authorization": f"token {self.token}"},
                             timeout=120, **kwargs)

    def start_server(self) -> None:
        """Start this user's JupyterLab (if not running) and wait until the hub says it is ready."""
        if not self.api("GET", f"/hub/api/users/{self.name}").json().get("servers", {}).get("", {}).get("ready"):
            response = self.api("POST", f"/hub/api/users/{self.name}/server")
            assert response.status_code in (201, 202, 400), response.text  # 400: already starting
        deadline = time.monotonic() + SERVER_START_S
        while not self.api("GET", f"/hub/api/users/{self.name}").json().get("servers", {}).get("", {}).get("ready"):
            assert time.monotonic() < deadline, f"{self.name}'s server did not start"
            time.sleep(0.5)

    def run_python(self, code: str, timeout_s: float = 600) -> str:
        """Run `code` in this user's kernel (one per user, started on first use, as a notebook's); returns what it
        printed (stdout and stderr), or raises AssertionError with the traceback if it raised."""
        if self.kernel_id is None:
            self.kernel_id = self.api("POST", f"/user/{self.name}/api/kernels", json={"name": "python3"}).json()["id"]
        return asyncio.run(self._execute(self.kernel_id, code, timeout_s))

    async def _execute(self, kernel_id: str, code: str, timeout_s: float) -> str:
        url = f"{self.base.replace('http', 'ws', 1)}/user/{self.name}/api/kernels/{kernel_id}/channels"
        request = HTTPRequest(url, headers={"Authorization": f"token {self.token}"})
        connection = await asyncio.wait_for(websocket_connect(request), timeout_s)
        msg_id = uuid.uuid4().hex
        connection.write_message(json.dumps({
            "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": self.name,
                       "session": uuid.uuid4().hex, "version": "5.3"},
            "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
            "content": {"code": code, "silent": False, "store_history": False, "user_expressions": {},
                        "allow_stdin": False, "stop_on_error": True}}))
        printed, error = [], None
        try:
            while True:
                raw = await asyncio.wait_for(connection.read_message(), timeout_s)
                assert raw is not None, "the kernel's websocket closed"
                message = json.loads(raw)
                if message.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                kind, content = message["msg_type"], message["content"]
                if kind == "stream":
                    printed.append(content["text"])
                elif kind == "error":
                    error = "\n".join(content["traceback"])
                elif kind == "status" and content["execution_state"] == "idle":
                    break
        finally:
            connection.close()
        assert error is None, f"code run as {self.name} raised:\n{error}"
        return "".join(printed)

    def run_shell(self, command: str) -> tuple[int, str]:
        """A shell command from this user's kernel (as from their terminal): (exit status, stdout and stderr)."""
        out = self.run_python("import subprocess, json\n"
                              f"done = subprocess.run({command!r}, shell=True, capture_output=True, text=True)\n"
                              "print(json.dumps([done.returncode, done.stdout + done.stderr]))")
        status, text = json.loads(out.strip().splitlines()[-1])
        return status, text

"""The hub's committed configuration, read as JupyterHub and npm read it (no hub started: test_hub.py does that)."""

from __future__ import annotations

import json
import os

import pytest
from traitlets.config import PyFileConfigLoader

from rnncourse.course import course_config, repo_root
from rnncourse.hub import envconfig, layout


def hub_config():
    return PyFileConfigLoader("jupyterhub_config.py", path=str(repo_root())).load_config()


def test_the_hub_listens_on_loopback_with_pam_and_local_accounts():
    config = hub_config()
    assert config.JupyterHub.ip == "127.0.0.1" and config.JupyterHub.port == layout.port()
    assert config.JupyterHub.authenticator_class == "pam"
    assert config.PAMAuthenticator.allowed_groups == {layout.STUDENT_GROUP, layout.STAFF_GROUP}
    assert config.Authenticator.admin_users == set()
    assert config.JupyterHub.spawner_class == "localprocess"
    assert config.Spawner.cmd == [str(layout.env() / "bin" / "jupyterhub-singleuser")]
    # Nothing of root's environment reaches a user's server but the locale.
    assert config.Spawner.env_keep == ["LANG", "LC_ALL"]
    assert config.Spawner.environment[layout.EXCHANGE_VARIABLE] == str(layout.exchange())
    # The hub's state is kept where only root reads it, and users' servers outlive a hub restart.
    assert str(layout.state()) in config.JupyterHub.db_url
    assert config.JupyterHub.cleanup_servers is False
    # ... which is safe only because servers trust a hub by its certificate, not by its port.
    assert config.JupyterHub.internal_ssl is True
    assert config.ConfigurableHTTPProxy.api_url.startswith("https://127.0.0.1:")
    assert str(layout.state()) in config.JupyterHub.internal_certs_location


def test_the_proxy_is_the_pinned_npm_package():
    package = json.loads((repo_root() / "package.json").read_text())
    lock = json.loads((repo_root() / "package-lock.json").read_text())
    pinned = package["dependencies"]["configurable-http-proxy"]
    assert pinned[0].isdigit(), "an exact version, not a range"
    assert lock["packages"]["node_modules/configurable-http-proxy"]["version"] == pinned
    assert hub_config().ConfigurableHTTPProxy.command == [
        str(repo_root() / "node_modules" / ".bin" / "configurable-http-proxy")]


def test_every_account_sees_the_course_and_students_lack_the_instructors_tools():
    assert course_config(repo_root()).CourseDirectory.course_id == layout.COURSE_ID
    text = envconfig.nbgrader_config()
    assert repr(layout.COURSE_ID) in text and layout.EXCHANGE_VARIABLE in text and "PrivateSubmit" in text
    server, lab = envconfig.extension_switches(enabled=False)
    assert server["ServerApp"]["jpserver_extensions"] == {"nbgrader.server_extensions.formgrader": False}
    assert lab["disabledExtensions"]["@jupyter/nbgrader:formgrader"] is True
    assert lab["disabledExtensions"]["@jupyter/nbgrader:create-assignment"] is True
    server, lab = envconfig.extension_switches(enabled=True)
    assert lab["disabledExtensions"]["@jupyter/nbgrader:formgrader"] is False


def test_the_collect_that_trusts_the_filesystem_is_configured():
    assert course_config(repo_root()).ExchangeFactory.collect == "rnncourse.trustedcollect.TrustedCollect"


def test_the_demo_roster_has_the_columns_hub_users_and_canvas_read():
    from rnncourse.hub.accounts import read_roster

    rows = read_roster(repo_root() / "roster.csv")
    assert list(rows[0]) == ["id", "first_name", "last_name", "email", "lms_user_id", "sis_user_id",
                             "sis_login_id", "section"]
    assert len({row["id"] for row in rows}) == len(rows) == 4


def test_a_roster_id_that_cannot_be_an_account_is_refused(tmp_path):
    from rnncourse.hub.accounts import RosterError, read_roster

    bad = tmp_path / "roster.csv"
    bad.write_text("id,first_name\nRobert'); DROP,x\n../etc,y\n")
    with pytest.raises(RosterError, match="not usable as account names"):
        read_roster(bad)


def test_formgrader_strips_a_students_scripts(tmp_path):
    """The instructor's nbgrader settings make the HTML exporter (Formgrader's) drop a student's script and event
    handlers: all servers share the hub's address, so a script in a submission would run as the instructor."""
    import nbformat
    from nbconvert import HTMLExporter

    from rnncourse.hub.accounts import instructor_nbgrader_config

    (tmp_path / "nbgrader_config.py").write_text(instructor_nbgrader_config(tmp_path / "course"))
    config = PyFileConfigLoader("nbgrader_config.py", path=str(tmp_path)).load_config()
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(
        '<img src=x onerror="fetch(\'/steal\')"> <script>alert(1)</script> **bold**')])
    html, _ = HTMLExporter(config=config).from_notebook_node(nb)
    assert "<img src=x" not in html and "<script>alert(1)" not in html  # shown as text, never as a tag
    assert "<strong>bold</strong>" in html


def test_the_grading_service_runs_as_the_instructor_and_dies_with_this_hub(monkeypatch):
    monkeypatch.setenv("SECTION09_INSTRUCTOR", "root")  # an account that exists on every machine
    [service] = hub_config().JupyterHub.services
    course = layout.course_dir("root")
    assert service["name"] == "section09-grader" and service["user"] == "root"
    assert service["command"] == [str(layout.env() / "bin" / "python"), "-m", "rnncourse.onsubmit", "--course-dir",
                                  str(course)]
    assert service["cwd"] == str(course) and service["environment"]["PYTHONPATH"] == str(course)
    assert service["environment"]["SECTION09_HUB_PID"] == str(os.getpid())  # the process that read the config
    assert "api_token" not in service and not service.get("admin")
    monkeypatch.setenv("SECTION09_INSTRUCTOR", "no-such-account-s9")
    assert hub_config().JupyterHub.services == []  # `make hub` refuses to start without the instructor anyway

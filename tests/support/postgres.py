"""A throwaway PostgreSQL server for the test suite: initdb into a temp dir, serve on loopback, delete.

When the tests run as root, initdb and pg_ctl run as the ``postgres`` user (PostgreSQL refuses to run
as root). The switch is done by ``subprocess`` itself (``user=``/``group=``/``extra_groups=``), so it
needs neither ``runuser``/``su`` nor PAM nor shell quoting.
"""

from __future__ import annotations

import atexit
import os
import pathlib
import pwd
import re
import shutil
import socket
import stat
import subprocess
import tempfile
from typing import Any

import psycopg2
from psycopg2 import sql

PG_USER = "postgres"  # the OS account used when running as root, and the database superuser
_START_ATTEMPTS = 3  # the free port can be taken between probing it and the server binding it


def find_pg_bin() -> pathlib.Path | None:
    """Directory of the PostgreSQL server binaries.

    ``ENGINE_TEST_PG_BIN`` wins if set; else the highest version under ``/usr/lib/postgresql/*/bin``;
    else the directory of ``pg_ctl`` on ``PATH``; else None.
    """
    override = os.environ.get("ENGINE_TEST_PG_BIN")
    if override:
        return pathlib.Path(override)

    def version(path: pathlib.Path) -> tuple[int, ...]:
        return tuple(int(part) for part in re.findall(r"\d+", path.parent.name))

    installed = [p for p in pathlib.Path("/usr/lib/postgresql").glob("*/bin") if (p / "pg_ctl").is_file()]
    if installed:
        return max(installed, key=version)
    pg_ctl = shutil.which("pg_ctl")
    return pathlib.Path(pg_ctl).resolve().parent if pg_ctl else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _traversable_by(path: pathlib.Path, account: pwd.struct_passwd) -> bool:
    """Whether `account` can reach `path` (every ancestor searchable, `path` itself writable)."""
    groups = {account.pw_gid, *os.getgrouplist(account.pw_name, account.pw_gid)}
    for directory in [path, *path.parents]:
        info = directory.stat()
        needed = stat.S_IXUSR | (stat.S_IWUSR if directory == path else 0)
        if info.st_uid == account.pw_uid:
            granted = info.st_mode & (stat.S_IRWXU)
        elif info.st_gid in groups:
            granted = (info.st_mode & stat.S_IRWXG) << 3
        else:
            granted = (info.st_mode & stat.S_IRWXO) << 6
        if granted & needed != needed:
            return False
    return True


class ThrowawayPostgres:
    """One disposable PostgreSQL cluster: trust auth, no fsync, loopback TCP on a free port.

    Everything (data dir, socket dir, log) lives in one fresh directory created under `base_dir`
    (default: the system temp dir) and removed by stop(). When running as root and `base_dir` is not
    reachable by the ``postgres`` user (e.g. pytest's 0700 tmp dirs), the system temp dir is used.
    """

    def __init__(self, base_dir: pathlib.Path | None = None) -> None:
        self.base_dir = base_dir
        self.bin_dir = find_pg_bin()
        self.superuser = PG_USER
        self.port: int | None = None
        self.workdir: pathlib.Path | None = None
        self._as_root = os.geteuid() == 0

    @property
    def available(self) -> bool:
        """The server binaries were found (and, when running as root, the postgres account exists)."""
        if self.bin_dir is None or not all(
            os.access(self.bin_dir / tool, os.X_OK) for tool in ("initdb", "pg_ctl", "postgres")
        ):
            return False
        return not self._as_root or self._account() is not None

    @property
    def data_dir(self) -> pathlib.Path | None:
        """The cluster's data directory while started, else None."""
        return self.workdir / "data" if self.workdir else None

    @property
    def log_file(self) -> pathlib.Path | None:
        """The server log while started, else None."""
        return self.workdir / "server.log" if self.workdir else None

    def start(self) -> None:
        """initdb a fresh cluster and start it on a free 127.0.0.1 port; does nothing if already started."""
        if self.port is not None:
            return
        if not self.available:
            raise RuntimeError(f"PostgreSQL binaries not usable (bin dir: {self.bin_dir})")
        self.workdir = pathlib.Path(tempfile.mkdtemp(prefix="engine-pg-", dir=self._parent_dir()))
        atexit.register(self.stop)
        try:
            self._prepare_workdir()
            self._run(
                "initdb", "-D", str(self.data_dir), "-A", "trust", "-U", self.superuser,
                "--no-sync", "-E", "UTF8", "--locale=C",
            )  # fmt: skip
            for attempt in range(1, _START_ATTEMPTS + 1):
                port = _free_port()
                options = (
                    f"-F -c listen_addresses=127.0.0.1 -p {port} -k {self.workdir / 'run'}"
                    " -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
                )
                result = self._run(
                    "pg_ctl", "start", "-w", "-t", "60", "-D", str(self.data_dir),
                    "-l", str(self.log_file), "-o", options, check=False,
                )  # fmt: skip
                if result.returncode == 0:
                    self.port = port
                    return
                log = self._log_tail()
                if attempt == _START_ATTEMPTS or "already in use" not in log:
                    raise RuntimeError(
                        f"PostgreSQL failed to start (pg_ctl exit {result.returncode}):\n"
                        f"{result.stdout}{result.stderr}\n--- server log tail ---\n{log}"
                    )
        except BaseException:
            self.stop()
            raise

    def create_database(self, name: str) -> str:
        """CREATE DATABASE `name` (starting the server if needed); return its SQLAlchemy URL."""
        self.start()
        connection = psycopg2.connect(
            host="127.0.0.1", port=self.port, user=self.superuser, dbname="postgres", connect_timeout=10
        )
        try:
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        finally:
            connection.close()
        return f"postgresql+psycopg2://{self.superuser}@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        """Fast shutdown and delete the data dir; safe to call twice or without start()."""
        workdir, self.workdir, self.port = self.workdir, None, None
        if workdir is None:
            return
        atexit.unregister(self.stop)
        data_dir = workdir / "data"
        try:
            if (data_dir / "postmaster.pid").exists():
                self._run(
                    "pg_ctl", "stop", "-m", "fast", "-w", "-t", "60", "-D", str(data_dir),
                    check=False, cwd=workdir,
                )  # fmt: skip
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    def _account(self) -> pwd.struct_passwd | None:
        try:
            return pwd.getpwnam(PG_USER)
        except KeyError:
            return None

    def _parent_dir(self) -> pathlib.Path:
        candidates = [self.base_dir, pathlib.Path(tempfile.gettempdir())]
        account = self._account() if self._as_root else None
        for candidate in candidates:
            if candidate is not None:
                candidate.mkdir(parents=True, exist_ok=True)
                if account is None or _traversable_by(candidate.resolve(), account):
                    return candidate
        raise RuntimeError(f"no directory reachable by the {PG_USER!r} user among {candidates}")

    def _prepare_workdir(self) -> None:
        assert self.workdir is not None
        (self.workdir / "run").mkdir()
        account = self._account() if self._as_root else None
        if account is not None:
            for path in (self.workdir, self.workdir / "run"):
                os.chown(path, account.pw_uid, account.pw_gid)

    def _run(
        self, tool: str, *args: str, check: bool = True, cwd: pathlib.Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run a PostgreSQL binary in the work dir (reachable by postgres), as postgres when we are root."""
        assert self.bin_dir is not None
        kwargs: dict[str, Any] = {}
        account = self._account() if self._as_root else None
        if account is not None:
            kwargs = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
            kwargs["env"] = {**os.environ, "HOME": account.pw_dir, "USER": PG_USER, "LOGNAME": PG_USER}
        result = subprocess.run(
            [str(self.bin_dir / tool), *args],
            cwd=cwd or self.workdir,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            **kwargs,
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"{tool} failed (exit {result.returncode}):\n{result.stdout}{result.stderr}")
        return result

    def _log_tail(self, lines: int = 30) -> str:
        if self.log_file is None or not self.log_file.exists():
            return "(no server log)"
        return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])

"""The fork server ignores the signals a unit could send its parent; what it forks gets
the defaults back."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

from torchvet.engine.executor import GUARD_MODULE
from torchvet.engine.forkserver_preload import GUARDED


def test_importing_it_elsewhere_changes_nothing() -> None:
    # in a fresh interpreter: an xdist worker is itself a `python -c` process that may
    # have imported multiprocessing.forkserver, which is what the fork server looks like
    probe = ("import signal; before = signal.getsignal(signal.SIGTERM); "
             "import torchvet.engine.forkserver_preload as m; "
             "print(m.in_fork_server(), signal.getsignal(signal.SIGTERM) == before)")
    found = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                           check=True)
    assert found.stdout.split() == ["False", "True"]
    assert signal.SIGTERM in GUARDED and signal.SIGHUP in GUARDED


FORK_SERVER = textwrap.dedent(f"""
    import multiprocessing, multiprocessing.forkserver as forkserver, os, signal, time
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload([{GUARD_MODULE!r}])
    with ctx.Pool(1) as pool:  # once it served, its preload ran
        pool.apply(os.getpid)
    server = forkserver._forkserver._forkserver_pid
    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1):
        os.kill(server, signum)
    time.sleep(0.5)
    with ctx.Pool(1) as pool:  # the same fork server still serves; its child has defaults
        print(int(pool.apply(signal.getsignal, (signal.SIGTERM,))))
    print(forkserver._forkserver._forkserver_pid == server,
          os.waitpid(server, os.WNOHANG) == (0, 0))
""")


def test_a_signalled_fork_server_lives_on_and_its_children_get_defaults() -> None:
    result = subprocess.run([sys.executable, "-c", FORK_SERVER], capture_output=True,
                            text=True, timeout=120, cwd=os.getcwd())
    assert result.stdout.split() == [str(int(signal.SIG_DFL)), "True", "True"], result.stderr

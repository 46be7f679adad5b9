"""Who may stop a run: signals are judged by their sender while units run.

A unit runs as the same user as the run process, so it can signal it: one ``os.kill(
os.getppid() ...)`` used to turn its own failure into ``cancelled``. While units run, the
run process blocks the terminating signals in every thread and a thread reads them with
``sigtimedwait``, which says who sent each one:

- the kernel (Ctrl-C or Ctrl-\\ at a terminal, a hang-up): honoured;
- ``kill``/``tgkill`` from a process outside the run (the CI runner, ``timeout``,
  ``docker stop`` forwarded by the action's entrypoint): honoured; when the run was told
  who its canceller is (``$TORCHVET_CANCEL_FROM_PID``, set by the action), only that one;
- from a process of the run's units, or with a sender the kernel did not vouch for
  (``sigqueue`` lets a process claim any pid): ignored, and the unit that sent it is
  stopped and reported as ``error`` naming the signal.

An honoured signal interrupts the main thread like Ctrl-C always did (KeyboardInterrupt:
the reports are written with what finished, the rest is ``cancelled``).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import TextIO

from .reaper import Reaper

CANCEL_FROM_ENV = "TORCHVET_CANCEL_FROM_PID"  # the only process that may stop the run
SI_USER, SI_KERNEL, SI_TKILL = 0, 0x80, -6  # the si_code of kill(), the kernel, tgkill()
WAKE = signal.SIGUSR1  # how the reading thread interrupts the main thread

_NAMES = ("SIGHUP", "SIGINT", "SIGQUIT", "SIGUSR2", "SIGALRM", "SIGTERM", "SIGVTALRM",
          "SIGPROF", "SIGIO", "SIGPWR", "SIGXCPU", "SIGTSTP", "SIGTTIN", "SIGTTOU")
# every asynchronous signal whose default action ends or stops a process
JUDGED = frozenset({getattr(signal, n) for n in _NAMES if hasattr(signal, n)}
                   | ({*range(signal.SIGRTMIN, signal.SIGRTMAX + 1)}
                      if hasattr(signal, "SIGRTMIN") else set()))


def honoured(code: int, sender: int, *, trusted: int | None,
             is_ours: Callable[[int], bool]) -> bool:
    """Whether a signal with ``si_code`` ``code`` from ``sender`` may stop the run."""
    if code == SI_KERNEL:
        return True
    if code not in (SI_USER, SI_TKILL):
        return False  # sigqueue and friends: the sender pid is whatever the caller wrote
    if trusted is not None:
        return sender == trusted
    return not is_ours(sender)


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def trusted_canceller(environ: dict[str, str] | None = None) -> int | None:
    value = (os.environ if environ is None else environ).get(CANCEL_FROM_ENV, "")
    return int(value) if value.isdigit() else None


def available() -> bool:
    return (hasattr(signal, "sigtimedwait") and hasattr(signal, "pthread_sigmask")
            and threading.current_thread() is threading.main_thread())


class SignalJudge:
    """While active (a ``with`` block in the main thread), signals in :data:`JUDGED` are
    read by a thread and either honoured (KeyboardInterrupt in the main thread while
    :attr:`armed`) or ignored and blamed on the unit that sent them."""

    def __init__(self, reaper: Reaper, *, trusted: int | None = None,
                 stream: TextIO | None = None) -> None:
        self.reaper = reaper
        self.trusted = trusted
        self.stream = stream or sys.stderr
        self.armed = True
        self.honoured: int | None = None  # the signal that stopped the run
        self.ignored: list[str] = []
        self._raised = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._mask: set[int | signal.Signals] | None = None
        self._wake_handler: object = None

    def __enter__(self) -> SignalJudge:
        if not available():
            return self
        self._mask = signal.pthread_sigmask(signal.SIG_BLOCK, {*JUDGED, WAKE})
        self._wake_handler = signal.signal(WAKE, self._on_wake)
        self._thread = threading.Thread(target=self._read, name="torchvet-signals",
                                        daemon=True)
        self._thread.start()  # it inherits the mask: JUDGED and WAKE blocked
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {WAKE})  # the main thread takes WAKE
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._thread is None or self._mask is None:
            return
        self._stop.set()
        self._thread.join()
        signal.pthread_sigmask(signal.SIG_SETMASK, self._mask)
        signal.signal(WAKE, self._wake_handler)  # type: ignore[arg-type]

    def _read(self) -> None:
        while not self._stop.is_set():
            info = signal.sigtimedwait(JUDGED, 0.2)
            if info is not None:
                self.judge(info.si_signo, info.si_code, info.si_pid)

    def judge(self, signum: int, code: int, sender: int) -> None:
        name = signal_name(signum)
        if honoured(code, sender, trusted=self.trusted, is_ours=self.reaper.is_ours):
            if self.honoured is None:
                self.honoured = signum
            signal.pthread_kill(threading.main_thread().ident or 0, WAKE)
            return
        reason = (f"sent {name} to torchvet (process {os.getpid()}); a unit cannot stop "
                  "the run, so the unit was stopped")
        unit = self.reaper.blame(sender, reason)
        note = (f"torchvet: ignored {name} from process {sender}"
                + (f" of the unit in worker {unit}" if unit is not None else
                   " (not one torchvet may take orders from)"))
        self.ignored.append(note)
        self.stream.write(note + "\n")
        self.stream.flush()

    def _on_wake(self, signum: int, frame: FrameType | None) -> None:
        if self.honoured is not None and self.armed and not self._raised:
            self._raised = True  # once: a second Ctrl-C must not cut the report writing
            raise KeyboardInterrupt

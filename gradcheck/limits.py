"""Containing a case: a time limit, and a process of its own.

A case runs someone's code: a forward that never returns, a backward that calls ``os._exit``
or segfaults. :func:`time_limit` interrupts a case past its limit and says where it was (the
innermost frame of the user's code, and the layer when that frame is a method);
:func:`run_isolated` runs one case in a child process, so that a crash of any kind becomes that
case's ERROR and the run goes on.

The time limit uses ``SIGALRM`` in the main thread (POSIX only). On Windows only the isolated
run has a limit: the child process is stopped, and where it was is not known.
"""

from __future__ import annotations

import multiprocessing
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

__all__ = [
    "CAN_INTERRUPT",
    "CaseTimeout",
    "is_user_code",
    "run_isolated",
    "time_limit",
    "where",
    "where_in_traceback",
]

#: True where :func:`time_limit` can interrupt running code (POSIX: ``SIGALRM``).
CAN_INTERRUPT = hasattr(signal, "setitimer")

#: Top-level packages whose frames are never "where the user's code was".
_LIBRARIES = frozenset(
    {"gradcheck", "hypothesis", "numpy", "_pytest", "pytest", "pluggy", "pytest_timeout"}
    | {"_hypothesis_pytestplugin", "xdist", "execnet"}
)

_OWN_FILES = str(Path(__file__).resolve().parent)

#: Seconds an isolated case may overrun its limit before its process is killed (its own alarm
#: normally ends it first, with the place it was at; a C call that never returns does not).
_GRACE = 5.0


class CaseTimeout(BaseException):
    """A case ran past its time limit. A BaseException, so that neither the user's
    ``except Exception`` nor hypothesis (which would shrink and run it again) catches it."""

    def __init__(self, seconds: float | None, place: str | None = None) -> None:
        super().__init__(seconds, place)
        self.seconds, self.place = seconds, place

    def __str__(self) -> str:
        after = "timed out" if self.seconds is None else f"timed out after {self.seconds:g} s"
        return f"{after} {self.place}" if self.place else after


def is_user_code(frame: FrameType) -> bool:
    """Whether ``frame`` runs the user's code: not gradcheck's, a library's or the stdlib's."""
    module = str(frame.f_globals.get("__name__") or "")
    top = module.partition(".")[0]
    if top in _LIBRARIES or top in sys.stdlib_module_names:
        return False
    # hypothesis runs some functions through wrappers compiled under their own file names
    return not frame.f_code.co_filename.startswith(_OWN_FILES)


def _describe(frame: FrameType, line: int) -> str:
    code = frame.f_code
    owner = frame.f_locals.get("self") if "self" in code.co_varnames else None
    name = code.co_name if owner is None else f"{type(owner).__name__}.{code.co_name}"
    return f"{name} ({Path(code.co_filename).name}:{line})"


def where(frames: Iterable[tuple[FrameType, int]]) -> str | None:
    """Where the user's code was, from ``(frame, line)`` pairs innermost first:
    ``in Hang.forward (my_layers.py:12)``, or ``in helper (my_layers.py:5), called from
    Model.backward (my_layers.py:30)`` when the innermost user frame is no forward/backward.
    None when no frame is the user's."""
    user = [(f, line) for f, line in frames if is_user_code(f)]
    if not user:
        return None
    frame, line = user[0]
    text = f"in {_describe(frame, line)}"
    if frame.f_code.co_name not in ("forward", "backward"):
        for outer, outer_line in user[1:]:
            if outer.f_code.co_name in ("forward", "backward"):
                text += f", called from {_describe(outer, outer_line)}"
                break
    return text


def _stack(frame: FrameType | None) -> Iterator[tuple[FrameType, int]]:
    while frame is not None:
        yield frame, frame.f_lineno
        frame = frame.f_back


def where_in_traceback(tb: TracebackType | None) -> str | None:
    """:func:`where`, for the frames an exception passed through."""
    pairs = []
    while tb is not None:
        pairs.append((tb.tb_frame, tb.tb_lineno))
        tb = tb.tb_next
    return where(reversed(pairs))


@contextmanager
def time_limit(seconds: float | None) -> Iterator[None]:
    """Raise :class:`CaseTimeout` in the body once it has run ``seconds`` (None: no limit).
    POSIX, main thread only; where neither holds the body runs without a limit."""
    main_thread = threading.current_thread() is threading.main_thread()
    if seconds is None or not CAN_INTERRUPT or not main_thread:
        yield
        return

    def expire(signum: int, frame: FrameType | None) -> None:
        raise CaseTimeout(seconds, where(_stack(frame)))

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# --- one case in a process of its own --------------------------------------------------------


def _start_method() -> str:
    # fork is fast (the modules are already imported) and safe here; macOS and Windows spawn
    methods = multiprocessing.get_all_start_methods()
    return "fork" if "fork" in methods and sys.platform != "darwin" else "spawn"


def _child(sender: Any, targets: Sequence[str], case_id: str, options: dict[str, Any]) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's: it stops this process
    from gradcheck.runner import collect_cases, run_case

    last = 0.0

    def progress(done: int, total: int) -> None:
        nonlocal last
        if time.perf_counter() - last > 0.1:  # a pipe message per evaluation would slow it
            last = time.perf_counter()
            sender.send(("progress", done, total))

    case = next(c for c in collect_cases(targets) if c.id == case_id)
    result = run_case(
        case, on_example=lambda n: sender.send(("example", n)), on_progress=progress, **options
    )
    result.case, result.exception = None, None  # the parent has the case; exceptions may not pickle
    try:
        sender.send(("result", result))
    except Exception as exc:  # a report holding something that does not pickle
        from gradcheck.runner import CaseResult, one_line

        lost = CaseResult(None, seed=result.seed, options=result.options, seconds=result.seconds)
        lost.error = f"its result could not be sent back: {one_line(exc)}"
        sender.send(("result", lost))


def _ended(code: int | None) -> str:
    if code is not None and code < 0:
        name = signal.Signals(-code).name
        hint = " (out of memory?)" if -code == signal.SIGKILL else ""
        return f"its process was killed by {name}{hint}"
    return f"its process exited with status {code} before finishing (os._exit in the code?)"


def run_isolated(
    targets: Sequence[str],
    case: Any,
    *,
    timeout: float | None = None,
    on_example: Callable[[int], None] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    **options: Any,
) -> Any:
    """:func:`gradcheck.runner.run_case` in a child process that imports ``targets`` anew (or
    forks with them imported). A process that dies without a result makes the case's ERROR; one
    still running ``timeout`` + a grace period later is killed and the case timed out."""
    from gradcheck.runner import CaseResult

    context = multiprocessing.get_context(_start_method())
    receiver, sender = context.Pipe(duplex=False)
    child_options = {**options, "timeout": timeout}
    process = context.Process(
        target=_child, args=(sender, list(targets), case.id, child_options), daemon=True
    )
    started = time.perf_counter()
    deadline = None if timeout is None else started + timeout + _GRACE
    process.start()
    sender.close()
    in_force = {k: v for k, v in options.items() if k not in ("examples", "seed")}
    result = CaseResult(case, seed=options.get("seed", 0), options={**in_force, **case.options})
    try:
        while True:
            wait = None if deadline is None else max(0.0, deadline - time.perf_counter())
            if not receiver.poll(wait):
                result.timeout = str(CaseTimeout(timeout, "(its process was stopped)"))
                break
            try:
                message = receiver.recv()
            except EOFError:
                process.join(5)
                result.error = _ended(process.exitcode)
                break
            if message[0] == "example" and on_example is not None:
                on_example(message[1])
            elif message[0] == "progress" and on_progress is not None:
                on_progress(message[1], message[2])
            elif message[0] == "result":
                result = message[1]
                result.case = case
                break
    finally:
        receiver.close()
        if process.is_alive():
            process.join(1)
        if process.is_alive():
            process.kill()
            process.join()
    result.seconds = time.perf_counter() - started
    return result

"""Running core work in napari thread workers, and telling the user what went wrong.

A widget describes its work as a generator that yields progress updates and
returns its result. :func:`guarded` turns any failure into a :class:`JobResult`
holding a sentence for the user, inside the worker thread, so no traceback ever
escapes; :func:`start_job` wires the worker to the widget, shows how far it is
in the widget's own bar (and, if :data:`ACTIVITY_DOCK`, in napari's activity
dock: :class:`JobProgress`) and makes sure the work stops when the widget goes
away (the viewer is closed).

How many CPU threads torch uses for a job can be set with :data:`JOB_THREADS`
(see :func:`napari_unet.core.devices.torch_threads` for why it is set in the worker
thread itself).
"""

from __future__ import annotations

import inspect
import logging
import threading
import weakref
from collections.abc import Callable, Generator
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
from napari.qt.threading import GeneratorWorker, thread_worker
from napari.utils import progress
from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import QEvent, QThreadPool, QTimer
from qtpy.QtWidgets import QProgressBar, QWidget

from ..core.checkpoint import CheckpointError
from ..core.devices import torch_threads
from ..core.inference import Cancelled
from ..training.loop import TrainingError
from ..training.sampling import AnnotationError

log = logging.getLogger(__name__)

JOB_THREADS: int | None = None
"""Torch CPU threads of a widget's jobs; None: torch's own count (``torch.get_num_threads()``).

Measured on 2 cores (``benchmarks/results_gui_load.md``): leaving napari's Qt
thread a core (1 torch thread instead of 2) changed the event loop's longest
stalls during fine-tuning and prediction by about 20 ms at most (they come
from work in the Qt thread itself; torch releases the GIL while it computes),
but predictions took 60-80 % longer and fine-tuning ran up to 30 % fewer
iterations. So by default torch keeps every core. Set e.g.
``os.cpu_count() - 1`` to keep a core free for other programs.
"""


ACTIVITY_DOCK = False
"""Also show each job as a bar (a ``napari.utils.progress``) in napari's activity dock.

Off by default: while any such bar is open, napari animates a loading GIF in its
status bar about 30 times a second, and each frame repaints the main window in
the Qt thread, holding the GIL. Under software OpenGL (Mesa llvmpipe: a VM, a
remote desktop, Xvfb) that halved the work done in the same time on 2 cores:
a 20 s fine-tune ran 15 instead of 38 iterations, a Predict of a 2048² image took
11.7 s instead of 6.0 s (medians of 3, ``benchmarks/bench_activity_dock.py``,
BENCHMARKS.md). Each section shows its own bar beside its Start/Run button.
"""

PROGRESS_STEPS = 1000
"""Steps of a job's progress bars: the fraction done, to a tenth of a percent."""

ACTIVITY_INTERVAL_MS = 200
"""How often a job's bar in napari's activity dock is moved (see :class:`JobProgress`)."""


class JobProgress:
    """How far a job is: the widget's own bar, and (if :data:`ACTIVITY_DOCK`) a bar in
    napari's activity dock.

    The activity-dock bar is a :class:`napari.utils.progress`, what
    ``thread_worker(progress=...)`` makes too; that one counts each yield as one
    step of a known total, while the jobs here yield a *fraction* done (tiles
    predicted, iterations or seconds of a time budget) and status lines between,
    so the bar is moved to the fraction instead. It is opened, moved and closed in
    the Qt thread, from the event loop and at most every
    :data:`ACTIVITY_INTERVAL_MS`: napari's activity dock runs
    ``QApplication.processEvents()`` on every change of a bar, and doing that
    inside a handler of the worker's updates would deliver later updates (and the
    job's end) before the handler is over.

    Parameters
    ----------
    task : str
        The bar's description ("Prediction"); a job's status lines are appended.
    bar : QProgressBar, optional
        The widget's bar next to its Start/Run button (range 0 to
        :data:`PROGRESS_STEPS`), set at each update.

    Attributes
    ----------
    activity : napari.utils.progress or None
        The activity dock's bar, once opened (at the next turn of the event loop;
        never while :data:`ACTIVITY_DOCK` is off); closed, and gone from the dock,
        by :meth:`close`.
    """

    def __init__(self, task: str, bar: QProgressBar | None = None) -> None:
        self.task, self.bar = task, bar
        self.activity: progress | None = None
        self.closed = False
        self._steps, self._text, self._shown = 0, "", task
        self._format: str | None = None  # the bar's own, while it says the job waits
        self._timer = QTimer()
        self._timer.setInterval(ACTIVITY_INTERVAL_MS)
        self._timer.timeout.connect(self._move)
        if ACTIVITY_DOCK:
            QTimer.singleShot(0, self._open)
        if bar is not None:
            bar.setValue(0)

    def wait_for_a_thread(self) -> None:
        """Say in the bar that the job waits for one of napari's worker threads (each of
        the machine's cores runs one task; a third task on 2 cores sat silent), until
        :meth:`started`."""
        if self.bar is None:  # e.g. the loss weights: said where the user looks
            show_info(f"{self.task}: waiting for another task to end (one runs per core).")
            return
        self._format = self.bar.format()
        self.bar.setFormat("Waiting for another task to end…")

    def started(self) -> None:
        """The job got its thread: the bar shows the widget's own format again."""
        if self.bar is not None and self._format is not None:
            self.bar.setFormat(self._format)
        self._format = None

    def report(self, fraction: float | None, text: str = "") -> None:
        """The job is ``fraction`` done (None: unchanged), doing ``text`` ("": unchanged)."""
        if text:
            self._text = text
        if fraction is not None:
            self._steps = round(min(max(fraction, 0.0), 1.0) * PROGRESS_STEPS)
            try:
                if self.bar is not None:
                    self.bar.setValue(self._steps)
            except RuntimeError:  # the widget is gone (viewer closed); the job is stopping
                self.bar = None

    def _open(self) -> None:
        if self.closed:
            return
        self.activity = progress(total=PROGRESS_STEPS, desc=self.task)
        self._timer.start()

    def _move(self) -> None:
        activity = self.activity
        description = f"{self.task}: {self._text}" if self._text else self.task
        if activity is not None and not self.closed and description != self._shown:
            self._shown = description
            activity.set_description(description)
        if activity is not None and not self.closed and self._steps != activity.n:
            activity.update(self._steps - activity.n)

    def close(self) -> None:
        """The job is over, however it ended: its activity-dock bar goes."""
        self.closed = True
        self._timer.stop()
        if self.activity is not None:
            self.activity.close()


def plain_progress(update: Any) -> tuple[float | None, str]:
    """What a job's ``update`` says for :meth:`JobProgress.report`, by default: a
    number is the fraction done, a string a status line; nothing else counts."""
    if isinstance(update, str):
        return None, update
    if isinstance(update, (int, float)) and not isinstance(update, bool):
        return float(update), ""
    return None, ""


@dataclass
class JobResult:
    """How a background job ended.

    Attributes
    ----------
    value : Any
        What the job produced (None after an error or a cancel).
    error : str
        A sentence for the user saying what went wrong and what to do; "" if none.
    cancelled : bool
        The user stopped the job before it produced its result.
    """

    value: Any = None
    error: str = ""
    cancelled: bool = False


OUT_OF_MEMORY_ADVICE = {
    "Prediction": "Choose a smaller tile size, or the CPU as device.",
    "Fine-tuning": "Choose the CPU as device, turn off the live preview, or fine-tune a "
    "model with fewer base features (Model section).",
    "Training": "Choose the CPU as device, turn off the live preview, or make a new model "
    "with fewer base features (Model section).",
}
"""What to change after running out of memory, per task (as :func:`start_job` names it)."""

DEFAULT_OUT_OF_MEMORY_ADVICE = "Close other programs, or work on a smaller image."
"""The advice for a task not in :data:`OUT_OF_MEMORY_ADVICE` (e.g. "Loss weights")."""


def explain(error: BaseException, task: str) -> JobResult:
    """The :class:`JobResult` of a job that raised ``error`` while doing ``task``."""
    if isinstance(error, Cancelled):
        return JobResult(cancelled=True)
    if isinstance(error, (AnnotationError, TrainingError)):
        return JobResult(error=f"{task}: {error}")
    if isinstance(error, CheckpointError):
        return JobResult(error=f"{task}: {error}. Choose another checkpoint file.")
    if isinstance(error, MemoryError) or "out of memory" in str(error).lower():
        advice = OUT_OF_MEMORY_ADVICE.get(task, DEFAULT_OUT_OF_MEMORY_ADVICE)
        return JobResult(error=f"{task}: out of memory. {advice}")
    if isinstance(error, ValueError):
        return JobResult(error=f"{task}: {error}")
    log.debug("%s failed", task, exc_info=error)  # for developers; the user gets a sentence
    return JobResult(
        error=f"{task} failed unexpectedly ({type(error).__name__}: {error}). "
        "Check the layers and settings, and report this if it happens again."
    )


def guarded(job: Generator[Any, None, JobResult], task: str):
    """Run ``job`` to its end, turning any exception into a :class:`JobResult`."""
    try:
        result = yield from job
    except Exception as error:
        return explain(error, task)
    return result if isinstance(result, JobResult) else JobResult(value=result)


def start_job(
    owner: QWidget,
    job: Generator[Any, None, Any],
    task: str,
    stop: threading.Event,
    *,
    on_yield: Callable[[Any], None],
    on_result: Callable[[JobResult], None],
    on_finish: Callable[[], None],
    release: Callable[[], None],
    bar: QProgressBar | None = None,
    progress_of: Callable[[Any], tuple[float | None, str]] = plain_progress,
) -> GeneratorWorker:
    """Start ``job`` in a napari thread worker and connect it to ``owner``.

    Parameters
    ----------
    owner : QWidget
        The widget the job belongs to. When it is destroyed (its viewer closed)
        the ``stop`` flag is set and the worker asked to quit.
    job : generator
        Yields updates, returns a :class:`JobResult` (see :func:`guarded`).
    task : str
        What the job does, for messages ("Fine-tuning", "Prediction").
    stop : threading.Event
        The flag the core checks; set by the widget's Stop/Cancel button.
    on_yield, on_result, on_finish : callable
        Qt-thread handlers of each update, of the result, and of the end
        (called last, also after an error or an abort; not once ``owner`` is gone).
    release : callable
        Called at the very end in every case, e.g. to free the shared model.
    bar : QProgressBar, optional
        The widget's own progress bar; see :class:`JobProgress`, which shows each
        update in ``bar`` (and in napari's activity dock) before ``on_yield``.
    progress_of : callable
        (fraction done or None, status line or "") of an update; see
        :func:`plain_progress`.

    Returns
    -------
    GeneratorWorker
        Started; its ``finished`` signal fires when everything is over.
    """
    guarded_job = guarded(job, task)
    worker = thread_worker(_drive, start_thread=False, ignore_errors=True)(guarded_job)
    job_progress = JobProgress(task, bar)
    _connect_updates(worker, task, job_progress, progress_of, on_yield, on_result)
    connection = owner.destroyed.connect(partial(_abandon, worker, stop))
    finish = _finisher(owner, connection, on_finish, guarded_job, job_progress, release)
    worker.finished.connect(finish)
    worker.started.connect(job_progress.started)
    pool = QThreadPool.globalInstance()
    if pool is not None and pool.activeThreadCount() >= pool.maxThreadCount():
        job_progress.wait_for_a_thread()
    worker.start()
    return worker


def _connect_updates(
    worker: GeneratorWorker,
    task: str,
    job_progress: JobProgress,
    progress_of: Callable[[Any], tuple[float | None, str]],
    on_yield: Callable[[Any], None],
    on_result: Callable[[JobResult], None],
) -> None:
    """Show each update of ``worker`` in ``job_progress``, then pass it to ``on_yield``;
    pass its result to ``on_result`` and show what it raised (see :func:`start_job`)."""
    worker.yielded.connect(lambda update: job_progress.report(*progress_of(update)))
    worker.yielded.connect(on_yield)
    worker.returned.connect(on_result)
    worker.errored.connect(lambda error: show_error(explain(error, task).error))


def _finisher(
    owner: QWidget,
    connection: Any,
    on_finish: Callable[[], None],
    guarded_job: Generator[Any, None, JobResult],
    job_progress: JobProgress,
    release: Callable[[], None],
) -> Callable[[], None]:
    """The handler of a worker's end (see :func:`start_job`): closes the job and its
    progress, calls ``release``, then, if ``owner`` is still there, disconnects its
    ``destroyed`` ``connection`` and calls ``on_finish``. It holds neither ``owner``
    nor the widget of a bound ``on_finish``, only weak references."""
    owner_ref = weakref.ref(owner)  # the worker outlives widgets: never keep one alive
    if inspect.ismethod(on_finish):
        finish_ref: Callable[[], Any] = weakref.WeakMethod(on_finish)
    else:
        finish_ref = partial(lambda handler: handler, on_finish)
    del on_finish  # the closure below must not hold the widget through a bound method

    def finish() -> None:
        guarded_job.close()  # after a quit() the job never resumed: let it clean up
        job_progress.close()
        release()
        widget = owner_ref()
        handler = finish_ref()
        try:
            if widget is None or handler is None:
                return
            widget.destroyed.disconnect(connection)
        except (RuntimeError, TypeError):  # the widget's Qt object is gone already
            return
        handler()

    return finish


def taken_out_of_its_dock(widget: QWidget, event: QEvent | None) -> bool:
    """Whether ``event`` tells ``widget`` that its dock was closed.

    napari's close button on a dock takes the widget out of it (``setParent(None)``)
    without deleting it, so ``destroyed`` (see :func:`start_job`) does not fire and
    a job would go on unseen, with no Stop button to reach. Switching tabs or
    hiding the dock leaves the parent alone.
    """
    if event is None:  # Qt's signature allows it
        return False
    return event.type() == QEvent.Type.ParentChange and widget.parent() is None


def job_threads() -> int | None:
    """Torch CPU threads for a job: :data:`JOB_THREADS` (at least 1), or None for torch's own."""
    return None if JOB_THREADS is None else max(1, JOB_THREADS)


def _drive(job: Generator[Any, None, Any]) -> Generator[Any, None, Any]:
    with torch_threads(job_threads()):  # runs in the worker thread
        return (yield from job)


def _abandon(worker: GeneratorWorker, stop: threading.Event, *_: Any) -> None:
    stop.set()
    try:
        worker.quit()
    except RuntimeError:  # the worker's Qt signals object is gone already
        pass


def available_devices() -> list[str]:
    """Device choices: "auto", "cpu", then each CUDA GPU and Apple MPS when present."""

    devices = ["auto", "cpu"]
    if torch.cuda.is_available():
        count = torch.cuda.device_count()
        devices += ["cuda"] + ([f"cuda:{index}" for index in range(count)] if count > 1 else [])
    backend = getattr(torch.backends, "mps", None)
    if backend is not None and backend.is_available():
        devices.append("mps")
    return devices

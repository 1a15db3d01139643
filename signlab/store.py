"""The run store: the one owner of a run's life (its state, owner, place in the queue and lease).

A run's *artifacts* (config, metrics, weights, kernels) live in its folder; its *state* lives here,
in a database: SQLite beside the runs by default (``<runs_dir>/signlab.db``, WAL mode, nothing to
install), or PostgreSQL (``SIGNLAB_DB`` / ``--db postgresql://…``) for several servers and
worker machines sharing one runs folder.

Every change of state goes through :class:`RunStore` as a compare-and-set on the database row
("move run R from one of these states to that one"), never "start, then record":

    queued ──claim──▶ claimed ──start──▶ running ⇄ paused ──▶ completed | stopped | failed | diverged
      ▲                  │ lease lost            │ lease lost
      └──────────────────┘ (nothing ran)         ▼
      ◀──── continue ───────────────────── interrupted (and the other final states)

*Liveness is a lease, not a pid*: whoever claims a run (a worker, the command line) holds a lease
that its heartbeat renews every few seconds. A run whose lease ran out is taken from its holder
on any host: a claimed run that never started goes back to the queue, a running one becomes
``interrupted`` and, if it came from the queue, is queued again to continue from its last
finished epoch. A Stop or a Pause its holder never acted on stands: such a run ends ``stopped``,
or ``interrupted`` and not queued again. A holder whose lease was taken finds out at its next
heartbeat and stops writing.

Claims are serialised per database (SQLite: ``BEGIN IMMEDIATE``; PostgreSQL: a transaction-level
advisory lock), so the job limit holds across every server and worker. Every transition is also
appended to ``run_history``: the audit trail the tests use to prove "each run trained once".

This module knows nothing about processes, Streamlit or training; :mod:`signlab.jobs` and
:mod:`signlab.worker` build on it.
"""
from __future__ import annotations

import enum
import json
import os
import socket
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import sqlalchemy as sa
from sqlalchemy import event

from . import envnum
from .errors import QuotaError, RunError, SignlabError
from .fsutil import atomic_write_bytes, nofollow_opener, storage_error
from .numbers import count_text


class RunState(str, enum.Enum):
    """A run's state. A ``str`` enum, so ``RunState.RUNNING == "running"`` and JSON writes the word."""

    QUEUED = "queued"
    CLAIMED = "claimed"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    STOPPED = "stopped"
    FAILED = "failed"
    DIVERGED = "diverged"
    INTERRUPTED = "interrupted"

    def __str__(self) -> str:  # f-strings and messages show the word, not "RunState.RUNNING"
        return self.value


S = RunState
HOLDING = (S.CLAIMED, S.RUNNING, S.PAUSED)  # held by a process under a lease
ACTIVE = (S.QUEUED, *HOLDING)  # not finished: cannot be deleted or continued
FINAL = (S.COMPLETED, S.STOPPED, S.FAILED, S.DIVERGED, S.INTERRUPTED)

# the state machine: every transition the store makes, and only these
TRANSITIONS: dict[RunState, tuple[RunState, ...]] = {
    # queued to any final state: a continuation cancelled before it started goes back to where the run was
    S.QUEUED: (S.CLAIMED, *FINAL),
    # claimed to completed or diverged: a continuation that could not start gives its run back as it was
    # (:meth:`RunStore.give_up_continuation`)
    S.CLAIMED: (S.RUNNING, S.QUEUED, *FINAL),
    S.RUNNING: (S.PAUSED, S.COMPLETED, S.STOPPED, S.FAILED, S.DIVERGED, S.INTERRUPTED),
    # paused to completed (or diverged): a Stop, or the pause limit, while paused at the last epoch's last
    # step, after which the trainer finishes that epoch (the run was refused the move, left paused and
    # later called interrupted by its lease, with every epoch trained)
    S.PAUSED: (S.RUNNING, S.COMPLETED, S.STOPPED, S.FAILED, S.DIVERGED, S.INTERRUPTED),
    **{f: (S.QUEUED, S.CLAIMED) for f in FINAL},  # continue: queued again, or claimed by `train --resume`
}
CONTROLS = ("stop", "pause", "resume")
CANCELLED_CONTINUATION = "; its continuation was cancelled before it started"  # after a finished run's words
CONTINUATION_FAILED = "; its continuation could not start: "  # the same, before the reason
HOLDER = "training process"  # how a run's messages name the process that held it
HOLDER_LOST = f"the {HOLDER}"  # how the message of a run taken back from its holder begins
AUTO_CONTINUES = 3  # a queued run whose holder vanished is continued this many times, then left interrupted
# (and one whose holders all died before it started training is queued again as often, then failed)


def active_refusal(active: int, limit: int) -> str:
    """Why an owner with ``active`` runs queued or training may not queue another under ``limit``
    (0: an instructor's pause of new runs, not a count to wait under: "you have 0 runs …, and the limit
    is 0 at a time; wait for one to finish" was a teacher's walk's nonsense)."""
    if limit <= 0:
        return "the class settings allow no runs to be queued or trained now (0 at a time); ask your instructor"
    return (f"you have {count_text(active, 'run')} queued or training, and the limit is {limit} at a time; "
            "wait for one to finish, or stop one")


def runs_refusal(runs: int, limit: int) -> str:
    """Why an owner with ``runs`` runs may not make another under ``limit`` (the class's max_runs_per_user)."""
    if limit <= 0:
        return "the class settings allow no new runs (0 runs kept per student); ask your instructor"
    return f"you have {count_text(runs, 'run')}, and the limit is {limit}; delete some on the Runs page"


def lease_seconds() -> float:
    """How long a claim lives without a heartbeat (``SIGNLAB_LEASE_SECONDS``, default 20; held within
    1 s to a day: "inf" overflowed the lease's timestamp in the heartbeat thread)."""
    return envnum.clamped("SIGNLAB_LEASE_SECONDS", 20.0)


def heartbeat_seconds() -> float:
    return max(0.2, lease_seconds() / 5)


def db_url_for(runs_dir: Path | str, url: str | None = None) -> str:
    """The database URL: ``url``, else ``SIGNLAB_DB``, else ``sqlite:///<runs_dir>/signlab.db``.

    A value without ``://`` is a SQLite file's path (``SIGNLAB_DB=/srv/runs.db``): what a user who
    has never written a SQLAlchemy URL types, and SQLAlchemy's own answer to it ("Could not parse
    SQLAlchemy URL") names neither the setting nor the fix.
    """
    url = (url or os.environ.get("SIGNLAB_DB") or "").strip()
    if url and "://" not in url:
        return f"sqlite:///{Path(url).expanduser().resolve()}"
    if url:
        return "postgresql+psycopg" + url[len("postgres"):] if url.startswith("postgres://") else (
            "postgresql+psycopg" + url[len("postgresql"):] if url.startswith("postgresql://") else url)
    return own_db_url(runs_dir)


def own_db_url(runs_dir: Path | str) -> str:
    """The runs folder's own database, ``sqlite:///<runs_dir>/signlab.db`` (the default)."""
    return f"sqlite:///{Path(runs_dir).expanduser().resolve() / 'signlab.db'}"


SECRET_QUERY_KEYS = ("password", "passfile", "sslpassword", "sslkey")  # libpq takes these in the query too


def mask_url(url: str) -> str:
    """A database URL with its password hidden, for messages and files: the one in ``user:pw@``, with
    or without a user, and the one in the query (``?password=``, which libpq and psycopg take; it was
    shown on every page whose run database could not be opened). Text that is no URL (a journal
    file's path) is returned as it is."""
    import re

    text = str(url)
    try:
        parsed = sa.engine.make_url(text)
    except Exception:  # noqa: BLE001 - not a URL: a path, which holds no password
        return re.sub(r"(://[^/@]*:)[^@]*@", r"\1***@", text)
    hidden = "signlabhidden"  # "***" itself is written %2A%2A%2A in a query
    query = {k: (hidden if k.lower() in SECRET_QUERY_KEYS else v) for k, v in parsed.query.items()}
    return parsed.set(query=query).render_as_string(hide_password=True).replace(hidden, "***")


# --------------------------------------------------------------------------- schema
_meta = sa.MetaData()
runs_table = sa.Table(
    "runs", _meta,
    sa.Column("run_id", sa.String(128), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False, default=""),
    sa.Column("owner", sa.String(200), nullable=True, index=True),
    sa.Column("kind", sa.String(16), nullable=False, default="train"),  # train | trial | import
    sa.Column("study", sa.String(64), nullable=True),
    sa.Column("model", sa.String(64), nullable=True),
    sa.Column("state", sa.String(16), nullable=False, index=True),
    sa.Column("created", sa.Float, nullable=False),
    sa.Column("updated", sa.Float, nullable=False),
    sa.Column("queued_at", sa.Float, nullable=True, index=True),  # the queue's order
    sa.Column("attempt", sa.Integer, nullable=False, default=0),  # claims so far: a fencing token
    sa.Column("auto_continue", sa.Boolean, nullable=False, default=True),
    sa.Column("continues", sa.Integer, nullable=False, default=0),  # automatic continuations so far
    sa.Column("worker", sa.String(200), nullable=True),
    sa.Column("host", sa.String(200), nullable=True),
    sa.Column("pid", sa.Integer, nullable=True),
    sa.Column("lease_until", sa.Float, nullable=True),
    sa.Column("control", sa.String(8), nullable=True),  # stop | pause: a request to the holder
    sa.Column("resume_epochs", sa.Integer, nullable=True),  # queued to continue for this many epochs
    sa.Column("epochs_completed", sa.Integer, nullable=False, default=0),
    sa.Column("target_epochs", sa.Integer, nullable=True),
    sa.Column("message", sa.Text, nullable=False, default=""),
    sa.Column("info", sa.Text, nullable=False, default="{}"),  # JSON: accuracies, seconds, device, …
)
history_table = sa.Table(
    "run_history", _meta,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(128), nullable=False, index=True),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("from_state", sa.String(16), nullable=True),
    sa.Column("to_state", sa.String(16), nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("worker", sa.String(200), nullable=True),
)
workers_table = sa.Table(
    "workers", _meta,
    sa.Column("worker_id", sa.String(200), primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),  # worker | sweep
    sa.Column("host", sa.String(200), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("study", sa.String(64), nullable=True),
    sa.Column("started", sa.Float, nullable=False),
    sa.Column("heartbeat", sa.Float, nullable=False),
    sa.Column("info", sa.Text, nullable=False, default="{}"),
)
settings_table = sa.Table(
    "settings", _meta,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),  # JSON
)
sa.Index("runs_queue", runs_table.c.state, runs_table.c.queued_at)

# PostgreSQL advisory locks (SQLite takes its one write lock at each write transaction's start instead)
_CLAIM_LOCK = 5318008  # claims, expiries, requests and the queue's order: one such transaction at a time
_CREATE_LOCK = 5318009  # making the tables of a fresh database


def _locked(where: Any, *columns: Any) -> sa.Select:
    """A read of the run row(s) ``where`` that a transaction is about to write from (all columns unless
    ``columns``), locked until it commits: on PostgreSQL (READ COMMITTED) another process's write landed
    between such a read and its write and was overwritten (an instructor's Stop undid the val_accuracy a
    finishing run had just written, and left it completed with a stop pending). SQLite ignores the
    clause: a write transaction there holds the database's write lock from its start."""
    return sa.select(*(columns or (runs_table,))).where(where).with_for_update()

# columns a caller may set with a transition, beside the state (the rest are the store's own)
_PLAIN = ("name", "owner", "model", "message", "epochs_completed", "target_epochs", "resume_epochs")
_INFO_KEYS = ("val_accuracy", "test_accuracy", "train_seconds", "train_seconds_before", "samples_per_second",
              "device", "steps_per_epoch", "preset", "ensemble", "parent", "overhead_per_epoch", "overhead_fixed", "tsne_seconds",
              "batch_size", "width",  # the config's, for the time estimates from every user's runs
              "stopped_by",  # stopped_by: who stopped someone else's run (an instructor), until it is continued
              "paused_by",  # who paused someone else's run, until it is resumed (or paused by its owner)
              "before_continue",  # a finished run's state and words while a continuation of it is queued
              "first",  # when it went to the head of the queue (RunStore.move_first, or taken back by _expire)
              # {"times": n, "epoch": e}: its holder died or was shut down n times and it was queued again, last
              # to go on from epoch e (0: its start), until its user continues it (a student was never told)
              "taken_up")
# what a run's record says of how it last ended or went on, reset by a continuation of its user's and
# put back when that continuation never trains (RunStore._before, _put_back)
_ENDING_INFO = ("stopped_by", "taken_up")


@dataclass(frozen=True)
class Claim:
    """A held run: its id, the attempt number (a fencing token) and the holder; ``limit``, the job
    limit it was claimed under (None: claimed outside the queue, by ``train`` in its own process)."""

    run_id: str
    attempt: int
    worker: str
    resume_epochs: int | None = None
    limit: int | None = None


# The runs that take a slot of the job limit: those training, and a paused one once Resume was
# pressed (its control is no longer "pause") or Stop (it finishes, briefly). A paused run keeps its
# lease and its process, but no slot: on a class server with one slot, a student who paused and
# left stopped everyone's queue. Resume waits for a slot (:meth:`RunStore.resume`), and counting a
# resumed run here keeps the queue from taking the slot it waits for.
_TRAINING = (S.CLAIMED, S.RUNNING)
_TAKES_SLOT = sa.or_(runs_table.c.state.in_([s.value for s in _TRAINING]),
                     sa.and_(runs_table.c.state == S.PAUSED.value,
                             sa.func.coalesce(runs_table.c.control, "") != "pause"))


# queued runs any worker may claim: a sweep's new trial waits for its own sweep worker, which trains
# it with the pruner (a trial continued later is an ordinary run)
_FOR_ANY_WORKER = sa.not_(sa.and_(runs_table.c.kind == "trial", runs_table.c.resume_epochs.is_(None)))


@dataclass(frozen=True)
class Capacity:
    """One snapshot of what a job manager needs to decide whether to start a worker."""

    waiting: int  # queued runs that any worker may claim (not a sweep's trial, which its sweep trains)
    holding: int  # runs taking a slot of the job limit (not a paused one: see _TAKES_SLOT)
    spare: int  # live workers that will take the next run
    workers: list[dict[str, Any]]  # those live workers' rows


class LeaseLost(RunError):
    """This holder's lease on a run was taken (it ran out, or the run was stopped and re-claimed)."""


def new_worker_id(kind: str = "worker") -> str:
    import secrets

    return f"{kind}-{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


# --------------------------------------------------------------------------- the store
def _enable_wal(cur: Any, patience_s: float = 60.0) -> None:
    """Switch a SQLite database to WAL, waiting out another process that is switching it too.

    WAL is remembered in the file, so this is a no-op after the first opener. Two processes that
    open a brand-new file at the same instant (two sweep workers, a server and its first worker)
    both try to convert it; SQLite's deadlock avoidance then answers one of them "database is
    locked" at once, without calling the busy handler, so the busy timeout alone does not help.
    """
    deadline, pause = time.monotonic() + patience_s, 0.005
    while True:
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            return
        except Exception as err:  # sqlite3.OperationalError; kept generic so the dbapi stays swappable
            if "locked" not in str(err) or time.monotonic() > deadline:
                raise
            time.sleep(pause)
            pause = min(pause * 2, 0.25)


class RunStore:
    """States, queue, leases and owners of the runs in one database."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        try:
            if self.is_sqlite:
                path = Path(url.removeprefix("sqlite:///"))
                path.parent.mkdir(parents=True, exist_ok=True)
                # two engines: writes take SQLite's write lock up front (BEGIN IMMEDIATE), so a
                # read-then-write transaction can never be overtaken; reads stay concurrent (WAL)
                self._write = self._sqlite_engine(url, immediate=True)
                self._read = self._sqlite_engine(url, immediate=False)
            else:
                self._write = self._read = sa.create_engine(url, pool_pre_ping=True, pool_size=4, max_overflow=4)
            self._create_tables()
            # the database's time, read once and carried on by this machine's monotonic clock: each
            # process stamped and read leases with its own clock, and a dashboard server or a TA's laptop
            # whose clock ran a lease ahead took back every live run of the class each second (a worker
            # checks its clock and refuses to start; those did not). Monotonic, not an offset to the wall
            # clock: a server started before NTP set its clock would be off by the step from then on
            self._mono = time.monotonic()
            self._db_time = None if self.is_sqlite else time.time() - self.clock_offset()
        except OSError as err:
            raise storage_error(err, Path(url.removeprefix("sqlite:///"))) from err
        except ImportError as err:
            raise SignlabError(f"database {mask_url(url)}: its driver is not installed ({err})") from err
        except sa.exc.NoSuchModuleError as err:
            raise SignlabError(_unknown_kind(url)) from err
        except sa.exc.SQLAlchemyError as err:
            first = (str(err.orig) if getattr(err, "orig", None) else str(err)).strip().splitlines()
            raise SignlabError(f"cannot open the run database {mask_url(url)}: "
                               f"{first[0] if first else type(err).__name__}") from err

    def _create_tables(self) -> None:
        """The tables, where missing. On PostgreSQL under an advisory lock: CREATE TABLE is not safe to
        run at once from two processes (a server and its first workers opening a fresh class database
        failed with "duplicate key value violates unique constraint pg_type_typname_nsp_index")."""
        if self.is_sqlite:  # its write lock already makes one opener wait for the other
            _meta.create_all(self._write, checkfirst=True)
            return
        with self._write.begin() as conn:
            conn.execute(sa.text(f"SELECT pg_advisory_xact_lock({_CREATE_LOCK})"))
            _meta.create_all(conn, checkfirst=True)

    @staticmethod
    def _sqlite_engine(url: str, immediate: bool) -> sa.Engine:
        # a small pool: opening a connection (and its PRAGMAs) costs more than most queries here
        engine = sa.create_engine(url, connect_args={"timeout": 60, "check_same_thread": False},
                                  poolclass=sa.pool.QueuePool, pool_size=4, max_overflow=8)

        @event.listens_for(engine, "connect")
        def _connect(dbapi_conn, _record) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA busy_timeout=60000")
            _enable_wal(cur)
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin(conn) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine

    def dispose(self) -> None:
        self._write.dispose()
        if self._read is not self._write:
            self._read.dispose()

    # -- transactions
    @contextmanager
    def _tx(self, serialise: bool = False) -> Iterator[sa.Connection]:
        """A write transaction; ``serialise`` makes it exclusive among claimers on PostgreSQL too."""
        try:
            with self._write.begin() as conn:
                if serialise and not self.is_sqlite:
                    conn.execute(sa.text(f"SELECT pg_advisory_xact_lock({_CLAIM_LOCK})"))
                yield conn
        except sa.exc.OperationalError as err:
            raise self._unavailable(err) from err

    @contextmanager
    def _reader(self) -> Iterator[sa.Connection]:
        """A connection for reads; the database away is a SignlabError, as for writes."""
        try:
            with self._read.connect() as conn:
                yield conn
        except sa.exc.OperationalError as err:
            raise self._unavailable(err) from err

    def _unavailable(self, err: sa.exc.OperationalError) -> SignlabError:
        return SignlabError(f"the run database {mask_url(self.url)} is not available: "
                            f"{str(err.orig).strip().splitlines()[0] if err.orig else err}")

    # -- rows
    @staticmethod
    def _info(text: str | None) -> dict[str, Any]:
        """A row's info column as a dict ({} when empty or not a JSON object)."""
        try:
            info = json.loads(text or "{}")
        except ValueError:
            return {}
        return info if isinstance(info, dict) else {}

    @classmethod
    def _row_dict(cls, row: Any) -> dict[str, Any]:
        d = dict(row._mapping)
        d.update(cls._info(d.pop("info")))
        d["status"] = RunState(d["state"])
        return d

    def get(self, run_id: str) -> dict[str, Any] | None:
        """The run's row as a dict (``status`` is its RunState; info's keys merged in), or None."""
        with self._reader() as conn:
            row = conn.execute(sa.select(runs_table).where(runs_table.c.run_id == run_id)).first()
        return self._row_dict(row) if row else None

    def rows(self, run_ids: Iterable[str] | None = None, states: Iterable[RunState] | None = None,
             owner: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """Runs, newest first."""
        q = sa.select(runs_table).order_by(runs_table.c.created.desc(), runs_table.c.run_id.desc())
        if run_ids is not None:
            q = q.where(runs_table.c.run_id.in_(list(run_ids)))
        if states is not None:
            q = q.where(runs_table.c.state.in_([RunState(s).value for s in states]))
        if owner is not None:
            q = q.where(runs_table.c.owner == owner)
        if limit:
            q = q.limit(limit)
        with self._reader() as conn:
            return [self._row_dict(r) for r in conn.execute(q)]

    def ids(self) -> set[str]:
        with self._reader() as conn:
            return set(conn.execute(sa.select(runs_table.c.run_id)).scalars())

    def history(self, run_id: str | None = None) -> list[dict[str, Any]]:
        q = sa.select(history_table).order_by(history_table.c.id)
        if run_id is not None:
            q = q.where(history_table.c.run_id == run_id)
        with self._reader() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    # -- creating
    def add(self, run_id: str, state: RunState = S.QUEUED, *, name: str = "", owner: str | None = None,
            kind: str = "train", study: str | None = None, model: str | None = None,
            target_epochs: int | None = None, holder: str | None = None, info: dict[str, Any] | None = None,
            message: str = "", epochs_completed: int = 0, created: float | None = None,
            auto_continue: bool = True, then: Callable[[], None] | None = None,
            max_active: int | None = None, max_runs: int | None = None) -> Claim | None:
        """Insert a run (RunError if the id exists). With ``holder`` it is inserted already claimed by
        that holder (the command line training in its own process) and the Claim is returned.
        ``max_active``: QuotaError when ``owner`` has that many runs queued or training already;
        ``max_runs``: when they have that many runs in all; both counted in the insert's transaction
        (:meth:`_check_active`: four tabs starting at once made four runs past a limit of one).

        ``then`` runs inside the insert's transaction (runs.create_run writes the run's folder
        there): the row commits only if it succeeds, and a concurrent insert of the same id (a
        listing importing the new folder) waits for that commit and is refused, instead of winning."""
        state = RunState(state)
        now = self._now()
        claimed = holder is not None
        if claimed:
            state = S.CLAIMED
        row = dict(run_id=run_id, name=name or run_id, owner=owner, kind=kind, study=study, model=model,
                   state=state.value, created=created or now, updated=now,
                   queued_at=now if state == S.QUEUED else None, attempt=1 if claimed else 0,
                   auto_continue=auto_continue, continues=0, worker=holder,
                   host=socket.gethostname() if claimed else None, pid=os.getpid() if claimed else None,
                   lease_until=now + lease_seconds() if claimed else None, control=None, resume_epochs=None,
                   epochs_completed=int(epochs_completed), target_epochs=target_epochs, message=message,
                   info=json.dumps(info or {}))
        try:
            with self._tx(serialise=max_active is not None or max_runs is not None) as conn:
                self._check_active(conn, owner, max_active)
                self._check_count(conn, owner, max_runs)
                conn.execute(runs_table.insert().values(**row))
                self._log(conn, run_id, None, state, row["attempt"], holder, now)
                if then is not None:
                    then()
        except sa.exc.IntegrityError as err:
            raise RunError(f"run {run_id} already exists") from err
        return Claim(run_id, 1, holder) if claimed else None

    def delete(self, run_id: str, then: Callable[[], None] | None = None) -> None:
        """Remove a finished (or unreadable) run's row; RunError while it is queued or held.
        ``then`` runs inside the transaction (runs.delete_run moves the folder away there)."""
        with self._tx() as conn:
            # locked: on PostgreSQL another server's Continue and a worker's claim committed between this
            # read and the delete, and a run a worker had begun to train lost its row and its folder
            state = conn.execute(_locked(runs_table.c.run_id == run_id, runs_table.c.state)).scalar()
            if state in [s.value for s in HOLDING]:
                raise RunError(f"run {run_id} is still training; stop it before deleting it")
            if state == S.QUEUED.value:
                raise RunError(f"run {run_id} is waiting in the queue; stop it before deleting it")
            conn.execute(runs_table.delete().where(runs_table.c.run_id == run_id,
                                                   runs_table.c.state.not_in([s.value for s in ACTIVE])))
            conn.execute(history_table.delete().where(history_table.c.run_id == run_id))
            if then is not None:
                then()

    # -- transitions
    @staticmethod
    def _log(conn, run_id: str, old: RunState | str | None, new: RunState, attempt: int, worker: str | None,
             now: float) -> None:
        conn.execute(history_table.insert().values(run_id=run_id, at=now, from_state=old and RunState(old).value,
                                                   to_state=RunState(new).value, attempt=attempt, worker=worker))

    def _set(self, conn, row: dict[str, Any] | Any, new: RunState, now: float, **values: Any) -> bool:
        """CAS: move ``row`` (as read in this transaction) to ``new``; False if it changed meanwhile."""
        old = RunState(row["state"] if isinstance(row, dict) else row.state)
        if new != old and new not in TRANSITIONS[old]:
            raise RunError(f"run {row['run_id'] if isinstance(row, dict) else row.run_id}: "
                           f"cannot go from {old} to {new}")
        run_id = row["run_id"] if isinstance(row, dict) else row.run_id
        attempt = row["attempt"] if isinstance(row, dict) else row.attempt
        res = conn.execute(runs_table.update()
                           .where(runs_table.c.run_id == run_id, runs_table.c.state == old.value,
                                  runs_table.c.attempt == attempt)
                           .values(state=new.value, updated=now, **values))
        if res.rowcount != 1:
            return False
        if new != old:
            self._log(conn, run_id, old, new, values.get("attempt", attempt), values.get("worker"), now)
        return True

    def _held(self, conn, claim: Claim):
        """The run's row if ``claim`` still holds it (same holder, same attempt); else LeaseLost."""
        row = conn.execute(_locked(runs_table.c.run_id == claim.run_id)).first()
        if row is None or row.worker != claim.worker or row.attempt != claim.attempt or \
                RunState(row.state) not in HOLDING:
            raise LeaseLost(f"run {claim.run_id} is no longer held by this process "
                            f"(it is {row.state if row else 'deleted'}; its lease ran out or it was taken over)")
        return row

    @classmethod
    def _merge_info(cls, row, changes: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        extra = {k: v for k, v in changes.items() if k in _INFO_KEYS}
        plain = {k: v for k, v in changes.items() if k in _PLAIN}
        unknown = set(changes) - set(extra) - set(plain)
        if unknown:
            raise ValueError(f"unknown run fields: {sorted(unknown)}")
        if extra:
            out["info"] = json.dumps({**cls._info(row.info), **extra})
        return {**out, **plain}

    def expire_leases(self, now: float | None = None) -> list[str]:
        """Take back every run whose lease ran out (on any host). Returns their ids.

        Every server ticks this each second and every watching page each poll: a plain read finds
        whether anything expired, so the usual case takes no write lock."""
        now = now or self._now()
        with self._reader() as conn:
            stale = conn.execute(sa.select(sa.func.count()).select_from(runs_table).where(
                runs_table.c.state.in_([s.value for s in HOLDING]), runs_table.c.lease_until < now)).scalar()
            stale = stale or bool(self._orphan_trials(conn, now))
        if not stale:
            return []
        with self._tx(serialise=True) as conn:
            return self._expire(conn, now)

    def _orphan_trials(self, conn, now: float) -> list[Any]:
        """Queued sweep trials that only their sweep worker may train (:data:`_FOR_ANY_WORKER`) while no
        live sweep worker says it made them (its ``current_run``): a killed sweep left its trial
        "waiting in the queue" for good, ahead of everyone and counted against its owner's quota. Per
        worker, not per study: with two workers on a study, one killed left its trial while the other
        lived. A trial queued within two leases is left alone (its worker names it at once)."""
        recent = now - 2 * lease_seconds()
        waiting = conn.execute(sa.select(runs_table).where(
            runs_table.c.state == S.QUEUED.value, runs_table.c.kind == "trial", runs_table.c.resume_epochs.is_(None),
            sa.func.coalesce(runs_table.c.queued_at, 0) < recent)).all()
        if not waiting:
            return []
        live = conn.execute(sa.select(workers_table).where(workers_table.c.kind == "sweep",
                                                           workers_table.c.heartbeat >= recent)).all()
        making = {self._worker_dict(w).get("current_run") for w in live}
        return [r for r in waiting if r.run_id not in making]

    def _expire(self, conn, now: float, lost: str = f"{HOLDER} stopped unexpectedly",
                crash: bool = True) -> list[str]:
        """Take back, in ``conn``'s transaction, every held run whose lease ran out and every orphaned
        sweep trial; returns their ids. ``lost``: what happened to the holder, in the runs' messages;
        ``crash``: whether it counts against ``AUTO_CONTINUES`` (not for :meth:`hand_back`, a worker
        shut down on purpose). What each becomes:

        ================================================  =========================================
        the run                                           becomes
        ================================================  =========================================
        a queued trial whose sweep worker is gone         stopped ("cancelled before it started")
        claimed, never started, its user asked to stop    cancelled as a queued run is
        running, its user asked to stop                   stopped, its finished epochs kept
        paused, with finished epochs                      interrupted, not started again unasked
        paused, before its first epoch                    stopped (nothing to continue)
        claimed, never started (a queued run)             queued again, in its place; failed at the
                                                          crash after ``AUTO_CONTINUES`` of them (one
                                                          that kills each worker loading it, out of
                                                          memory, held the head of the queue for good)
        running (a crash)                                 interrupted; queued again to continue
                                                          when it may (``auto_continue``, at most
                                                          ``AUTO_CONTINUES`` times, epochs left)
        ================================================  =========================================

        The dead holder's heartbeat is zeroed, so it no longer counts as a spare worker.
        """
        taken = []
        for row in self._orphan_trials(conn, now):
            if self._set(conn, row, S.STOPPED, now, message="cancelled before it started: the sweep worker that "
                                                            "made it stopped (no heartbeat)"):
                taken.append(row.run_id)
        rows = conn.execute(sa.select(runs_table).where(runs_table.c.state.in_([s.value for s in HOLDING]),
                                                        runs_table.c.lease_until < now)).all()
        for row in rows:
            # what its user asked for (a Stop, a Pause) stands; else what a crash leaves
            expire = self._expire_asked if row.control in ("stop", "pause") else self._expire_unasked
            if expire(conn, row, now, lost, crash):
                taken.append(row.run_id)
                if row.worker:
                    # its holder stopped beating: out of the live workers at once, not after two leases.
                    # Its row read "spare" (its run no longer held), so for another lease no worker was
                    # started for the run just queued again, and the page said "waiting for a free slot".
                    # Not deleted: a holder that was only paused (a laptop asleep) comes back at its next beat
                    conn.execute(workers_table.update().where(workers_table.c.worker_id == row.worker)
                                 .values(heartbeat=0.0))
        return taken

    @staticmethod
    def _held_gone(row) -> tuple[dict[str, Any], int, str]:
        """What :meth:`_expire` clears of a run whose holder is gone, its finished epochs, and those in words."""
        gone = dict(worker=None, pid=None, lease_until=None, control=None)
        # which worker it was stays in the run's history (for an instructor); the words are the student's
        done = row.epochs_completed
        kept = f"the weights of epoch {done} are kept" if done else "it had not finished an epoch"
        return gone, done, kept

    def _expire_asked(self, conn, row, now: float, lost: str, crash: bool) -> bool:
        """:meth:`_expire` of a run whose user asked for a Stop or a Pause that its dead holder never
        acted on; whether it was taken. (``crash`` does not count here: nothing is started again.)"""
        gone, done, kept = self._held_gone(row)
        # what its user asked for stands: a Stop or a Pause the dead holder never acted on was
        # dropped here, and the run went back to the queue and trained to its end (a Stop
        # ended "completed" beside "stopped by" its instructor); a paused run is left for its
        # user, never trained again unasked
        if row.state == S.CLAIMED.value and row.control == "stop":
            # taken from the queue, never started: stopped as if still queued (a continuation of
            # a finished run goes back to what the run was, its words and epochs kept)
            ok = self._set(conn, row, S.QUEUED, now, **gone)
            if ok:
                back = conn.execute(sa.select(runs_table).where(runs_table.c.run_id == row.run_id)).first()
                self._cancel_queued(conn, back, now, {})
        elif row.control == "stop":
            ok = self._set(conn, row, S.STOPPED, now, **gone, resume_epochs=None,
                           message=f"stopped: its {lost} before it acted on the stop; {kept}")
        elif done:
            ok = self._set(conn, row, S.INTERRUPTED, now, **gone, resume_epochs=None,
                           message=(f"interrupted while paused: its {lost}; {kept}, and it is not "
                                    "started again unasked: continue it when you want it to go on"))
        else:  # nothing to continue from: said as stopped, to be started again from Train
            ok = self._set(conn, row, S.STOPPED, now, **gone, resume_epochs=None,
                           message=(f"stopped while paused: its {lost} before it finished an epoch, so "
                                    "there is nothing to continue; start it again on Train"))
        return ok

    def _expire_unasked(self, conn, row, now: float, lost: str, crash: bool) -> bool:
        """:meth:`_expire` of a run nobody asked to stop: queued again, interrupted (and queued to
        continue), or failed after ``AUTO_CONTINUES`` deaths; whether it was taken."""
        gone, done, _ = self._held_gone(row)
        if row.state == S.CLAIMED.value and row.auto_continue and crash and row.continues >= AUTO_CONTINUES:
            # the count is shared with deaths while training: a run with finished epochs is left
            # interrupted, as after its last automatic continuation, and only a run that never
            # trained an epoch is called failed
            ok = self._set(conn, row, S.INTERRUPTED if done else S.FAILED, now, **gone, resume_epochs=None,
                           message=(f"the {lost} {AUTO_CONTINUES + 1} times; the weights of epoch {done} are "
                                    "kept and the run can be continued" if done else
                                    f"failed: the {lost} {AUTO_CONTINUES + 1} times before training began "
                                    "(out of memory while loading it?), so it is not queued again; start it "
                                    "again on Train, with a smaller batch or model"))
        elif row.state == S.CLAIMED.value and row.auto_continue:
            # claimed from the queue but never started: nothing ran, so it waits in the queue again,
            # at its head, where it was (its owner, just served, came after everyone else's turn)
            ok = self._set(conn, row, S.QUEUED, now, **gone, queued_at=row.queued_at or now,
                           continues=row.continues + int(crash),
                           **self._merge_info(row, {"first": now, "taken_up": self._taken_up(row, done)}),
                           message="waiting: the process that took it stopped before starting it")
        else:
            msg = (f"the {lost}; "
                   + (f"the weights of epoch {done} are kept and the run can be continued" if done
                      else "it stopped before finishing an epoch"))
            ok = self._set(conn, row, S.INTERRUPTED, now, **gone, message=msg)
            if ok and row.auto_continue and (row.continues < AUTO_CONTINUES or not crash) and row.target_epochs:
                fresh = conn.execute(sa.select(runs_table).where(runs_table.c.run_id == row.run_id)).first()
                more = (row.target_epochs - done) if done else None
                if more is None or more > 0:
                    # its place in the queue kept: queued anew, it went behind its owner's runs queued
                    # after it (a run interrupted at epoch 5 waited for one its student queued later)
                    # and at the head of the queue, where it was: its owner had just been served, so
                    # the turns put it behind every classmate who had not trained yet
                    self._set(conn, fresh, S.QUEUED, now, queued_at=row.queued_at or now,
                              continues=row.continues + int(crash), resume_epochs=more,
                              **self._merge_info(fresh, {"first": now, "taken_up": self._taken_up(row, done)}),
                              message=f"the {lost}; it is queued to " + (
                                  f"continue from epoch {done}, whose weights are kept" if done
                                  else "start again"))
        return ok

    @classmethod
    def _taken_up(cls, row, epoch: int) -> dict[str, int]:
        """The run's ``taken_up`` once more: queued again to go on from ``epoch``."""
        before = cls._info(row.info).get("taken_up") or {}
        return {"times": int(before.get("times", 0)) + 1, "epoch": int(epoch)}

    def claim(self, worker: str, limit: int, run_id: str | None = None) -> Claim | None:
        """Atomically take the next queued run (:meth:`queue`'s order), or ``run_id``, if fewer than
        ``limit`` runs take a slot.

        Expired leases are taken back first, in the same transaction. None when there is nothing to
        take or no free slot.
        """
        with self._tx(serialise=True) as conn:
            self._expire(conn, self._now())
            holding = conn.execute(sa.select(sa.func.count()).select_from(runs_table).where(_TAKES_SLOT)).scalar()
            if holding >= limit:
                return None
            # stamped after the count, so a claim's time is always later than the release it relied on
            # (the history then proves the limit: no instant has more than `limit` claims open)
            now = self._now()
            if run_id:
                take = run_id
            else:
                take = next(iter(self._fair_queue(conn, runs_table.c.state == S.QUEUED.value, _FOR_ANY_WORKER)),
                            None)
            row = take and conn.execute(sa.select(runs_table).where(runs_table.c.run_id == take,
                                                                    runs_table.c.state == S.QUEUED.value)).first()
            if row is None:
                return None
            attempt = row.attempt + 1
            if not self._set(conn, row, S.CLAIMED, now, attempt=attempt, worker=worker, host=socket.gethostname(),
                             pid=os.getpid(), lease_until=now + lease_seconds(), control=None,
                             message="starting"):
                return None
            return Claim(row.run_id, attempt, worker, row.resume_epochs, limit)

    def _finished(self, conn, run_id: str, now: float):
        """The run's row, once expired leases are taken back, if it is finished; else RunError."""
        self._expire(conn, now)
        row = conn.execute(_locked(runs_table.c.run_id == run_id)).first()
        if row is None:
            raise RunError(f"run {run_id} is not in the run database")
        if RunState(row.state) not in FINAL:
            who = f" by {row.worker}" if row.worker else ""
            # plain words: the pages show an error's message as text (ui.guard), backticks and all
            then = " (a worker trains it: the signlab worker command, if none runs)" if row.state == S.QUEUED.value else ""
            raise RunError(f"run {run_id} is {row.state}{who}{then}; only a finished run can be continued")
        return row

    def claim_final(self, run_id: str, worker: str, epochs: int) -> Claim:
        """Claim a finished run directly (``train --resume`` in this process); RunError when it is
        queued, held by someone else, or claimed by another resume a moment ago."""
        now = self._now()
        # a dead holder's run is taken back in a transaction of its own: taken back inside the claim's,
        # the refusal below rolled it back, so "is queued" described a state never saved
        self.expire_leases(now)
        with self._tx(serialise=True) as conn:
            row = self._finished(conn, run_id, now)
            attempt = row.attempt + 1
            # a row changed between the read and the write (a delete takes no claim lock) is not held: a
            # Claim returned anyway had the continuation train a run it did not hold
            if not self._set(conn, row, S.CLAIMED, now, attempt=attempt, worker=worker, host=socket.gethostname(),
                             pid=os.getpid(), lease_until=now + lease_seconds(), control=None, resume_epochs=epochs,
                             auto_continue=False, message="continuing",
                             **self._merge_info(row, self._continuing(row))):
                raise RunError(f"run {run_id} changed while it was being claimed to continue; try again")
            return Claim(run_id, attempt, worker, epochs)

    def heartbeat(self, claim: Claim) -> str | None:
        """Renew the lease; returns the pending control request (stop/pause) or None. LeaseLost if gone.

        The holder's worker row (a job or sweep worker's, when the holder is one) beats too: a worker
        writes its own row only between runs, so one training for longer than two leases dropped out of
        :meth:`workers`. The job manager then took it for a worker still starting (and started none
        for the next run), and the Sweeps page said "Starting the worker…" in the middle of a trial."""
        now = self._now()
        with self._tx() as conn:
            row = self._held(conn, claim)
            renewed = conn.execute(runs_table.update().where(runs_table.c.run_id == claim.run_id,
                                                             runs_table.c.attempt == claim.attempt,
                                                             runs_table.c.worker == claim.worker)
                                   .values(lease_until=now + lease_seconds()))
            if renewed.rowcount != 1:  # taken over since the read above (PostgreSQL reads without a lock)
                raise LeaseLost(f"run {claim.run_id} is no longer held by this process (it was taken over)")
            conn.execute(workers_table.update().where(workers_table.c.worker_id == claim.worker)
                         .values(heartbeat=now))
            return row.control

    def update(self, claim: Claim, state: RunState | None = None, **changes: Any) -> None:
        """The holder records progress (and, with ``state``, moves the run). LeaseLost if not held."""
        with self._tx() as conn:
            now = self._now()  # inside the transaction: after every claim that came before it
            row = self._held(conn, claim)
            new = RunState(state) if state is not None else RunState(row.state)
            if new == S.RUNNING and row.state == S.CLAIMED.value:
                # training starts: what the run was before a continuation no longer stands (a later stop
                # keeps this one's epochs). Not at the claim: a claimer that died before starting left
                # the continuation queued again, and a Stop then called a completed run stopped
                changes = {**changes, "before_continue": None}
            if new == S.COMPLETED:
                # a Stop or Pause too late to act (pressed as the last batch ended): the run was stopped
                # and paused by no one, and its record named the instructor beside "completed"
                info = self._info(row.info)
                changes = {**changes, **{k: None for k in ("stopped_by", "paused_by") if info.get(k)}}
            values = self._merge_info(row, changes)
            if new in FINAL:  # the holder lets go
                values.update(worker=None, pid=None, lease_until=None, control=None, resume_epochs=None)
            if new in HOLDING:
                values["lease_until"] = now + lease_seconds()
            if not self._set(conn, row, new, now, **values):
                raise LeaseLost(f"run {claim.run_id} changed while it was being updated")

    def hand_back(self, claim: Claim) -> None:
        """A holder that is shut down (a worker's SIGTERM: an operator restarting it, systemd, docker)
        gives its run back at once, as if its lease had run out (:meth:`_expire`): a run that never
        started waits in its place again, a running one is interrupted and queued to continue from
        its last finished epoch (SIGTERM had stopped it as if its student had pressed Stop, and it
        never went on). Nothing happens when the run is no longer held by ``claim``."""
        with self._tx(serialise=True) as conn:
            try:
                self._held(conn, claim)
            except LeaseLost:
                return
            now = self._now()
            self._expire(conn, now)  # any other run's lease that ran out, as always (a crash)
            conn.execute(runs_table.update().where(runs_table.c.run_id == claim.run_id,
                                                   runs_table.c.attempt == claim.attempt).values(lease_until=0.0))
            self._expire(conn, now, lost=f"{HOLDER} was shut down (its worker was stopped)", crash=False)

    RESUME_WAIT = "resuming as soon as a slot is free"

    def resume(self, claim: Claim) -> bool:
        """The holder of a paused run whose Resume was pressed takes a slot back: True once the run
        is running again; False (and a message saying why) while ``claim.limit`` runs train. The
        runs queued meanwhile wait for it (:data:`_TAKES_SLOT`). LeaseLost if not held.

        Called a few times a second while it waits, so a full server is read, not locked: the
        serialised transaction (one writer at a time on SQLite) only when a slot looks free."""
        training = sa.select(sa.func.count()).select_from(runs_table).where(
            runs_table.c.state.in_([s.value for s in _TRAINING]))
        if claim.limit is not None:
            with self._reader() as conn:
                full = conn.execute(training).scalar() >= claim.limit
                said = conn.execute(sa.select(runs_table.c.message)
                                    .where(runs_table.c.run_id == claim.run_id)).scalar() == self.RESUME_WAIT
            if full:
                if not said:
                    with self._tx() as conn:
                        self._held(conn, claim)
                        conn.execute(runs_table.update().where(runs_table.c.run_id == claim.run_id,
                                                               runs_table.c.attempt == claim.attempt)
                                     .values(updated=self._now(), message=self.RESUME_WAIT))
                return False
        with self._tx(serialise=True) as conn:
            now = self._now()
            row = self._held(conn, claim)
            if row.state != S.PAUSED.value:
                return True
            if claim.limit is not None and conn.execute(training).scalar() >= claim.limit:
                return False  # taken since it was read
            if not self._set(conn, row, S.RUNNING, now, lease_until=now + lease_seconds(), message="training"):
                raise LeaseLost(f"run {claim.run_id} changed while it was being resumed")
            return True

    def annotate(self, run_id: str, attempt: int | None = None, **changes: Any) -> bool:
        """Change a run's name, owner or its info (test accuracy, …) without touching its state.

        ``attempt``: what a holder learned of its own fit after letting the run go (its test accuracy)
        is written only while no later claim has taken the run: read while the run's owner pressed
        Continue and a spare worker began the next fit, it landed on that fit, whose weights it never
        tested. Returns whether it was written."""
        now = self._now()
        with self._tx() as conn:
            row = conn.execute(_locked(runs_table.c.run_id == run_id)).first()
            if row is None:
                raise RunError(f"run {run_id} is not in the run database")
            if attempt is not None and row.attempt != attempt:
                return False
            conn.execute(runs_table.update().where(runs_table.c.run_id == run_id)
                         .values(updated=now, **self._merge_info(row, changes)))
            return True

    def request(self, run_id: str, action: str, by: str | None = None) -> RunState:
        """Ask a run to ``stop``, ``pause`` or ``resume``. A queued run is stopped at once (it never
        starts); a held one is told through its next heartbeat. A finished run ignores it (a stale
        request can never act on a later continuation). Returns the state after the request.

        ``by``: who asks; a stop by someone other than the run's owner is kept as ``stopped_by``, so
        the student is told their instructor stopped it, not "stopped by request" as if they had; a
        pause, as ``paused_by``."""
        if action not in CONTROLS:
            raise ValueError(action)
        now = self._now()
        with self._tx(serialise=True) as conn:
            row = conn.execute(_locked(runs_table.c.run_id == run_id)).first()
            if row is None:
                raise RunError(f"run {run_id} is not in the run database")
            state = RunState(row.state)
            if action == "stop":
                who = self._merge_info(row, {"stopped_by": by}) if by and by != row.owner else {}
            else:  # a pause names who paused someone else's run (it was silent); a resume, or its owner's pause, clears it
                who = self._merge_info(row, {"paused_by": by if action == "pause" and by and by != row.owner else None})
            if state == S.QUEUED and action == "stop":
                return self._cancel_queued(conn, row, now, who)
            if state in HOLDING:
                control = {"stop": "stop", "pause": "pause", "resume": None}[action]
                if row.control == "stop" and action != "stop":
                    return state  # a stop cannot be taken back
                conn.execute(runs_table.update().where(runs_table.c.run_id == run_id,
                                                       runs_table.c.attempt == row.attempt)
                             .values(control=control, updated=now, **who))
            return state

    def _cancel_queued(self, conn, row, now: float, who: dict[str, Any]) -> RunState:
        """Stop a queued run before it starts. A queued continuation of a finished run goes back to the
        state and words it had (a completed run read "stopped: cancelled before it started", beside
        its epochs and test accuracy); a run never trained, or one queued again after its holder
        vanished, is stopped, keeping what it finished."""
        back = self._put_back(conn, row, now, CANCELLED_CONTINUATION)
        if back is not None:
            return back
        done = row.epochs_completed
        message = (f"cancelled before it continued; the weights of epoch {done} are kept" if done
                   else "cancelled before it started")
        self._set(conn, row, S.STOPPED, now, message=message, resume_epochs=None, **who)
        return S.STOPPED

    def enqueue_continue(self, run_id: str, epochs: int, max_active: int | None = None) -> None:
        """Queue ``epochs`` more epochs of a finished run (RunError when it is not finished;
        QuotaError when its owner has ``max_active`` runs queued or training). What the run was is
        kept, for a Stop before the continuation starts (:meth:`_cancel_queued`)."""
        now = self._now()
        with self._tx(serialise=True) as conn:
            row = self._finished(conn, run_id, now)
            self._check_active(conn, row.owner, max_active)
            self._set(conn, row, S.QUEUED, now, queued_at=now, resume_epochs=int(epochs), continues=0,
                      auto_continue=True, target_epochs=row.epochs_completed + int(epochs),
                      message="waiting to continue",
                      **self._merge_info(row, self._continuing(row)))

    def _before(self, row) -> dict[str, Any]:
        """What a finished run was, kept while a continuation of it is queued or claimed: a Stop before it
        starts (:meth:`_cancel_queued`) or a start that fails (:meth:`give_up_continuation`) puts it back."""
        # its words without an earlier continuation's ending (each continue-and-stop added them once more)
        message = row.message or ""
        for words in (CANCELLED_CONTINUATION, CONTINUATION_FAILED):
            message = message.split(words)[0]
        info = self._info(row.info)
        return {"state": row.state, "message": message, "target_epochs": row.target_epochs,
                **{k: info.get(k) for k in _ENDING_INFO}}

    def _continuing(self, row) -> dict[str, Any]:
        """The info changes of a run its user continues: its last ending's words cleared, what it was kept."""
        return {**dict.fromkeys(_ENDING_INFO), "before_continue": self._before(row)}

    def give_up_continuation(self, claim: Claim, why: str) -> RunState | None:
        """A continuation this process claimed could not start (its data gone, its weights torn): nothing
        of it ran, so the run goes back to the state it had, its words saying why (a completed run was
        failed, its epochs and test accuracy standing). Returns that state; None when the claim is not
        a continuation that is yet to train (the caller fails the run), LeaseLost when not held."""
        with self._tx() as conn:
            row = self._held(conn, claim)
            if row.state != S.CLAIMED.value or not claim.resume_epochs:
                return None
            return self._put_back(conn, row, self._now(), CONTINUATION_FAILED + why, worker=None, pid=None,
                                  lease_until=None, control=None)

    def _put_back(self, conn, row, now: float, ending: str, **values: Any) -> RunState | None:
        """Move a run whose continuation never trained back to the finished state it had (its
        ``before_continue``), its words followed by ``ending``; None when it has no such state.
        LeaseLost when the row changed meanwhile."""
        before = self._info(row.info).get("before_continue")
        if not isinstance(before, dict) or before.get("state") not in {f.value for f in FINAL}:
            return None
        back = RunState(before["state"])
        changes = {**{k: before.get(k) for k in _ENDING_INFO}, "before_continue": None}
        if not self._set(conn, row, back, now, message=f"{before.get('message') or back.value}{ending}",
                         resume_epochs=None, target_epochs=before.get("target_epochs", row.epochs_completed),
                         **values, **self._merge_info(row, changes)):
            raise LeaseLost(f"run {row.run_id} changed while its continuation was being undone")
        return back

    @staticmethod
    def _check_active(conn, owner: str | None, limit: int | None) -> None:
        """QuotaError when ``owner`` has ``limit`` runs queued or training. Called inside the write
        that adds one: SQLite's writes are one at a time, PostgreSQL's serialised ones take the
        advisory lock, so two starts at one instant cannot both count the runs before the other's."""
        if limit is None:
            return
        active = conn.execute(sa.select(sa.func.count()).select_from(runs_table).where(
            runs_table.c.owner == owner, runs_table.c.state.in_([s.value for s in ACTIVE]))).scalar_one()
        if active >= limit:
            raise QuotaError(active_refusal(active, limit))

    @staticmethod
    def _check_count(conn, owner: str | None, limit: int | None) -> None:
        """QuotaError when ``owner`` has ``limit`` runs in all; in the insert's write, as
        :meth:`_check_active`."""
        if limit is None:
            return
        runs = conn.execute(sa.select(sa.func.count()).select_from(runs_table)
                            .where(runs_table.c.owner == owner)).scalar_one()
        if runs >= limit:
            raise QuotaError(runs_refusal(runs, limit))

    # -- the queue
    @classmethod
    def _fair_queue(cls, conn, *where: Any) -> list[str]:
        """Queued run ids (those matching ``where``) in the order they start: owners take turns.

        A run's turn is its place among its owner's queued runs; equal turns go first to the owner
        served longest ago (whose last claim is oldest, or who has none), then by the time they were
        queued. So the order only changes when a run is claimed or queued. First come, first served
        let a student who queued three runs hold a one-slot class server for all three while a
        classmate's single run waited. Runs an instructor moved to the head (:meth:`move_first`), and
        runs taken back from a holder that died or was shut down (:meth:`_expire`: they were at the
        head, training), go before all of them, the latest first; that lasts while the run waits from
        the time it was queued then (a run queued again later, to continue, takes its turn again).
        """
        found = conn.execute(sa.select(runs_table.c.run_id, runs_table.c.owner, runs_table.c.queued_at,
                                       runs_table.c.info).where(*where)
                             .order_by(runs_table.c.queued_at, runs_table.c.run_id)).all()
        moved: dict[str, float] = {}
        for rid, _, queued_at, info in found:
            at = cls._info(info).get("first")
            if isinstance(at, (int, float)) and at >= (queued_at or 0.0):
                moved[rid] = at
        rows = [(rid, owner) for rid, owner, _, _ in found if rid not in moved]
        if len({owner for _, owner in rows}) > 1:
            served = dict(conn.execute(
                sa.select(runs_table.c.owner, sa.func.max(history_table.c.at))
                .join(history_table, history_table.c.run_id == runs_table.c.run_id)
                .where(history_table.c.to_state == S.CLAIMED.value, runs_table.c.owner.in_({o for _, o in rows}))
                .group_by(runs_table.c.owner)).all())
        else:  # one owner (a machine of one's own): the time order, without reading the history
            served = {}
        turns: list[tuple[int, float, int, str]] = []
        seen: dict[str | None, int] = {}
        for k, (rid, owner) in enumerate(rows):
            seen[owner] = seen.get(owner, 0) + 1
            turns.append((seen[owner], served.get(owner) or 0.0, k, rid))
        return sorted(moved, key=lambda rid: -moved[rid]) + [t[-1] for t in sorted(turns)]

    def move_first(self, run_id: str) -> None:
        """Put a queued run at the head of the queue, before the owners' turns (an instructor's "Start
        next": a run to show the class, or one that must not wait). RunError when it is not waiting."""
        now = self._now()
        with self._tx(serialise=True) as conn:
            row = conn.execute(sa.select(runs_table).where(runs_table.c.run_id == run_id)).first()
            if row is None:
                raise RunError(f"run {run_id} is not in the run database")
            if row.state != S.QUEUED.value:
                raise RunError(f"run {run_id} is not waiting in the queue: it is {row.state}")
            conn.execute(runs_table.update().where(runs_table.c.run_id == run_id, runs_table.c.state == S.QUEUED.value)
                         .values(updated=now, **self._merge_info(row, {"first": now})))

    def queue(self) -> list[str]:
        """Queued run ids in the order they will start (:meth:`_fair_queue`)."""
        with self._snapshot() as conn:
            return self._fair_queue(conn, runs_table.c.state == S.QUEUED.value)

    def queue_position(self, run_id: str) -> int | None:
        """1 for the next run to start; None when the run is not waiting."""
        order = self.queue()
        return order.index(run_id) + 1 if run_id in order else None

    @contextmanager
    def _snapshot(self) -> Iterator[sa.Connection]:
        """A read transaction that sees one state of the database in all its queries (SQLite in WAL
        mode: from its first read on; PostgreSQL: REPEATABLE READ)."""
        with self._reader() as conn:
            if not self.is_sqlite:
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                yield conn

    def capacity(self, kind: str = "worker") -> Capacity:
        """How many runs wait, how many hold a slot, and how many live workers of ``kind`` are spare,
        read in one snapshot. A worker is spare when it has no current run or its current run no longer
        holds a slot (its test-set evaluation runs after the release). Read in separate queries, a
        worker that claimed a run in between counted neither as spare nor against the free slots, and
        the job manager started a second worker for a run that was already taken."""
        with self._snapshot() as conn:
            waiting = conn.execute(sa.select(sa.func.count()).select_from(runs_table).where(
                runs_table.c.state == S.QUEUED.value, _FOR_ANY_WORKER)).scalar()
            holding = conn.execute(sa.select(sa.func.count()).select_from(runs_table).where(_TAKES_SLOT)).scalar()
            held = set(conn.execute(sa.select(runs_table.c.run_id)
                                    .where(runs_table.c.state.in_([s.value for s in HOLDING]))).scalars())
            live = [self._worker_dict(r) for r in conn.execute(self._live_workers(kind))]
        # a worker whose run is paused is not spare: it waits in that run's pause
        return Capacity(waiting=int(waiting), holding=int(holding),
                        spare=sum(1 for w in live if w.get("current") not in held), workers=live)

    def counts(self) -> dict[str, int]:
        """How many runs are in each state."""
        with self._reader() as conn:
            return {s: n for s, n in conn.execute(sa.select(runs_table.c.state, sa.func.count())
                                                  .group_by(runs_table.c.state))}

    # -- server settings an instructor changes from the dashboard (for every server of the database)
    def settings(self) -> dict[str, Any]:
        with self._reader() as conn:
            out = {}
            for key, value in conn.execute(sa.select(settings_table.c.key, settings_table.c.value)):
                try:
                    out[key] = json.loads(value)
                except ValueError:
                    continue
            return out

    def save_settings(self, values: dict[str, Any]) -> None:
        with self._tx() as conn:
            for key, value in values.items():
                conn.execute(settings_table.delete().where(settings_table.c.key == key))
                conn.execute(settings_table.insert().values(key=key, value=json.dumps(value)))

    def forget_settings(self, keys: Iterable[str]) -> None:
        """Drop the saved ``keys``: the class follows the server's settings for them again."""
        with self._tx() as conn:
            conn.execute(settings_table.delete().where(settings_table.c.key.in_(list(keys))))

    # -- workers (processes that claim runs or run sweeps), for liveness across hosts
    def _now(self) -> float:
        """The time leases, heartbeats and every state change are stamped and read with: the database
        server's clock on PostgreSQL (read when the store opened, and carried on by this machine's
        monotonic clock), this machine's for SQLite (a file here)."""
        if self._db_time is None:
            return time.time()
        return self._db_time + (time.monotonic() - self._mono)

    def clock_offset(self) -> float:
        """Seconds this machine's clock is ahead of the database server's (negative: behind), 0 for
        SQLite (a file on this machine). Leases are in the database's time (:meth:`_now`, which this
        reads when the store opens); a worker checks the offset too (``worker.check_clock``), for the
        times it writes into runs. When leases were stamped with each holder's clock, a worker whose
        clock was 60 s behind the server's had each run it claimed taken back as expired, four times."""
        if not self.url.startswith("postgresql"):
            return 0.0
        with self._snapshot() as conn:
            before = time.time()
            theirs = float(conn.execute(sa.text("SELECT EXTRACT(EPOCH FROM clock_timestamp())")).scalar_one())
            after = time.time()
        return (before + after) / 2 - theirs

    def register_worker(self, worker_id: str, kind: str, study: str | None = None, **info: Any) -> None:
        now = self._now()
        with self._tx() as conn:
            conn.execute(workers_table.delete().where(workers_table.c.worker_id == worker_id))
            conn.execute(workers_table.insert().values(worker_id=worker_id, kind=kind, host=socket.gethostname(),
                                                       pid=os.getpid(), study=study, started=now, heartbeat=now,
                                                       info=json.dumps(info)))

    def worker_beat(self, worker_id: str, **info: Any) -> None:
        with self._tx() as conn:
            values: dict[str, Any] = {"heartbeat": self._now()}
            if info:
                old = conn.execute(sa.select(workers_table.c.info)
                                   .where(workers_table.c.worker_id == worker_id)).scalar()
                values["info"] = json.dumps({**self._info(old), **info})
            conn.execute(workers_table.update().where(workers_table.c.worker_id == worker_id).values(**values))

    def unregister_worker(self, worker_id: str) -> None:
        with self._tx() as conn:
            conn.execute(workers_table.delete().where(workers_table.c.worker_id == worker_id))

    def _live_workers(self, kind: str | None = None, study: str | None = None) -> sa.Select:
        """Live workers: a heartbeat within two leases (from any host)."""
        q = sa.select(workers_table).where(workers_table.c.heartbeat >= self._now() - 2 * lease_seconds())
        if kind:
            q = q.where(workers_table.c.kind == kind)
        if study:
            q = q.where(workers_table.c.study == study)
        return q

    @classmethod
    def _worker_dict(cls, row: Any) -> dict[str, Any]:
        d = dict(row._mapping)
        d.update(cls._info(d.pop("info")))
        return d

    def workers(self, kind: str | None = None, study: str | None = None) -> list[dict[str, Any]]:
        """Live workers: a heartbeat within two leases (from any host)."""
        with self._reader() as conn:
            return [self._worker_dict(r) for r in conn.execute(self._live_workers(kind, study))]


# --------------------------------------------------------------------------- one store per database
_STORES: dict[str, RunStore] = {}
_STORES_LOCK = threading.Lock()


DATABASE_NOTE = "signlab-database.txt"  # in a runs folder whose runs live in a database named for it


def store_for(runs_dir: Path | str, url: str | None = None) -> RunStore:
    """The process's RunStore for ``runs_dir`` (or the ``url``/``SIGNLAB_DB`` database), opened once."""
    key = db_url_for(runs_dir, url)
    with _STORES_LOCK:
        store = _STORES.get(key)
        if store is None:  # its folder is checked once, on opening (store_for runs many times a page)
            given = (url or os.environ.get("SIGNLAB_DB") or "").strip()
            _check_named_database(given, key)
            _database_note(Path(runs_dir), key, given)
            store = _STORES[key] = RunStore(key)
        return store


def _database_note(runs_dir: Path, url: str, given: str) -> None:
    """Keep, in the runs folder, which database its runs live in when one was named (a class's
    PostgreSQL), and refuse the folder's own SQLite file where that note names another. A teacher
    at the server's shell who left SIGNLAB_DB out got a new SQLite file there: every run read as
    interrupted, and ``stop`` of a run training said "nothing to stop" and exited 0. The note holds
    the URL without its password; a folder that cannot be written keeps no note. Written atomically
    and read without following a link, as every file of the runs folder is: a planted link must
    neither be written through nor have its target's text shown in the refusal."""
    note = runs_dir / DATABASE_NOTE
    own = own_db_url(runs_dir)
    if given:
        named = _read_note(note)
        if named and url != own and named != mask_url(url):
            # another database named for the folder: a shell with last term's SIGNLAB_DB took the note
            # over (and imported the runs there), and the refusals named that database from then on
            raise SignlabError(f"the runs in {runs_dir} live in the database {named} ({DATABASE_NOTE} there says "
                               f"so), not {mask_url(url)}; to move them to it, delete {note} first")
        try:
            if url == own:  # the folder's own file, named: the note (of an earlier database) goes
                note.unlink(missing_ok=True)
            elif runs_dir.is_dir() and not named:
                atomic_write_bytes(note, (mask_url(url) + "\n").encode())
        except (OSError, SignlabError):
            pass
        return
    named = _read_note(note)
    if named and named != mask_url(own):
        password = "" if named.startswith("sqlite") else ", with its password"  # a SQLite file has none
        raise SignlabError(f"the runs in {runs_dir} live in the database {named} ({DATABASE_NOTE} there says so): "
                           f"set SIGNLAB_DB (or --db) to it{password}; without it they would be read "
                           "from a new database of this folder's own, every one as interrupted")


def keep_database_note(runs_dir: Path | str) -> None:
    """Write the runs folder's database note where a database is named and the folder has none yet:
    a store opened before its folder existed (the first ``train`` into a new folder) wrote none, and
    the next command without ``SIGNLAB_DB`` made a SQLite file of its own there."""
    given = os.environ.get("SIGNLAB_DB", "").strip()
    root = Path(runs_dir)
    if given and not (root / DATABASE_NOTE).exists() and not (root / DATABASE_NOTE).is_symlink():
        try:
            _database_note(root, db_url_for(root, given), given)
        except SignlabError:
            pass


def _read_note(note: Path) -> str | None:
    """The database URL a runs folder's note names; None where there is none, or it reads as no URL."""
    try:
        with open(note, encoding="utf-8", errors="replace", opener=nofollow_opener) as f:
            text = f.read(600).strip()
    except (OSError, SignlabError):
        return None
    return text if "://" in text and len(text) < 500 and text.isprintable() else None


def _unknown_kind(url: str) -> str:
    return (f"cannot open the run database {mask_url(url)}: unknown kind of database {url.split(':', 1)[0]!r}; "
            "give a file path, sqlite:////path/to/runs.db or postgresql://user@host/db")


def _check_named_database(given: str, url: str) -> None:
    """A database the user named (``given``, opened as ``url``) must be of a kind SQLAlchemy knows
    (checked without connecting: ``evaluate --db foo://bar`` went on, as commands that open no run
    database never looked), and a SQLite file's folder must exist: a mistyped one was made, with an
    empty database in it, and the class's runs vanished from every page without a word. The default
    database's folder is the runs folder, made on first use."""
    if given:
        try:
            sa.engine.make_url(url).get_dialect()
        except sa.exc.NoSuchModuleError as err:
            raise SignlabError(_unknown_kind(url)) from err
        except (sa.exc.ArgumentError, ValueError) as err:  # ValueError: a port that is not a number
            raise SignlabError(f"cannot open the run database {mask_url(given)} (SIGNLAB_DB or --db): "
                               "not a file path or a database URL") from err
    if given and url.startswith("sqlite:///"):
        folder = Path(url.removeprefix("sqlite:///")).parent
        if not folder.is_dir():
            raise SignlabError(f"cannot open the run database {given} (SIGNLAB_DB or --db): the folder {folder} "
                               f"does not exist; create it, or correct the path")


def check_named_database() -> None:
    """SignlabError when ``SIGNLAB_DB`` names a SQLite file in a folder that does not exist. Every
    command (after ``--db``) and the dashboard check it first, as they check the other settings:
    ``runs`` found no runs folder and listed nothing, without a word about the database."""
    given = os.environ.get("SIGNLAB_DB", "").strip()
    _check_named_database(given, db_url_for(".", given))


def forget_stores() -> None:
    """Close every open store (tests; a forked child must not reuse its parent's connections)."""
    with _STORES_LOCK:
        for s in _STORES.values():
            s.dispose()
        _STORES.clear()


class Heartbeat:
    """Renews a claim's lease from a daemon thread and reports what the run's controller asked.

    ``lost`` is set when the lease was taken (the holder must stop writing); ``control`` holds the
    latest request (``stop`` / ``pause`` / None).

    The holder calls :meth:`release` just before it moves the run to a final state. From then on a
    beat that finds the run held by no one is the holder's own doing, not a takeover: without this,
    a beat landing between that update and the end of the thread reported a finished run as lost.
    """

    def __init__(self, store: RunStore, claim: Claim, interval: float | None = None) -> None:
        self.store, self.claim = store, claim
        self.interval = interval or heartbeat_seconds()
        self.lost = threading.Event()
        self.control: str | None = None
        self._stop = threading.Event()
        self._released = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"lease-{claim.run_id}", daemon=True)

    def __enter__(self) -> "Heartbeat":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def release(self) -> None:
        """The holder is about to let go of the run (a final state): stop renewing the lease.

        If the lease had in fact been taken, the holder's own update raises LeaseLost and the
        holder sets ``lost`` itself."""
        self._released.set()

    def keep(self) -> None:
        """The final update did not happen (the database was away): renew the lease again, or a holder
        still alive, retrying or failing the run, lost it to the next expiry as if it had died."""
        self._released.clear()

    def beat(self) -> str | None:
        try:
            self.control = self.store.heartbeat(self.claim)
        except LeaseLost:
            if not self._released.is_set():
                self.lost.set()
        except SignlabError:  # the database is briefly unavailable: try again next beat
            pass
        return self.control

    def _loop(self) -> None:
        while not self._stop.wait(self.interval) and not self.lost.is_set():
            if not self._released.is_set():  # released: idle until the holder ends it (or keeps the lease)
                self.beat()

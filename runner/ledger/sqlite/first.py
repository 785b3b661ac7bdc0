"""The first registration into a ledger with no job: the expansion and SQLite's writes side by side.

A million-job first registration is two halves of about equal cost: building the jobs (Python: the
expansion, each job's JSON) and writing them (SQLite: rows, targets, two unique indexes, the commit).
Here a worker thread consumes the job stream, a batch of jobs at a time, and turns each chunk into JSON
texts (arrays of [key, request, variables(, output)]: the request's and the variables' JSON written in as
they are, the key and the output as JSON strings); the calling thread, which owns the transaction, inserts
a chunk with one ``INSERT … SELECT … FROM json_each(?)`` per run of jobs sharing a model, repeat and
estimate (bound as parameters, never passed through JSON). SQLite runs such a statement without Python's
GIL, so the expansion of the next chunk goes on meanwhile. ``json_extract`` gives a string back decoded and
an object back as the very text it was given: the rows are those of the one-row-at-a-time path, byte for
byte (``tests/integration/test_ledger_first_register_equivalence.py`` compares every column). Jobs this
cannot carry exactly (a NUL character, which SQLite's JSON functions cut a string at; a NaN or an infinity,
which SQLite's JSON does not read; many short runs; an SQLite without JSON) are written one bound row at a
time, as before.

Everything stays in the caller's one transaction: the unique indexes are dropped first and built after
the rows (a key or an output name given twice fails the build, nothing planned); an error in the job stream
reaches the caller from :func:`first`, the worker is stopped and the transaction rolls back. Foreign keys
are off meanwhile (:func:`foreign_keys_off`, set before ``BEGIN``): SQLite refuses a many-row insert into
``jobs`` without the unique index on ``key`` that ``attempts``, ``renames`` and ``rejections`` point at,
and every reference written here (targets, targeted) is an id this transaction has just inserted.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import operator
import queue
import re
import sqlite3
import threading
from collections.abc import Callable, Iterator
from json.encoder import encode_basestring
from typing import Any

from runner.errors import ManifestError
from runner.jobs import JobSpec, canonical_json
from runner.ledger.connection import Connection

__all__ = ["FIRST_BATCH", "first", "foreign_keys_off", "shared", "vars_json"]

#: Jobs per chunk of a first registration (at least the caller's batch): fewer hand-overs between the threads.
#: A chunk holds the strings of its jobs (about 400 bytes a job), never the jobs themselves.
FIRST_BATCH = 16_384
_QUEUED = 2  # chunks built ahead of the writer (bounds memory)
_KEY_NAME = ".mp4"  # what follows the key in the default output name

# The unique indexes a first registration builds once, after its rows (as ``_V6_scale`` creates them).
_UNIQUE_INDEXES = (
    ("jobs_key", "CREATE UNIQUE INDEX jobs_key ON jobs (key)"),
    ("targets_output", "CREATE UNIQUE INDEX targets_output ON targets (output, manifest)"),
)
_JOBS_JSON = (
    "INSERT INTO jobs (id, key, model, request_json, vars_json, repeat, estimated_usd, created_at, updated_at)"
    " SELECT ?1 + key + 1, json_extract(value, '$[0]'), ?2, json_extract(value, '$[1]'), json_extract(value, '$[2]'),"
    " ?3, ?4, ?5, ?5 FROM json_each(?6)"
)
_JOBS_ROWS = (
    "INSERT INTO jobs (id, key, model, request_json, vars_json, repeat, estimated_usd, created_at, updated_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_TARGETS_JSON = ("INSERT INTO targets (manifest, job_id, output, gen) SELECT ?1, ?2 + key + 1, json_extract(value, '$[3]'), ?3"
                 " FROM json_each(?4)")
# Python's json writes these for non-finite floats; SQLite's JSON does not read them (a string may hold them).
_NOT_JSON = re.compile(r"[\[:,]-?(?:NaN|Infinity)")
_TARGETS_ROWS = "INSERT INTO targets (manifest, job_id, output, gen) VALUES (?, ?, ?, ?)"
_TARGETS_KEYED = ("INSERT INTO targets (manifest, job_id, output, gen) SELECT ?, id, key || ?, ? FROM jobs"
                  " WHERE id > ? AND id <= ? ORDER BY id")
_TARGETED = ("INSERT INTO targeted (manifest, job_id, output, first_at, dropped_at)"
             " SELECT manifest, job_id, output, ?, NULL FROM targets WHERE manifest = ? AND job_id > ? ORDER BY job_id")


@contextlib.contextmanager
def foreign_keys_off(conn: Connection, off: bool) -> Iterator[None]:
    """``PRAGMA foreign_keys=OFF`` for the transaction opened inside (a no-op within one), given back after."""
    if not off:
        yield
        return
    with conn.lock:
        raw = conn.db.conn
        enforced = int(raw.execute("PRAGMA foreign_keys").fetchone()[0])
        raw.execute("PRAGMA foreign_keys=OFF")
        try:
            yield
        finally:
            raw.execute(f"PRAGMA foreign_keys={'ON' if enforced else 'OFF'}")


def first(conn: sqlite3.Connection, name: str, gen: int, jobs: Iterator[JobSpec], batch: int, now: float) -> int:
    """Plan ``jobs`` into a ledger with no job (the caller's transaction; foreign keys off): returns how many.

    The jobs take the ids 1, 2, … in the order given, their targets and ``targeted`` rows follow, and the
    unique indexes are built once at the end. A key or an output name given twice is refused, nothing planned.
    """
    for index, _ in _UNIQUE_INDEXES:
        conn.execute(f"DROP INDEX {index}")
    given = 0
    for payload in _built(jobs, max(batch, FIRST_BATCH), batch, _reads_json(conn)):
        count = _write(conn, name, gen, payload, given, now)
        conn.execute(_TARGETED, (now, name, given))
        given += count
    try:
        for _, create in _UNIQUE_INDEXES:
            conn.execute(create)
    except sqlite3.IntegrityError:
        keys = int(conn.execute("SELECT count(DISTINCT key) FROM jobs").fetchone()[0])
        outputs = int(conn.execute("SELECT count(DISTINCT output) FROM targets").fetchone()[0])
        raise shared(name, given, min(keys, outputs)) from None
    return given


def _reads_json(conn: sqlite3.Connection) -> bool:
    """Whether this SQLite has its JSON functions (built in since 3.38; an option before)."""
    try:
        return bool(conn.execute("SELECT json_extract(value, '$[0]') = 'a' FROM json_each('[[\"a\"]]')").fetchone()[0])
    except sqlite3.OperationalError:  # pragma: no cover - SQLite built without JSON
        return False


def shared(name: str, given: int, kept: int) -> ManifestError:
    return ManifestError(
        f"manifest {name!r}: {given} jobs map to only {kept} distinct jobs and "
        "output files (two jobs share a key or an output name); nothing was planned"
    )


# ------------------------------------------------------------------ the writer (the caller's thread)

def _write(conn: sqlite3.Connection, name: str, gen: int, parts: list[_Part], given: int, now: float) -> int:
    """Insert one chunk's jobs (ids after ``given``) and their targets; returns how many."""
    start = given
    for part in parts:
        if part.text is not None:
            conn.execute(_JOBS_JSON, (start, part.model, part.repeat, part.estimate, now, part.text))
            if not part.keyed:
                conn.execute(_TARGETS_JSON, (name, start, gen, part.text))
        else:
            rows = part.rows or []
            conn.executemany(_JOBS_ROWS, [(job_id, *row[:6], now, now) for job_id, row in enumerate(rows, start + 1)])
            if not part.keyed:
                conn.executemany(_TARGETS_ROWS, [(name, job_id, row[6], gen)
                                                 for job_id, row in enumerate(rows, start + 1)])
        if part.keyed:  # the default name (``{key}.mp4``): made from the rows just inserted, in SQLite
            conn.execute(_TARGETS_KEYED, (name, _KEY_NAME, gen, start, start + part.count))
        start += part.count
    return start - given


# ------------------------------------------------------------------ the builder (a worker thread)

class _Part:
    """Consecutive jobs of a chunk: a JSON array (``text``) of jobs of one model, repeat and estimate, or rows."""

    __slots__ = ("count", "estimate", "keyed", "model", "repeat", "rows", "text", "texts")

    def __init__(self, keyed: bool, count: int, model: str = "", repeat: int = 0, estimate: float = 0.0,
                 texts: list[str] | None = None, rows: list[tuple[Any, ...]] | None = None) -> None:
        self.keyed = keyed  # every output is the default name
        self.count = count
        self.model, self.repeat, self.estimate = model, repeat, estimate
        self.texts = texts  # the array's items, a run of them joined by "," each
        self.text: str | None = None  # "[" + the items + "]", when the chunk is complete
        self.rows = rows


_END = object()


def _built(jobs: Iterator[JobSpec], size: int, batch: int, as_json: bool) -> Iterator[list[_Part]]:
    """The chunks of ``jobs`` as payloads, built by a worker thread a little ahead of the caller.

    An exception of the job stream (or of the building) is raised here, in the caller's thread; when the
    caller stops early (an error, an interrupt), the worker is told to stop and is waited for.
    """
    ready: queue.Queue[object] = queue.Queue(_QUEUED)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for payload in _payloads(jobs, size, batch, as_json):
                if stop.is_set() or not put(payload):
                    return
            put(_END)
        except BaseException as exc:  # handed to the caller's thread, raised there
            put(exc)

    worker = threading.Thread(target=work, name="runner-first-plan", daemon=True)
    worker.start()
    try:
        while (item := ready.get()) is not _END:
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        with contextlib.suppress(queue.Empty):
            while True:
                ready.get_nowait()
        worker.join()


def _payloads(jobs: Iterator[JobSpec], size: int, batch: int, as_json: bool) -> Iterator[list[_Part]]:
    """Chunks of ``size`` jobs as parts, taken ``batch`` jobs at a time: the jobs are let go once their strings
    are taken (a chunk holds strings, never more than a batch of jobs)."""
    islice = itertools.islice
    while True:
        parts: list[_Part] = []
        taken = 0
        while taken < size:
            specs = list(islice(jobs, min(batch, size - taken)))
            if not specs:
                break
            taken += len(specs)
            _add(parts, specs, as_json)
            del specs
        for part in parts:
            if part.texts is not None:
                part.text = "[" + ",".join(part.texts) + "]"
                part.texts = None
        if parts:
            yield parts
        if taken < size:
            return


def _add(parts: list[_Part], specs: list[JobSpec], as_json: bool) -> None:
    """Add ``specs`` to the chunk's parts: as JSON (the request's and the variables' JSON written in as they are:
    ``json_extract`` gives an object back as the very text it was given; the key and the output as JSON strings),
    else (no JSON in this SQLite, many short runs, a NaN or an infinity, a NUL) as rows."""
    keyed = all(spec.output == spec.key + _KEY_NAME for spec in specs)
    groups = [(run, len(list(members))) for run, members in itertools.groupby(specs, _RUN)]
    if not as_json or len(groups) > max(1, len(specs) // 64):
        _add_rows(parts, specs, keyed)
        return
    enc, json_of, variables_of = encode_basestring, canonical_json, vars_json
    if keyed:
        texts = ["[" + enc(spec.key) + "," + (spec.request_json or json_of(spec.request)) + ","
                 + variables_of(spec.vars) + "]" for spec in specs]
    else:
        texts = ["[" + enc(spec.key) + "," + (spec.request_json or json_of(spec.request)) + ","
                 + variables_of(spec.vars) + "," + enc(spec.output) + "]" for spec in specs]
    start = 0
    for (model, repeat, estimate), count in groups:
        items = ",".join(texts[start:start + count])
        # A NUL: SQLite cuts a string it reads from JSON there. A NaN or an infinity: not JSON to SQLite.
        if "\\u0000" in items or (("NaN" in items or "Infinity" in items) and _NOT_JSON.search(items)):
            _add_rows(parts, specs[start:start + count], keyed)
        else:
            last = parts[-1] if parts else None
            if (last is not None and last.texts is not None and last.keyed == keyed and last.model == model
                    and last.repeat == repeat and last.estimate == estimate):  # (0.0 and -0.0: a REAL column stores 0.0)
                last.texts.append(items)
                last.count += count
            else:
                parts.append(_Part(keyed, count, model, repeat, estimate, texts=[items]))
        start += count


def _add_rows(parts: list[_Part], specs: list[JobSpec], keyed: bool) -> None:
    rows = [(spec.key, spec.model, spec.request_json or canonical_json(spec.request), vars_json(spec.vars),
             spec.repeat, spec.estimated_usd, spec.output) for spec in specs]
    parts.append(_Part(keyed, len(rows), rows=rows))


_RUN = operator.attrgetter("model", "repeat", "estimated_usd")


# Template variables: YAML dates and the like become strings rather than failing.
_vars_encoder = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
# The same encoding through json's C encoder made once (``JSONEncoder.encode`` builds one per call: half the
# cost of a job's row in a million-job registration). No circular-reference check: variables come from
# YAML/CSV values that the expansion has already walked (a cycle would not have got this far).
_c_encoder = getattr(json.encoder, "c_make_encoder", None)
_vars_c = None if _c_encoder is None else _c_encoder(None, str, json.encoder.encode_basestring, None, ":", ",",
                                                     True, False, True)


def vars_json(value: dict[str, Any]) -> str:
    """``_vars_encoder.encode(value)``, byte for byte: a job's variables as the ledger stores them.

    Variables whose values are all strings (a matrix of texts: the usual case) go through a function made
    once per set of names: the JSON around the values written out in sorted order, each value through the
    encoder's own string encoding (which refuses anything but a string: then the encoder does it all)."""
    if _vars_c is None:  # pragma: no cover - CPython always has the C encoder
        return _vars_encoder.encode(value)
    names = tuple(value)
    texts = _texts.get(names)
    if texts is None:
        texts = _texts_of(names)
    if texts is not None:
        try:
            return texts(value)
        except TypeError:  # a value that is not a string
            pass
    return "".join(_vars_c(value, 0))


_Texts = Callable[[dict[str, Any]], str]
_texts: dict[tuple[Any, ...], _Texts | None] = {}


def _texts_of(names: tuple[Any, ...]) -> _Texts | None:
    """The JSON of a dict of these names whose values are all strings, as a function of the dict (None: not made)."""
    found: _Texts | None = None
    if all(type(name) is str for name in names) and len(names) <= 4:
        enc = encode_basestring
        order = sorted(names)
        p = ["{", *("," * (i > 0) + enc(name) + ":" for i, name in enumerate(order)), "}"]
        k = order + [""] * (4 - len(order))
        if len(order) == 0:
            found = lambda value: "{}"  # noqa: E731
        elif len(order) == 1:
            found = lambda value: p[0] + p[1] + enc(value[k[0]]) + p[2]  # noqa: E731
        elif len(order) == 2:
            found = lambda value: p[0] + p[1] + enc(value[k[0]]) + p[2] + enc(value[k[1]]) + p[3]  # noqa: E731
        elif len(order) == 3:
            found = lambda value: (p[0] + p[1] + enc(value[k[0]]) + p[2] + enc(value[k[1]]) + p[3]  # noqa: E731
                                   + enc(value[k[2]]) + p[4])
        else:
            found = lambda value: (p[0] + p[1] + enc(value[k[0]]) + p[2] + enc(value[k[1]]) + p[3]  # noqa: E731
                                   + enc(value[k[2]]) + p[4] + enc(value[k[3]]) + p[5])
    if len(_texts) < 256:
        _texts[names] = found
    return found

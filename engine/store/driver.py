"""Statements run straight on the database driver, compiled once by SQLAlchemy.

For the handful of small statements every provider event runs, SQLAlchemy's per-execution
work costs several times what the database takes to run them; see DriverStatement.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, cast

from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from sqlalchemy.sql import ClauseElement, bindparam
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import BindParameter

_DRIVER_CONNECTION = "driver_connection"


class DriverStatement:
    """A Core statement compiled once per dialect and set of parameters, run on the driver's cursor.

    For the small statements of every provider event, SQLAlchemy's per-execution work (cache
    key, parameter processing, result objects) costs several times what the database takes to
    run them. Here that work is done once, by SQLAlchemy's own compiler: the SQL, the parameter
    order and each type's conversion (UTC datetimes, say). Errors are SQLAlchemy's (IntegrityError
    and the rest). Rows come back as plain tuples, without result conversion: select only columns
    that need none (strings, numbers).
    """

    def __init__(self, build: Callable[[Session], ClauseElement]) -> None:
        """`build(tx)` makes the statement for the dialect of `tx` (an upsert is dialect-specific)."""
        self._build = build
        self._compiled: dict[tuple[str, tuple[str, ...]], _Compiled] = {}

    def execute(self, tx: Session, params: dict[str, Any]) -> Any:
        """Run the statement in `tx` with `params` (a value for every parameter); the DBAPI cursor."""
        return self._run(tx, [params], many=False)

    def execute_many(self, tx: Session, rows: Sequence[dict[str, Any]]) -> None:
        """Run the statement in `tx` once per row of `rows` (each with the same parameters)."""
        self._run(tx, rows, many=True)

    def _run(self, tx: Session, rows: Sequence[dict[str, Any]], *, many: bool) -> Any:
        driver, dialect = _driver_connection(tx)
        key = (dialect.name, tuple(rows[0]))
        compiled = self._compiled.get(key)
        if compiled is None:
            compiled = self._compiled[key] = _Compiled(self._build(tx), dialect, rows[0])
        arguments: Any = [compiled.arguments(row) for row in rows] if many else compiled.arguments(rows[0])
        cursor = driver.cursor()
        try:
            (cursor.executemany if many else cursor.execute)(compiled.sql, arguments)
        except dialect.loaded_dbapi.Error as error:
            raise DBAPIError.instance(compiled.sql, arguments, error, dialect.loaded_dbapi.Error) from error
        return cursor


class ListStatement:
    """A DriverStatement with one `IN (…)` list, compiled once per length of the list.

    `build(tx, items)` makes the statement with `items`, one bound parameter per element, in the
    list's place. Lists are expected to be short and bounded (a claim's rows, say).
    """

    def __init__(self, build: Callable[[Session, list[BindParameter[Any]]], ClauseElement]) -> None:
        self._build = build
        self._by_length: dict[int, DriverStatement] = {}

    def execute(self, tx: Session, items: Sequence[Any], params: dict[str, Any] | None = None) -> Any:
        """Run the statement with `items` in its list and `params` for the rest; the DBAPI cursor."""
        statement = self._by_length.get(len(items))
        if statement is None:
            binds: list[BindParameter[Any]] = [bindparam(f"item_{index}") for index in range(len(items))]
            statement = self._by_length[len(items)] = DriverStatement(lambda tx: self._build(tx, binds))
        values = {f"item_{index}": item for index, item in enumerate(items)}
        return statement.execute(tx, {**(params or {}), **values})


def _driver_connection(tx: Session) -> tuple[Any, Dialect]:
    """The DBAPI connection of `tx`'s transaction and its dialect, looked up once per transaction."""
    transaction = tx.get_transaction()
    cached = tx.info.get(_DRIVER_CONNECTION)
    if cached is None or cached[0] is not transaction:
        connection = tx.connection()
        cached = tx.info[_DRIVER_CONNECTION] = (transaction, connection.connection, connection.dialect)
    return cached[1], cached[2]


class _Compiled:
    """A statement's SQL for one dialect, and how parameters become the driver's arguments."""

    def __init__(self, statement: ClauseElement, dialect: Dialect, params: dict[str, Any]) -> None:
        compiled = cast(SQLCompiler, statement.compile(dialect=dialect, column_keys=list(params)))
        if compiled.insert_prefetch or compiled.update_prefetch:
            # Column defaults computed in Python would be skipped here.
            raise ValueError("give every column with a default a value")
        self.sql = compiled.string
        converters = {
            name: convert
            for bind, name in compiled.bind_names.items()
            if (convert := bind.type.dialect_impl(dialect).bind_processor(dialect)) is not None
        }
        #: Values the statement carries itself (e.g. the 1 of `message_count + 1`), converted once.
        self._literals = {
            name: converters[name](value) if name in converters else value
            for name, value in compiled.construct_params(params).items()
            if name not in params
        }
        self._conversions = [(name, convert) for name, convert in converters.items() if name in params]
        #: Parameter names in order for a positional paramstyle (SQLite's `?`), None for named ones.
        self._order = compiled.positiontup

    def arguments(self, params: dict[str, Any]) -> Any:
        """The driver's arguments for `params`: converted, and in order when positional."""
        values = {**self._literals, **params}
        for name, convert in self._conversions:
            values[name] = convert(values[name])
        return values if self._order is None else tuple(values[name] for name in self._order)

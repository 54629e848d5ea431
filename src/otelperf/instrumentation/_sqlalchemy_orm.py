"""What an ORM statement loads, for the N+1 detector's exact fix (SQLAlchemy 2.0 and 2.1).

Two kinds of statement load a relationship one parent at a time:

- a lazy load (``author.books`` on attribute access, ``await author.awaitable_attrs.books``): the
  ORM hands its load options to the statement's execution options (``_sa_orm_load_options``);
  a lazy load sets ``_lazy_loaded_from`` (the parent's state) there, and the statement's compile
  options' ``_current_path`` ends with the relationship. A ``selectinload`` has the path but no
  ``_lazy_loaded_from``: one query for all parents, not a lazy load.
- an explicit query that selects what a relationship would load, for one parent:
  ``select(OrderItem).where(OrderItem.order_id == order.id)`` is ``Order.items`` by hand. It is
  recognized by its WHERE clause: equality on exactly the remote columns of one relationship
  whose target is the selected entity. Worked out once per statement text (the engine keeps it).

Both give the relationship (``otelperf.orm.relationship``, ``Author.books``), how it was loaded
(``otelperf.orm.load``: ``lazy`` or ``query``) and the table of the parent rows
(``otelperf.orm.parent_table``), from which the detector finds the query that loaded them.
Dynamic and write-only relationships (``author.books.all()``, ``author.books.select()``) are
queries by design and cannot be eager-loaded: they get no relationship here, and their loop is
told to run one ``IN`` query.
"""

from __future__ import annotations

from typing import Any

from otelperf import _names

__all__ = ["LOAD_OPTIONS", "is_orm", "lazy_loaded", "queried_relationship", "relationship_attributes"]

LOAD_OPTIONS = "_sa_orm_load_options"  # the execution option holding the ORM's load options
_NOT_EAGER = frozenset(("dynamic", "write_only"))


def is_orm(context: Any) -> bool:
    """Whether the statement is an ORM one (``select(Author)``, a lazy load...), not Core's."""
    attributes = getattr(getattr(context, "invoked_statement", None), "_propagate_attrs", None)
    return attributes is not None and attributes.get("compile_state_plugin") == "orm"


def lazy_loaded(context: Any) -> Any:
    """The relationship (a ``RelationshipProperty``) a statement lazily loads, else None."""
    options = context.execution_options.get(LOAD_OPTIONS)
    if options is None or getattr(options, "_lazy_loaded_from", None) is None:
        return None
    path = getattr(getattr(context.invoked_statement, "_compile_options", None), "_current_path", None)
    if path is None or getattr(path, "is_root", True) or len(path) < 2:
        return None
    relationship = path[-1]
    return relationship if getattr(relationship, "key", None) and hasattr(relationship, "parent") else None


def _column_key(column: Any) -> tuple[str | None, str | None]:
    """(table, column) names: the ORM's annotated columns are other objects than the table's."""
    return getattr(getattr(column, "table", None), "fullname", None), getattr(column, "name", None)


def _compared_columns(where: Any) -> set[tuple[str | None, str | None]]:
    """Columns the WHERE clause compares with ``=`` to a bound value, in its top-level AND."""
    from sqlalchemy.sql import operators
    from sqlalchemy.sql.elements import BinaryExpression, BindParameter, BooleanClauseList, ColumnClause

    clauses = list(where.clauses) if isinstance(where, BooleanClauseList) else [where]
    out: set[tuple[str | None, str | None]] = set()
    for clause in clauses:
        if not isinstance(clause, BinaryExpression) or clause.operator is not operators.eq:
            continue
        left, right = clause.left, clause.right
        if isinstance(left, ColumnClause) and isinstance(right, BindParameter):
            out.add(_column_key(left))
        elif isinstance(right, ColumnClause) and isinstance(left, BindParameter):
            out.add(_column_key(right))
    return out


def queried_relationship(context: Any) -> Any:
    """The relationship an explicit ORM SELECT loads for one parent, when exactly one fits; else None."""
    statement = context.invoked_statement
    where = getattr(statement, "whereclause", None)
    descriptions = getattr(statement, "column_descriptions", None)
    if where is None or not descriptions:
        return None
    entity = descriptions[0].get("entity")
    if entity is None:
        return None
    from sqlalchemy import inspect

    mapper = inspect(entity, raiseerr=False)
    registry = getattr(mapper, "registry", None)
    if registry is None:
        return None
    compared = _compared_columns(where)
    if not compared:
        return None
    found = []
    for candidate in registry.mappers:
        for relationship in candidate.relationships:
            # Dynamic and write-only relationships cannot be eager-loaded: no fix to name there.
            if relationship.mapper is not mapper or relationship.lazy in _NOT_EAGER:
                continue
            if relationship.secondary is not None:
                continue
            remote = {_column_key(column) for column in relationship.remote_side}
            if remote and remote <= compared:
                found.append(relationship)
    return found[0] if len(found) == 1 else None


def relationship_attributes(relationship: Any, load: str) -> dict[str, Any]:
    """``otelperf.orm.relationship`` (``Author.books``), ``otelperf.orm.load`` and the parent's table."""
    parent = relationship.parent  # the Mapper of the class the relationship is declared on
    out: dict[str, Any] = {
        _names.ORM_RELATIONSHIP: f"{parent.class_.__name__}.{relationship.key}",
        _names.ORM_LOAD: load,
    }
    table = getattr(getattr(parent, "local_table", None), "name", None)
    if isinstance(table, str):
        out[_names.ORM_PARENT_TABLE] = table
    return out

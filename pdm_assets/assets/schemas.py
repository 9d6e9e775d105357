"""Dagster's column schema (`dagster/column_schema`) of the tables the assets write."""

import dagster as dg


def column_schema(types: dict[str, str]) -> dg.TableSchema:
    """A column schema from column names and their Spark simpleString types."""
    return dg.TableSchema(columns=[dg.TableColumn(name, kind) for name, kind in types.items()])

"""`open_store`: the store a warehouse root calls for."""

from pathlib import Path

from pdm_assets.filesystem import is_uri
from pdm_assets.warehouse.folder import Warehouse
from pdm_assets.warehouse.store import DatasetStore
from pdm_assets.warehouse.tables import TableWarehouse


def open_store(
    root: str, table_format: str = "parquet", keep_replaced_hours: float = 24
) -> DatasetStore:
    """A folder path gets the symlinked local warehouse (replaced versions kept
    `keep_replaced_hours`); a URI (abfss://, s3://, dbfs:/, file:/) gets tables in
    `table_format` (Delta keeps old versions by its own retention, Parquet none)."""
    if is_uri(root):
        return TableWarehouse(root, table_format)
    return Warehouse(Path(root), keep_replaced_seconds=keep_replaced_hours * 3600)

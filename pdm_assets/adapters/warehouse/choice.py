"""`open_store`: the store a warehouse root calls for."""

from pathlib import Path

from pdm_assets.adapters.warehouse.folder import FolderWarehouse
from pdm_assets.adapters.warehouse.protocol import DatasetStore
from pdm_assets.adapters.warehouse.tables import TableWarehouse
from pdm_assets.core.filesystem import is_uri


def open_store(
    root: str, table_format: str = "parquet", keep_replaced_hours: float = 24
) -> DatasetStore:
    """A folder path gets the symlinked local warehouse (replaced versions kept
    `keep_replaced_hours`); a URI (abfss://, s3://, dbfs:/, file:/) gets tables in
    `table_format` (Delta keeps old versions by its own retention, Parquet none)."""
    if is_uri(root):
        return TableWarehouse(root, table_format)
    return FolderWarehouse(Path(root), keep_replaced_seconds=keep_replaced_hours * 3600)

"""The warehouse: where every asset's rows live.

- protocol.py: the `DatasetStore` protocol and the helpers the stores share;
- folder.py: the folder store (`FolderWarehouse`), day versions swapped atomically with symlinks;
- tables.py: the table store (`TableWarehouse`), Delta or Parquet tables on a URI or in a catalog;
- choice.py: `open_store`, which picks one from the warehouse root.

How Dagster reads and writes them (the IO manager) is wiring: `pdm_assets/defs/io_manager.py`.
"""

from pdm_assets.adapters.warehouse.choice import open_store
from pdm_assets.adapters.warehouse.folder import FolderWarehouse
from pdm_assets.adapters.warehouse.protocol import (
    DATE_COLUMN,
    DatasetStore,
    MissingDatasetError,
    by_day,
    read_all,
    rows_in_window,
)
from pdm_assets.adapters.warehouse.tables import TableWarehouse

__all__ = [
    "DATE_COLUMN",
    "DatasetStore",
    "FolderWarehouse",
    "MissingDatasetError",
    "TableWarehouse",
    "by_day",
    "open_store",
    "read_all",
    "rows_in_window",
]

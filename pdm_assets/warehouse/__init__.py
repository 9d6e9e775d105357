"""The warehouse: where every asset's rows live, and how Dagster reads and writes them.

- store.py: the `DatasetStore` protocol and the helpers the stores share;
- folder.py: the folder store (`Warehouse`), day versions swapped atomically with symlinks;
- tables.py: the table store (`TableWarehouse`), Delta or Parquet tables on a URI;
- stores.py: `open_store`, which picks one from the warehouse root;
- io_manager.py: the IO manager, and the resource assets use to read windows beyond their inputs.
"""

from pdm_assets.warehouse.folder import Warehouse
from pdm_assets.warehouse.io_manager import (
    ALLOW_MISSING_PARTITIONS,
    SparkParquetIOManager,
    WarehouseResource,
    require_every_day,
)
from pdm_assets.warehouse.store import (
    DATE_COLUMN,
    DatasetStore,
    MissingDatasetError,
    by_day,
    read_all,
    rows_in_window,
)
from pdm_assets.warehouse.stores import open_store
from pdm_assets.warehouse.tables import TableWarehouse

__all__ = [
    "ALLOW_MISSING_PARTITIONS",
    "DATE_COLUMN",
    "DatasetStore",
    "MissingDatasetError",
    "SparkParquetIOManager",
    "TableWarehouse",
    "Warehouse",
    "WarehouseResource",
    "by_day",
    "open_store",
    "read_all",
    "require_every_day",
    "rows_in_window",
]

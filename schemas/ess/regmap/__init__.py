"""Register maps: the validated description of a device's Modbus input registers."""

from .csv_import import map_from_csv
from .load import MapError, load_map, load_map_file, parse_map
from .model import Block, Field, Register, RegisterMap

__all__ = [
    "Block", "Field", "MapError", "Register", "RegisterMap",
    "load_map", "load_map_file", "map_from_csv", "parse_map",
]

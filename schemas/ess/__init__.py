"""Shared data model of the ESS pipeline: register maps, read plan, frame codec, decoder, SQL."""

__version__ = "0.1.0"

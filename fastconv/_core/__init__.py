"""Compiled extension modules of fastconv (built from src/fastconv/). Import through fastconv.ops."""

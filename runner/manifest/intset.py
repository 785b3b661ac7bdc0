"""A compact set of 64-bit integers, for duplicate detection over huge batches.

A Python ``set`` of a million large ints costs about 70 MB; this open-addressing
table in an ``array('Q')`` costs 16 bytes per entry at most (load factor ≤ ½),
so the expansion of a 1,000,000-job manifest can check every job key and
output name for duplicates in about 32 MB. Values are expected to be hashes
(uniformly spread), so the slot is simply the low bits.
"""

from __future__ import annotations

from array import array

__all__ = ["IntSet"]

_MASK64 = (1 << 64) - 1


class IntSet:
    """Add-only set of 64-bit integers (0 is stored as 1: values are hashes)."""

    __slots__ = ("_mask", "_size", "_table")

    def __init__(self, expected: int = 0) -> None:
        capacity = 16
        while capacity < 2 * expected:
            capacity *= 2
        self._table = array("Q", bytes(8 * capacity))
        self._mask = capacity - 1
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def add(self, value: int) -> bool:
        """Add ``value``; ``False`` if it was already there."""
        value = (value & _MASK64) or 1
        table, mask = self._table, self._mask
        slot = (value ^ (value >> 32)) & mask
        while True:
            current = table[slot]
            if current == 0:
                table[slot] = value
                self._size += 1
                if 2 * self._size > mask:
                    self._grow()
                return True
            if current == value:
                return False
            slot = (slot + 1) & mask

    def __contains__(self, value: object) -> bool:
        if not isinstance(value, int):
            return False
        value = (value & _MASK64) or 1
        table, mask = self._table, self._mask
        slot = (value ^ (value >> 32)) & mask
        while True:
            current = table[slot]
            if current == 0:
                return False
            if current == value:
                return True
            slot = (slot + 1) & mask

    def _grow(self) -> None:
        old = self._table
        capacity = 2 * (self._mask + 1)
        self._table = array("Q", bytes(8 * capacity))
        self._mask = capacity - 1
        self._size = 0
        for value in old:
            if value:
                self.add(value)

"""Which task partition each released batch goes to: the one with the fewest batches in flight.

A processor owns its partitions, so a batch placed on one waits for that processor, however busy. Placed in
turn, half of every release went to a processor that had fallen behind (a slower machine, a busy neighbour)
while the other sat idle, and the job ran at twice the slower one's pace. Placed by load, the partitions a
processor drains sooner are refilled first."""

import heapq
from collections.abc import Collection, Mapping


def place(count: int, partitions: Collection[int], in_flight: Mapping[int, int], start: int = 0) -> list[int]:
    """Partitions for the next ``count`` batches, in order: each the least loaded one, counting the batches in
    flight (``in_flight``: partition → batches; a partition not in it has none) and those placed before it;
    ties go in turn from the ``start``-th partition (in sorted order), so equal loads share a release evenly."""
    ordered = sorted(partitions)
    if not ordered:
        raise ValueError("no partitions to place batches on")
    size = len(ordered)
    heap = [(in_flight.get(p, 0), (i - start) % size, p) for i, p in enumerate(ordered)]
    heapq.heapify(heap)
    placed = []
    for _ in range(count):
        load, turn, partition = heap[0]
        placed.append(partition)
        heapq.heapreplace(heap, (load + 1, turn, partition))
    return placed

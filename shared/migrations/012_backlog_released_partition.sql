-- The task partition a batch was released to (NULL until released, and for batches released before this column).
-- The dispatcher sends each batch to the partition with the fewest batches in flight, so a processor that drains its
-- partitions sooner is sent more; placed in turn, a job ran at the pace of its slowest processor.
ALTER TABLE task_backlog ADD COLUMN released_partition integer;

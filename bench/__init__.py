"""`make bench`: Sluice measured end to end against its own ceilings (broker and PostgreSQL) in one run."""

"""The engine: the pipeline of an upload run (queue -> workers -> store), its limits, its destination index."""

"""What is uploaded: the walk of the tree, filters and shards, the file reader and its checksums."""

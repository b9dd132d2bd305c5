"""What runs on the workers: the graph's task functions and how they notice a cancel."""

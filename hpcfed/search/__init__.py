"""After training: NSGA-II over a trained supernet's architectures, the post-training search of a
finished run, the finished run rebuilt as a trained supernet, and a subnet exported as a standalone
program."""

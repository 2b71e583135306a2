"""What a run leaves: the HDF5 results file (written live, readable at any time), the checkpoint, the
optional TensorBoard view, and the summaries and figures read from results files."""

"""Turning a job into a run: the job built from its files with the method's options (hpcfed.assembly.job),
the parts the job names (data, space, device), and everything a run needs before its first round."""

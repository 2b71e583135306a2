"""The running processes: all MPI (hpcfed.runtime.comm), signals that stop a run resumably, fault
injection for drills, and spreading a list of items over the ranks."""

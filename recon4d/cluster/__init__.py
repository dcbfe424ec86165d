"""recon4d.cluster: many inputs and large pair graphs on Ray (an extra: recon4d[cluster]).

`batch` runs one job over many inputs as Ray tasks (resumable, retried, summarised, evaluated);
`sharded` splits one input's pair graph across Ray actors. Ray is imported only when a run
starts (`ray_runtime`), so importing this package does not need it.
"""

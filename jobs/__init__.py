"""Jobs that run over a whole data set, on a schedule or a cluster: batch scoring (Dask) and the queue
simulation. They sit above `training` and `models` and below the CLI; nothing here serves requests."""

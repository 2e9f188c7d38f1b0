"""The course on a JupyterHub: one machine, Unix accounts, nbgrader's filesystem exchange (see README, "Teaching on
JupyterHub"). `python -m rnncourse.hub --help` lists the setup steps the Makefile's hub targets run."""

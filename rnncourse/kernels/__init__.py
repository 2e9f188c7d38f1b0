"""Autograde kernels: how each starts alone, and how the grader talks with it.

Grader side: ``executor`` (nbgrader's Execute step), ``manager`` (starting a kernel, given ``settings``), ``bwrap``
(the sandbox's command line), ``leases`` (uids), ``seccomp`` (the system-call filter), ``forkserver`` (the zygote
kernels are forked from), ``channel`` (the grader's end of the call protocol), ``bridge`` (the process the executor
sees for a forked kernel). Sandbox side: ``boot`` (the first program a sandboxed Python runs), and what a kernel
holds of the course: ``callee`` (the call protocol's kernel end), ``wire`` (the data that crosses, used on both
sides) and ``recorders`` (recording objects for behaviour checks).
"""

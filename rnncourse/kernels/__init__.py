"""Student kernels as the grader drives them: the call protocol's kernel side and the data that crosses."""

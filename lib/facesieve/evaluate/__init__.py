"""The quality benchmark: inject known problems into a labeled dataset and score the pipeline."""

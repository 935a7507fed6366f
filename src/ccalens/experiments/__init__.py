"""The paper's experiments as runnable pipelines (``python -m ccalens.experiments.fig2``)."""

"""The paper-figure experiments over the pipeline (Figs. 2-4): each one module, none importing another."""

"""rl8's Hydra configs (``conf/`` in the repository), shipped inside the wheel as
the package ``rl8.conf``; ``python -m rl8.train`` reads them as ``pkg://rl8.conf``.
``conf/experiment`` links to the repository's ``experiments/`` overlays."""

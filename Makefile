# Two commands (each bootstraps .venv on first use):
#   make train   - train PPO on the built-in defaults (CartPole, MLP, local MLflow store)
#   make test    - run the test suite
# Extra Hydra overrides: make train ARGS="env=pendulum trainer.num_envs=256"
PY := .venv/bin/python
ARGS ?=

.PHONY: train test lint bench venv

venv:
	@bash scripts/bootstrap.sh

train: venv
	$(PY) -m rl8.train $(ARGS)

test: venv
	$(PY) -m pytest -q $(ARGS)

lint: venv
	$(PY) -m ruff check rl8 tests hydra_plugins scripts
	$(PY) -m ruff format --check rl8 tests hydra_plugins scripts

bench: venv
	$(PY) scripts/bench.py $(ARGS)

"""Conditional search space for the tests (hydra.sweeper.custom_search_space=space.conditional)."""


def conditional(cfg, trial):
    # y is only searched when x is positive; otherwise it is fixed at -0.2
    if trial.params["x"] > 0:
        return {"y": trial.suggest_float("y_pos", -1.0, 1.0)}
    return {"y": -0.2}

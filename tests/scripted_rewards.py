"""Correctness rewards with a known outcome, for trainer tests (loaded by dotted path, as a user would)."""


def never_correct(completions, **kwargs):
    """Every rollout wrong: every group is hard."""
    return [0.0] * len(completions)


def correct_with_demos(prompts, completions, **kwargs):
    """A rollout is correct iff its prompt carried demonstrations (more than one user turn)."""
    return [float(sum(m["role"] == "user" for m in prompt) > 1) for prompt in prompts]

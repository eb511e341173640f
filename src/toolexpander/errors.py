"""The one exception type the command line turns into a clear message and exit status 2."""


class UserError(Exception):
    """A problem the user can fix: bad input, bad config, missing file. The CLI exits 2."""


def yaml_error(error: Exception, what: str) -> UserError:
    """A YAML syntax error as one line naming the file and line where PyYAML found it."""
    mark = getattr(error, "problem_mark", None)
    where = f"{mark.name}, line {mark.line + 1}" if mark else what
    reason = getattr(error, "problem", None) or " ".join(str(error).split())
    return UserError(f"{where} is not valid YAML: {reason}")

"""The one exception type the command line turns into a clear message and exit status 2."""


class UserError(Exception):
    """A problem the user can fix: bad input, bad config, missing file. The CLI exits 2."""

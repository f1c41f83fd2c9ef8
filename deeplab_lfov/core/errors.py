"""The one exception type a user sees.

Every problem a user can fix (a missing file, a wrong shape, a bad list line) is raised as
``DeepLabError`` with a message that names the file and says what is wrong.  The command-line
scripts turn it into a single ``error: ...`` line and exit code 2 (see ``deeplab_lfov.cli``);
anything else is a bug and keeps its traceback.
"""

__all__ = ["DeepLabError"]


class DeepLabError(ValueError):
    """A user-facing error: the message is printed as is, on one line.

    ``kind`` names the kind of problem in a few words ("image not found"), so that a report of
    many problems can count them by kind.
    """

    def __init__(self, message: str, kind: str = ""):
        super().__init__(message)
        self.kind = kind

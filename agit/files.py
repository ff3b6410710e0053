"""Writing a file whole or not at all: the one path every file agit writes goes through.

The bytes go to a temporary file beside the target (unique to the call, so parallel
writers never share one), are fsync'ed, and the temporary file is renamed over the
target. A reader sees the old file or the new one, never half of one, and a failed
write (a full disk, a quota, a file-size limit) leaves the old file as it was, no
temporary file behind, and says which file in one line. (Folders of files, datasets,
are made whole the same way: built beside the target, then renamed: data.staged_folder.)
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import secrets
from pathlib import Path

from PIL import Image


class WriteFailed(OSError):
    """A file could not be written; the message names it, and the previous file is intact."""

    def __init__(self, err: OSError, target: Path):
        super().__init__(f"{why(err)} while writing {target}")
        self.errno = err.errno

    def __str__(self) -> str:
        return self.args[0]


def why(err: OSError) -> str:
    """A write error in words: 'no space left on device', 'cannot write (File too large)'."""
    words = {errno.ENOSPC: "no space left on device", errno.EDQUOT: "disk quota exceeded"}
    return words.get(err.errno, f"cannot write ({err.strerror or err})")


def write_atomically(target: str | os.PathLike, data: bytes | memoryview | str) -> Path:
    """`data` (text is UTF-8) into `target` via a temporary file beside it: whole or not at all.
    Raises WriteFailed, naming `target`, if it cannot be written."""
    target = Path(target)
    if isinstance(data, str):
        data = data.encode()
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "xb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, target)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise WriteFailed(err, target) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable where the OS allows
        dir_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    return target


def save_image_atomically(image: Image.Image, target: str | os.PathLike) -> Path:
    """A PIL image into `target` (the format from its suffix), whole or not at all."""
    buffer = io.BytesIO()
    image.save(buffer, format=Image.registered_extensions()[Path(target).suffix.lower()])
    return write_atomically(target, buffer.getbuffer())

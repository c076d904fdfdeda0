"""Attachments: what intake accepts as a file (PDF or Office, at most 10 MB), and where it keeps the bytes.

Only metadata travels in events; the bytes stay behind `AttachmentStore`, whose default is a directory
(a mounted volume in a deployment). Another store (S3, say) implements the same three methods.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import uuid
import zipfile
from pathlib import Path, PurePath
from typing import Final, Protocol

from shared.contract.consultation import Attachment

MAX_BYTES: Final = 10 * 1024 * 1024
MAX_PER_SUBMISSION: Final = 5

# Extension → media type. The content must agree (`inspect`): a renamed executable is not a PDF.
_PDF = {".pdf": "application/pdf"}
_OOXML = {
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ".pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
}
_OLE = {".doc": "application/msword", ".xls": "application/vnd.ms-excel", ".ppt": "application/vnd.ms-powerpoint"}
ACCEPTED_EXTENSIONS: Final = tuple(sorted({**_PDF, **_OOXML, **_OLE}))

_OLE_SIGNATURE = bytes.fromhex("d0cf11e0a1b11ae1")


class AttachmentRefused(Exception):
    """Why a file is not accepted: `code` for programs, `message` a msgid with `params`."""

    def __init__(self, code: str, message: str, /, **params: object) -> None:
        super().__init__(code)
        self.code = code
        self.message = message
        self.params = params


def safe_filename(name: str) -> str:
    """The file's own name without any directory a browser or client sent, control characters removed."""
    base = PurePath(name.replace("\\", "/")).name
    cleaned = "".join(ch for ch in base if ch.isprintable()).strip()
    return cleaned[:255]


def inspect(filename: str, data: bytes) -> Attachment:
    """The file's metadata when it is a PDF or Office document of at most 10 MB whose content matches its
    extension; `AttachmentRefused` otherwise."""
    name = safe_filename(filename)
    if not name:
        raise AttachmentRefused("attachment_unnamed", "A file has no name")
    if not data:
        raise AttachmentRefused("attachment_empty", "The file %(name)s is empty", name=name)
    if len(data) > MAX_BYTES:
        raise AttachmentRefused("attachment_too_large", "The file %(name)s is larger than 10 MB", name=name)
    extension = PurePath(name).suffix.lower()
    media_type = _media_type(extension, data)
    if media_type is None:
        raise AttachmentRefused(
            "attachment_type",
            "The file %(name)s is not a PDF or Office document (%(accepted)s)",
            name=name,
            accepted=", ".join(ACCEPTED_EXTENSIONS),
        )
    return Attachment(
        attachment_id=uuid.uuid4(),
        filename=name,
        media_type=media_type,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
    )


def _media_type(extension: str, data: bytes) -> str | None:
    if extension in _PDF:
        return _PDF[extension] if data.startswith(b"%PDF-") else None
    if extension in _OLE:
        return _OLE[extension] if data.startswith(_OLE_SIGNATURE) else None
    if extension in _OOXML:
        return _OOXML[extension] if _is_ooxml(data) else None
    return None


def _is_ooxml(data: bytes) -> bool:
    # An Office Open XML package is a zip with a content-types part; macros (vbaProject) are refused.
    if not data.startswith(b"PK\x03\x04"):
        return False
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as package:
            names = package.namelist()
    except (zipfile.BadZipFile, ValueError):
        return False
    return "[Content_Types].xml" in names and not any(name.lower().endswith("vbaproject.bin") for name in names)


class AttachmentStore(Protocol):
    async def put(self, key: str, data: bytes) -> None: ...

    async def get(self, key: str) -> bytes: ...

    async def delete(self, key: str) -> None: ...


class FilesystemStore:
    """Files under one directory, named by key; written whole (temporary file, fsync, rename) or not at all."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        uuid.UUID(key)  # keys are attachment ids: never a path a caller could steer
        return self.root / key[:2] / key

    async def put(self, key: str, data: bytes) -> None:
        await asyncio.to_thread(self._write, self._path(key), data)

    async def get(self, key: str) -> bytes:
        return await asyncio.to_thread(self._path(key).read_bytes)

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self._path(key).unlink, True)

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        with partial.open("wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        partial.replace(path)

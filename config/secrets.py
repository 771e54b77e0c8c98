"""Secret references in the config file.

A secret is never written in clear: it is ``"${VAR}"`` (an environment variable) or
``{file: PATH}`` (a mounted file, relative to the config file's folder, trailing newline
dropped). Both are resolved once, when the config loads, into :class:`pydantic.SecretStr`, whose
repr and str hide the value. Error messages name the reference, never a value. A load that
needs only some secrets (``flowhooks send-test`` signs for one source) may leave the others
:class:`Unresolved`.
"""

import base64
import binascii
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import BeforeValidator, SecretStr, ValidationInfo

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
HINT = 'must be a secret reference: "${VAR}" or {file: PATH}'


def resolve(value: Any, environ: Mapping[str, str], base_dir: Path) -> SecretStr:
    """Resolve one reference; raise ``ValueError`` with a message fit for the user."""
    if isinstance(value, SecretStr):
        return value
    if isinstance(value, str):
        match = _ENV_REF.fullmatch(value.strip())
        if match is None:
            raise ValueError(f"{HINT}, not a literal value")
        name = match.group(1)
        if name not in environ:
            raise ValueError(f"environment variable {name} is not set")
        if environ[name] == "":
            raise ValueError(f"environment variable {name} is empty")
        return SecretStr(environ[name])
    if isinstance(value, dict) and set(value) == {"file"} and isinstance(value["file"], str):
        path = base_dir / value["file"]
        try:
            text = path.read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise ValueError(f"secret file {path}: {exc.strerror or 'cannot be read'}") from None
        except UnicodeDecodeError:  # its message would quote the secret's bytes
            raise ValueError(f"secret file {path} is not UTF-8 text") from None
        if not text:
            raise ValueError(f"secret file {path} is empty")
        return SecretStr(text)
    raise ValueError(HINT)


class Unresolved(SecretStr):
    """A reference left unresolved, by request (``lenient`` in the validation context): a
    config loaded to use some of its secrets need not have the others. Its value cannot be
    read; ``reason`` says why it was not resolved."""

    def __init__(self, reason: str) -> None:
        super().__init__("")
        self.reason = reason

    def get_secret_value(self) -> str:
        raise RuntimeError(f"an unresolved secret was used: {self.reason}")

    def __repr__(self) -> str:
        return "Unresolved()"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Unresolved) and other.reason == self.reason

    def __hash__(self) -> int:
        return hash(self.reason)


def _validate(value: Any, info: ValidationInfo) -> SecretStr:
    context = info.context or {}
    environ: Mapping[str, str] = context.get("environ", os.environ)
    base_dir: Path = context.get("base_dir", Path.cwd())
    try:
        return resolve(value, environ, base_dir)
    except ValueError as exc:
        # only a reference that names something absent; a malformed one is an error anyway
        if context.get("lenient") and _is_reference(value):
            return Unresolved(str(exc))
        raise


def _is_reference(value: Any) -> bool:
    if isinstance(value, str):
        return _ENV_REF.fullmatch(value.strip()) is not None
    return isinstance(value, dict) and set(value) == {"file"} and isinstance(value["file"], str)


Secret = Annotated[SecretStr, BeforeValidator(_validate)]
"""A config field holding a secret reference, resolved at load."""


def _validate_text(value: Any, info: ValidationInfo) -> SecretStr:
    if isinstance(value, str) and _ENV_REF.fullmatch(value.strip()) is None:
        return SecretStr(value)
    return _validate(value, info)


SecretOrText = Annotated[SecretStr, BeforeValidator(_validate_text)]
"""A value that may be a secret reference or plain text (a webhook header, say); either way it
is held as a secret, since plain text there is often a token too."""


def whsec(secret: SecretStr, what: str) -> SecretStr:
    """A Standard Webhooks secret: base64, optionally after ``whsec_``; never quoted."""
    if isinstance(secret, Unresolved):
        return secret
    key = secret.get_secret_value().removeprefix("whsec_")
    try:
        if not base64.b64decode(key, validate=True):
            raise ValueError
    except (binascii.Error, ValueError):
        raise ValueError(f"{what} must be base64, optionally after whsec_") from None
    return secret

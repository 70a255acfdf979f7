"""The signature of a backup (security.md, "Keeping data"): an HMAC-SHA256 of its manifest, which
holds the SHA-256 of the database file, so the signature covers the data too. The key is never in
the backup: BACKUP_SIGNING_KEY, else one derived from SECRET_KEY for this purpose only. Someone who
edits a backup (an admin promoted inside, the manifest recomputed) cannot sign it again."""

from __future__ import annotations

import hmac


def signing_key(secret_key: str, configured: str | None = None) -> bytes:
    """The key backups are signed with: BACKUP_SIGNING_KEY when set (so that backups can be
    checked on a server with another SECRET_KEY), else one derived from SECRET_KEY for signing
    backups only (never the session key itself)."""
    if configured:
        return configured.encode()
    return hmac.new(secret_key.encode(), b"fls-portal backup signing key", "sha256").digest()


def sign(manifest_bytes: bytes, key: bytes) -> str:
    """The signature of a manifest, as hex."""
    return hmac.new(key, manifest_bytes, "sha256").hexdigest()


def check_signature(manifest_bytes: bytes, signature: bytes | None, key: bytes) -> None:
    """Raise ValueError, saying why in words, unless `signature` is the manifest's with `key`."""
    if signature is None:
        raise ValueError(
            "the backup is not signed: only backups this portal signed can be restored"
        )
    if not hmac.compare_digest(sign(manifest_bytes, key), signature.decode("ascii", "replace")):
        raise ValueError(
            "the backup's signature does not match: it was changed after it was made, or it was "
            "signed with another key (BACKUP_SIGNING_KEY, or SECRET_KEY when that is not set)"
        )

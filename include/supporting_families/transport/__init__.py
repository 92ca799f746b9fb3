"""Transport to partners: the pinned SFTP client, OpenPGP through GnuPG, the rules for remote names."""

from supporting_families.transport.openpgp import (
    DecryptionError,
    EncryptionResult,
    KeyProblem,
    OpenPgpError,
    decrypt_and_verify,
    encrypt_and_sign,
    normalise_fingerprint,
)
from supporting_families.transport.paths import MAX_NAME_BYTES, check_remote_dir, unsafe_name_reason
from supporting_families.transport.sftp import (
    ALLOWED_CIPHERS,
    ALLOWED_HOST_KEYS,
    ALLOWED_KEX,
    ALLOWED_MACS,
    ConnectivityReport,
    DeliveryConflict,
    PermanentTransferError,
    SftpEndpoint,
    check_connectivity,
    list_names,
)

__all__ = [
    "ALLOWED_CIPHERS",
    "ALLOWED_HOST_KEYS",
    "ALLOWED_KEX",
    "ALLOWED_MACS",
    "MAX_NAME_BYTES",
    "ConnectivityReport",
    "DecryptionError",
    "DeliveryConflict",
    "EncryptionResult",
    "KeyProblem",
    "OpenPgpError",
    "PermanentTransferError",
    "SftpEndpoint",
    "check_connectivity",
    "check_remote_dir",
    "decrypt_and_verify",
    "encrypt_and_sign",
    "list_names",
    "normalise_fingerprint",
    "unsafe_name_reason",
]

"""Key material for eLicence: generation, JWK/JWKS (RFC 7517/7518, RFC 8037), RFC 7638 thumbprints as
``kid``, the :class:`Signer` interface (so an HSM can replace a software key), and a keystore holding
private keys encrypted at rest with AES-256-GCM under a key-encryption key from the environment, and
X.509 certificates for relying parties (:mod:`keys.x509`: registrar CA, access certificates, ``x5c``).

Bottom of the import order: ``keys`` imports ``schemas`` at most, never ``credentials``, a role, or a
web/database framework. Errors form their own small tree (:mod:`keys.errors`) with stable codes.
"""

from keys.errors import (
    InvalidKeyMaterial,
    KeyMaterialError,
    KeyNotFound,
    KeyStateError,
    KeystoreError,
    KeystoreTampered,
    WrongKek,
)
from keys.jwk import (
    ALGORITHMS,
    PrivateKey,
    PublicKey,
    alg_for_key,
    b64u_decode,
    b64u_encode,
    generate_private_key,
    jwks,
    load_private_jwk,
    load_public_jwk,
    private_jwk,
    public_jwk,
    thumbprint,
)
from keys.keystore import (
    KEK_BYTES,
    KEK_ENV,
    KEK_FILE_ENV,
    FileKeyRecordStore,
    InMemoryKeyRecordStore,
    KekInvalid,
    KekMissing,
    KeyRecord,
    KeyRecordStore,
    KeyState,
    Keystore,
    generate_kek,
    load_kek,
    write_kek_file,
    write_secret_file,
)
from keys.signer import Signer, SoftwareSigner
from keys.x509 import (
    MAX_CERTIFICATE_BYTES,
    MAX_CHAIN_LENGTH,
    CertificateError,
    CertificateExpired,
    CertificateNameMismatch,
    CertificateNotYetValid,
    CertificateUntrusted,
    VerifiedChain,
    certificate_pem,
    dns_names,
    issue_access_certificate,
    load_pem_certificates,
    make_registrar_ca,
    subject_organization,
    verify_x5c_for_dns,
    x5c_decode,
    x5c_encode,
)

__all__ = [
    # errors
    "KeyMaterialError",
    "InvalidKeyMaterial",
    "KeyNotFound",
    "KeystoreError",
    "WrongKek",
    "KeystoreTampered",
    "KeyStateError",
    "KekMissing",
    "KekInvalid",
    # jwk
    "ALGORITHMS",
    "PrivateKey",
    "PublicKey",
    "b64u_encode",
    "b64u_decode",
    "generate_private_key",
    "alg_for_key",
    "public_jwk",
    "private_jwk",
    "load_public_jwk",
    "load_private_jwk",
    "thumbprint",
    "jwks",
    # signer
    "Signer",
    "SoftwareSigner",
    # keystore
    "KEK_ENV",
    "KEK_FILE_ENV",
    "KEK_BYTES",
    "KeyState",
    "KeyRecord",
    "KeyRecordStore",
    "InMemoryKeyRecordStore",
    "FileKeyRecordStore",
    "Keystore",
    "load_kek",
    "generate_kek",
    "write_kek_file",
    "write_secret_file",
    # x509
    "MAX_CHAIN_LENGTH",
    "MAX_CERTIFICATE_BYTES",
    "CertificateError",
    "CertificateUntrusted",
    "CertificateNameMismatch",
    "CertificateExpired",
    "CertificateNotYetValid",
    "VerifiedChain",
    "make_registrar_ca",
    "issue_access_certificate",
    "x5c_encode",
    "x5c_decode",
    "certificate_pem",
    "load_pem_certificates",
    "dns_names",
    "subject_organization",
    "verify_x5c_for_dns",
]

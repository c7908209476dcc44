"""Builds the zip of one kind of rotation function: this directory's code,
a `lambda_function.py` entry point for the kind, and the pure-Python
database driver it needs, copied from the running interpreter's
site-packages (the venv `make venv` builds from requirements.txt).

    .venv/bin/python tests/support/rotation_functions/package.py \\
        --kind postgresql_single_user --out F.zip
    # prints the handler to configure: lambda_function.lambda_handler

The emulator imports it to put each rotation application's code in S3
(`build_zip(kind_of(application))`). The zip's bytes depend only on its
sources: the same code always gives the same CodeSha256.
"""

import argparse
import functools
import importlib.metadata
import io
import os
import sys
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
HANDLER = "lambda_function.lambda_handler"

# kind -> (database module or None, alternating users, driver distributions)
KINDS = {
    "postgresql_single_user": ("postgresql_database", False, ("pg8000", "scramp", "asn1crypto")),
    "postgresql_multi_user": ("postgresql_database", True, ("pg8000", "scramp", "asn1crypto")),
    "mysql_single_user": ("mysql_database", False, ("PyMySQL",)),
    "mysql_multi_user": ("mysql_database", True, ("PyMySQL",)),
    "generic": (None, False, ()),
}

# Rotation application -> kind. MariaDB uses the MySQL functions; every
# engine the test stack has no database for gets the generic function.
APPLICATION_KINDS = {
    "SecretsManagerRDSMySQLRotationSingleUser": "mysql_single_user",
    "SecretsManagerRDSMySQLRotationMultiUser": "mysql_multi_user",
    "SecretsManagerRDSMariaDBRotationSingleUser": "mysql_single_user",
    "SecretsManagerRDSMariaDBRotationMultiUser": "mysql_multi_user",
    "SecretsManagerRDSPostgreSQLRotationSingleUser": "postgresql_single_user",
    "SecretsManagerRDSPostgreSQLRotationMultiUser": "postgresql_multi_user",
    "SecretsManagerRDSOracleRotationSingleUser": "generic",
    "SecretsManagerRDSOracleRotationMultiUser": "generic",
    "SecretsManagerRDSSQLServerRotationSingleUser": "generic",
    "SecretsManagerRDSSQLServerRotationMultiUser": "generic",
    "SecretsManagerRDSDb2RotationSingleUser": "generic",
    "SecretsManagerRDSDb2RotationMultiUser": "generic",
    "SecretsManagerRedshiftRotationSingleUser": "generic",
    "SecretsManagerRedshiftRotationMultiUser": "generic",
    "SecretsManagerMongoDBRotationSingleUser": "generic",
    "SecretsManagerMongoDBRotationMultiUser": "generic",
    "SecretsManagerRotationTemplate": "generic",
}

# Zip entries carry this date so that a rebuild gives the same bytes.
_FIXED_DATE = (1980, 1, 1, 0, 0, 0)


def kind_of(application):
    return APPLICATION_KINDS[application]


def entry_point(kind):
    """The source of `lambda_function.py` for one kind."""
    module, alternating, _ = KINDS[kind]
    lines = [f'"""The {kind} rotation function of the test stack (made by package.py)."""', ""]
    if module:
        lines.append(f"import {module}")
    lines.append("from rotation_contract import make_handler")
    lines.append("")
    lines.append(f"lambda_handler = make_handler({module or 'None'}, alternating_users={alternating})")
    return "\n".join(lines) + "\n"


def _driver_files(distribution):
    """(path in the zip, path on disk) of every file an installed driver
    distribution put in site-packages. Its dist-info comes along: scramp
    reads its own version from the package metadata when imported."""
    try:
        files = importlib.metadata.distribution(distribution).files or []
    except importlib.metadata.PackageNotFoundError:
        raise SystemExit(
            f"package.py: the driver {distribution!r} is not installed in {sys.prefix} "
            f"(run make venv, or pip install -r tests/support/requirements.txt)"
        ) from None
    for file in sorted(files, key=str):
        name = str(file).replace(os.sep, "/")
        # Compiled caches are the interpreter's own; scripts live outside.
        if name.startswith("../") or "__pycache__/" in name or name.endswith(".pyc"):
            continue
        yield name, str(file.locate())


def _add(archive, name, data):
    info = zipfile.ZipInfo(name, date_time=_FIXED_DATE)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    archive.writestr(info, data)


@functools.lru_cache(maxsize=None)
def build_zip(kind):
    """The zip of one kind of rotation function, as bytes."""
    if kind not in KINDS:
        raise ValueError(f"Unknown rotation function kind {kind!r}: one of {', '.join(KINDS)}")
    module, _, drivers = KINDS[kind]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        _add(archive, "lambda_function.py", entry_point(kind))
        for own in ["rotation_contract"] + ([module] if module else []):
            with open(os.path.join(HERE, f"{own}.py"), "rb") as source:
                _add(archive, f"{own}.py", source.read())
        for driver in drivers:
            for name, path in _driver_files(driver):
                with open(path, "rb") as source:
                    _add(archive, name, source.read())
    return buffer.getvalue()


def main(argv=None):
    parser = argparse.ArgumentParser(description="Build a rotation function's zip for Lambda.")
    parser.add_argument("--kind", required=True, choices=sorted(KINDS))
    parser.add_argument("--out", required=True, help="where to write the zip")
    args = parser.parse_args(argv)
    with open(args.out, "wb") as out:
        out.write(build_zip(args.kind))
    print(HANDLER)


if __name__ == "__main__":
    main()

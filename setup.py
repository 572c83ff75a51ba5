from setuptools import find_packages, setup

with open("README.rst", encoding="utf-8") as readme:
    long_description = readme.read()

setup(
    name="logjam",
    version="1.0.0.dev0",
    description="Compress finished hourly log files and upload them to S3, safely.",
    long_description=long_description,
    long_description_content_type="text/x-rst",
    # An SPDX expression (PEP 639); a "License ::" classifier beside it
    # makes setuptools warn on every build.
    license="MIT",
    # 3.10: boto3 dropped 3.9 on 2026-04-29, and .ci/run tests 3.10 and 3.13.
    python_requires=">=3.10",
    # package_dir makes the layout "simple" for editable installs (a .pth
    # entry instead of an import hook, which setuptools warns about).
    package_dir={"": "."},
    packages=find_packages(include=["logjam", "logjam.*"]),
    install_requires=[
        "boto3>=1.36",
        "python-dateutil>=2.8",
        "zlib-ng>=0.5",
        # libdeflate; from 0.9 it releases the GIL, so the threads compress at once.
        "deflate>=0.9",
        "zstandard>=0.22",
        "prometheus-client>=0.17",
        "tqdm>=4.60",
    ],
    extras_require={
        "sentry": ["sentry-sdk>=1.0"],
        # The reference in docs/ (Sphinx's own alabaster theme).
        "docs": ["sphinx>=7"],
        "test": [
            "pytest>=7",
            "pytest-xdist>=3",
            "hypothesis>=6",
            "moto[server]>=5.0.20",
            "sentry-sdk>=1.0",
            "ruff>=0.5",
            "duckdb>=1.0",  # docs/cat.rst recipes (tests/integration/test_cat_recipes.py)
            "sphinx>=7",  # test_all.sh builds docs/ with -W
            # `mypy` (settings in mypy.ini) and the stubs of the libraries
            # that ship no types of their own; boto3-stubs brings
            # botocore-stubs. The others (deflate, zstandard, zlib-ng,
            # prometheus-client, sentry-sdk) have py.typed.
            "mypy>=1.11",
            "boto3-stubs>=1.36",
            "types-python-dateutil",
            "types-tqdm",
        ],
    },
    entry_points={
        "console_scripts": [
            "logjam-compress = logjam.compress:main",
            "logjam-upload = logjam.upload:main",
            "logjam-status = logjam.status:main",
            "logjam-cat = logjam.cat:main",
        ],
    },
    classifiers=[
        "Environment :: No Input/Output (Daemon)",
        "Operating System :: POSIX :: Linux",
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3 :: Only",
        "Programming Language :: Python :: 3.10",
        "Programming Language :: Python :: 3.11",
        "Programming Language :: Python :: 3.12",
        "Programming Language :: Python :: 3.13",
        "Topic :: System :: Logging",
        "Topic :: System :: Archiving",
    ],
)

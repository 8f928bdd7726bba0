"""The SDK ships the generated stubs straight from the repository's gen/python (`make gen`
writes them, CI checks them for drift): nothing is copied into this folder by hand."""

from setuptools import setup

setup(
    packages=["cornjacket_sdk", "cornjacket", "cornjacket.v1"],
    package_dir={
        "cornjacket_sdk": "cornjacket_sdk",
        "cornjacket": "../../gen/python/cornjacket",
        "cornjacket.v1": "../../gen/python/cornjacket/v1",
    },
    package_data={
        "cornjacket_sdk": ["py.typed"],
        "cornjacket": ["py.typed"],
        "cornjacket.v1": ["py.typed", "*.pyi"],
    },
)

"""Helpers the tests share: generated videos, real servers on 127.0.0.1, the CLI in a subprocess.

Import them as ``from tests.support.videos import make_video``; fixtures live in tests/conftest.py.
"""

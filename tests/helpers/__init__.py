"""Helpers shared by the test modules (imported as ``helpers.<module>``; the tests folder
is on ``sys.path`` through its root conftest). Test modules never import each other."""

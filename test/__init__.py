"""Test helpers of heroku_resolver (a package so that `python3 -m unittest test/...` finds them, not the stdlib test package)."""

"""The ``facesieve`` command line."""

"""The torchvet GitHub Action's entrypoint (the image's ENTRYPOINT).

The logic lives in :mod:`torchvet.action.entrypoint`; this file stays so that
``action.yml`` and the Dockerfile keep one stable path.
"""

from torchvet.action.entrypoint import console_main

if __name__ == "__main__":
    console_main()

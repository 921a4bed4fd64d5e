"""pytest set-up for the whole checkout: notebooks/ and solutions/ (nbval) as well as tests/.

`tests/nbval_pictures.py` compares the pictures nbval's run draws with the committed ones.
"""

pytest_plugins = ["tests.nbval_pictures"]
